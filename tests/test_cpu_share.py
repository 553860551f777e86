"""What other processes take of this process's cores: read from /proc/stat against our own CPU time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from visionlab.runtime import cpu_share


def test_others_are_the_cores_busy_seconds_less_our_own_per_second():
    since = cpu_share.Sample(busy=100.0, own=5.0, wall=10.0)
    assert cpu_share.others_cores(since, cpu_share.Sample(busy=104.0, own=6.0, wall=12.0)) == 1.5
    ours_alone = cpu_share.Sample(busy=101.0, own=6.5, wall=12.0)  # more own time than busy: never below 0
    assert cpu_share.others_cores(since, ours_alone) == 0.0
    assert cpu_share.others_cores(None) is None  # no /proc/stat: unknown
    assert cpu_share.others_cores(since, since) is None  # no time passed


def test_contended_means_others_took_more_than_the_spare_cores_and_half_a_core(monkeypatch):
    monkeypatch.setattr(cpu_share, "_cores", lambda: {0, 1})
    assert not cpu_share.contended(0.3, threads=2) and cpu_share.contended(0.8, threads=2)
    assert not cpu_share.contended(1.2, threads=1)  # one core spare
    assert not cpu_share.contended(None, threads=2)


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="reads Linux's /proc/stat")
def test_a_busy_process_beside_this_one_is_seen():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # the interpreter started and spinning
        since = cpu_share.sample()
        time.sleep(1.0)  # this process idle: what the cores did was others' work
        others = cpu_share.others_cores(since)
    finally:
        spinner.kill()
        spinner.wait()
    assert others is not None and others >= 0.7, others  # one core's worth, give or take a busy machine


def test_busy_seconds_count_this_process_cores_without_idle_and_io_wait(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  900 0 300 5000 100 0 0 0 0 0\n"  # every core together: not read
        "cpu0 100 10 50 1000 40 5 5 0 0 0\n"  # busy: 100 + 10 + 50 + 5 + 5 = 170 ticks
        "cpu1 200 0 100 2000 60 0 0 10 0 0\n"  # busy: 310 ticks (steal counts: lost to others)
        "cpu2 999 0 0 0 0 0 0 0 0 0\n"  # not one of this process's cores
        "intr 12345\n"
    )
    monkeypatch.setattr(cpu_share, "STAT", stat)
    tick = cpu_share.os.sysconf("SC_CLK_TCK")
    assert cpu_share._busy_seconds({0, 1}) == pytest.approx(480 / tick)
    monkeypatch.setattr(cpu_share, "STAT", tmp_path / "missing")
    assert cpu_share._busy_seconds({0}) is None and cpu_share.sample() is None
