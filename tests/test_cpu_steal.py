"""Steal time is read from /proc/stat's aggregate ``cpu`` line (8th value, in clock ticks)."""

import os

import pytest

from medclf.accel import cpu_steal

STAT = """cpu  3893936 298 124531 2040928 7734 0 8613 251369 0 0
cpu0 1946968 149 62265 1020464 3867 0 4306 125684 0 0
intr 1 2 3
"""


def test_parse_sums_all_cpus_in_seconds():
    assert cpu_steal.parse_steal_seconds(STAT, 100) == 2513.69


def test_parse_without_steal_column_or_cpu_line_is_none():
    assert cpu_steal.parse_steal_seconds("cpu  1 2 3 4\n", 100) is None
    assert cpu_steal.parse_steal_seconds("intr 1 2\n", 100) is None


def test_stolen_since_is_the_difference_of_two_readings_or_none(monkeypatch):
    monkeypatch.setattr(cpu_steal, "steal_seconds", lambda: 2513.69)
    assert cpu_steal.stolen_since(2500.0) == 13.7
    assert cpu_steal.stolen_since(None) is None
    monkeypatch.setattr(cpu_steal, "steal_seconds", lambda: None)  # the OS does not say
    assert cpu_steal.stolen_since(2500.0) is None


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="no /proc/stat (not Linux)")
def test_steal_seconds_reads_this_machines_proc_stat():
    with open("/proc/stat") as handle:
        before = cpu_steal.parse_steal_seconds(handle.read(), os.sysconf("SC_CLK_TCK"))
    reading = cpu_steal.steal_seconds()
    assert reading is None if before is None else before <= reading <= before + 5  # read a moment later
