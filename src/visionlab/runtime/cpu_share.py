"""How much CPU other processes took on this process's cores over a stretch of time.

`visionlab plan` times each network in a few tenths of a second. With another job on the same
cores, torch's threads wait on one another at every operation, and a probe runs far slower than
the share of the CPU it lost: timed beside a training run on this 2-core machine, the fine-tuned
Lite0's training steps came out 13-64x slower than idle minutes before, its featurize 7-27x. Rates
timed so are not this machine's, so plan says so and never reuses them (cli_plan). Linux only
(``/proc/stat``); elsewhere the share is unknown (None) and plan keeps its rates as before.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

STAT = Path("/proc/stat")


@dataclass(frozen=True)
class Sample:
    """The cores' busy seconds, this process's own CPU seconds and the clock, at one moment."""

    busy: float
    own: float
    wall: float


def _cores() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux: every core counts
        return set(range(os.cpu_count() or 1))


def _busy_seconds(cores: set[int]) -> float | None:
    """Seconds the given cores spent on anything but idle and I/O wait since boot."""
    try:
        lines = STAT.read_text().splitlines()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    busy = 0
    for line in lines:
        name, *fields = line.split() or [""]
        core = name.removeprefix("cpu")
        if core == name or not core.isdigit() or int(core) not in cores:  # the total, intr, ctxt, ...
            continue
        ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
        busy += sum(ticks) - ticks[3] - ticks[4]
    return busy / tick


def sample() -> Sample | None:
    """Now, for :func:`others_cores`; None where ``/proc/stat`` cannot be read."""
    busy = _busy_seconds(_cores())
    if busy is None:
        return None
    times = os.times()
    own = times.user + times.system + times.children_user + times.children_system
    return Sample(busy, own, time.monotonic())


def others_cores(since: Sample | None, until: Sample | None = None) -> float | None:
    """Cores' worth of CPU that processes other than this one took on its cores between two samples
    (``until``: now): 1.0 is one core kept busy the whole time. None when unknown or no time passed."""
    until = until or sample()
    if since is None or until is None or until.wall <= since.wall:
        return None
    others = (until.busy - since.busy) - (until.own - since.own)
    return max(others, 0.0) / (until.wall - since.wall)


def contended(others: float | None, threads: int) -> bool:
    """Whether other processes took cores this process's ``threads`` needed: more than the cores it
    leaves spare, plus half a core (a shell, a logger and the kernel stay well below that)."""
    if others is None:
        return False
    spare = max(len(_cores()) - threads, 0)
    return others > spare + 0.5
