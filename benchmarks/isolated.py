"""Run one benchmark variant in a fresh Python process.

Timing two variants one after the other in one process is order-dependent here: TensorFlow keeps
thread pools, oneDNN kernel caches and allocator state from the first (a 10-epoch directory-loader
run made a following feature extraction ~1.6x slower). Each variant therefore runs alone in a
spawned process and returns its numbers.
"""

from __future__ import annotations

import multiprocessing
import time


def run_isolated(function, *args):
    """``function(*args)`` in a fresh spawned process (``function`` must be importable); returns its result."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def clocks() -> tuple[float, float, float | None]:
    """``(wall, CPU, steal)`` seconds now: CPU is this process's, all threads (it does not count CPU
    steal); steal is the machine's (``None`` where /proc/stat is unreadable)."""
    from medclf.accel import cpu_steal

    return time.perf_counter(), time.process_time(), cpu_steal.steal_seconds()


def since(start: tuple[float, float, float | None]) -> tuple[float, float, float | None]:
    """``(wall, CPU, steal)`` seconds elapsed since ``start = clocks()``."""
    from medclf.accel import cpu_steal

    wall, cpu, _ = clocks()
    return wall - start[0], cpu - start[1], cpu_steal.stolen_since(start[2])
