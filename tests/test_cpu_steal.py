"""Steal time is read from /proc/stat's aggregate ``cpu`` line (8th value, in clock ticks)."""

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


def test_stolen_since_is_a_non_negative_difference_or_none():
    start = cpu_steal.steal_seconds()
    if start is None:  # not Linux
        assert cpu_steal.stolen_since(None) is None
        return
    assert cpu_steal.stolen_since(start) >= 0
    assert cpu_steal.stolen_since(None) is None
