"""CPU time stolen by the hypervisor, so wall-clock timings on a shared virtual machine can be read.

On a virtual machine whose host is busy, the guest's CPUs wait while other guests run ("steal"
time in ``/proc/stat``). Wall-clock timings then grow without any change in the code: on this
project's 2-vCPU machine the same MobileNetV2 feature pass took 37 s or 88 s depending on it.
Runs and benchmarks record the steal seconds beside their wall times.
"""

from __future__ import annotations

import os


def parse_steal_seconds(stat_text: str, ticks_per_second: int) -> float | None:
    """Steal seconds summed over all CPUs from the text of ``/proc/stat`` (``None`` if absent)."""
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            return int(fields[8]) / ticks_per_second if len(fields) > 8 else None
    return None


def steal_seconds() -> float | None:
    """CPU seconds stolen so far on this machine, all CPUs together; ``None`` where the OS does not say."""
    try:
        with open("/proc/stat") as handle:
            return parse_steal_seconds(handle.read(), os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, AttributeError):
        return None


def stolen_since(start: float | None) -> float | None:
    """Steal seconds since a :func:`steal_seconds` reading (``None`` when either reading is missing)."""
    now = steal_seconds()
    return None if start is None or now is None else round(now - start, 1)
