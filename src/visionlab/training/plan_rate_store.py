"""Network rates kept between `visionlab plan` runs: a network timed on this machine is timed once.

Timing every network of every study takes most of a plan's seconds; a plan after a params edit (an
lr, a recipe's epochs) times the same networks on the same machine. The store is
``.visionlab/plan_rates.json`` in the project (git ignores it). An entry holds the probe's key
(``plan_probe.network_key``: architecture, input side, base mode, cut, precision, batch sizes), what
it was timed on (CPU model, torch threads, device, torch version, probe version) and when. An entry
from another machine state, or older than ``MAX_AGE_DAYS`` (a torch upgrade or a changed network's
code is caught by that at the latest), is timed again; ``visionlab plan --retime`` times every
network again and replaces them. Rates timed while other processes took the cores (``contended``:
runtime/cpu_share) are written marked so and never reused: the next plan times them again. File
reads are decoded by :func:`plan_reading.decode_seconds` every run (milliseconds), never kept.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import platform
from pathlib import Path
from typing import Any

from visionlab.atomic import atomic_write_text
from visionlab.training.planning import Rates

STORE = Path(".visionlab") / "plan_rates.json"
MAX_AGE_DAYS = 7
# Raised when plan_probe times a network differently: entries timed the old way are not comparable.
PROBE_VERSION = 1


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_state(device: Any) -> dict[str, Any]:
    """What a rate depends on besides its network: entries timed under another state are not used."""
    import torch

    return {
        "cpu": _cpu_model(),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "torch": torch.__version__,
        "probe": PROBE_VERSION,
    }


@dataclasses.dataclass
class Kept:
    """The rates read back, and when each was timed, by probe key."""

    rates: dict[tuple, Rates] = dataclasses.field(default_factory=dict)
    timed_at: dict[tuple, dt.datetime] = dataclasses.field(default_factory=dict)


def load(root: Path, device: Any, now: dt.datetime | None = None) -> Kept:
    """The store's entries for this machine state and younger than ``MAX_AGE_DAYS``; a bad file is ignored."""
    now = now or dt.datetime.now(dt.UTC)
    state = machine_state(device)
    kept = Kept()
    for entry in _entries(root):
        if entry.get("machine") != state or not _young(entry, now) or entry.get("contended"):
            continue
        try:
            key = tuple(entry["key"])
            kept.rates[key] = Rates(**entry["rates"])
        except (KeyError, TypeError):
            continue
        kept.timed_at[key] = dt.datetime.fromisoformat(entry["timed_at"])
    return kept


def _entries(root: Path) -> list[dict[str, Any]]:
    try:
        entries = json.loads((root / STORE).read_text())["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        return []  # none yet, or unreadable: every network is timed and the file rewritten
    return [e for e in entries if isinstance(e, dict)]


def save(
    root: Path,
    device: Any,
    timed: dict[tuple, Rates],
    kept: Kept,
    now: dt.datetime | None = None,
    contended: bool = False,
) -> None:
    """Add the networks timed in this run to the store; entries of other keys or machine states stay.

    Rates read from the store keep their first timing's date; expired entries are dropped; decode
    seconds are never stored. ``contended``: timed on a busy machine, kept for the record only.
    """
    now = now or dt.datetime.now(dt.UTC)
    state = machine_state(device)
    fresh = {key: rates for key, rates in timed.items() if key[:1] != ("decode",) and key not in kept.rates}
    entries = [
        entry
        for entry in _entries(root)
        if not (entry.get("machine") == state and tuple(entry.get("key") or ()) in fresh)
        and _young(entry, now)
    ]
    entries += [
        {
            "key": list(key),
            "machine": state,
            "timed_at": now.isoformat(),
            "rates": dataclasses.asdict(rates),
            **({"contended": True} if contended else {}),
        }
        for key, rates in fresh.items()
    ]
    (root / STORE).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / STORE, json.dumps({"entries": entries}, indent=1) + "\n")


def _young(entry: dict[str, Any], now: dt.datetime) -> bool:
    try:
        return now - dt.datetime.fromisoformat(entry["timed_at"]) <= dt.timedelta(days=MAX_AGE_DAYS)
    except (KeyError, TypeError, ValueError):
        return False
