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


def clocks() -> tuple[float, float]:
    """``(wall, CPU)`` seconds now; CPU is this process's, all threads (it does not count CPU steal)."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    """``(wall, CPU)`` seconds elapsed since ``start = clocks()``."""
    return tuple(now - then for now, then in zip(clocks(), start))
