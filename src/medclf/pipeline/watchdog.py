"""Stall watchdog: a kernel that makes no progress for ``stall_timeout_s`` is stopped, so a run never hangs.

Progress is any of: the kernel (with its child processes) using CPU, its progress file
(:mod:`medclf.core.progress`) or its executed notebook (saved after every cell) changing. A kernel that is
frozen (a deadlock, ``kill -STOP``) shows none of them; training, scoring and decoding all use CPU.
Half-way the runner prints a warning; at the limit it prints why, kills the kernel's process tree and the
notebook fails with that reason (papermill sees the kernel die). The per-cell limit is papermill's
``execution_timeout`` (``cell_timeout_s``), set by :mod:`medclf.pipeline.execute`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import psutil

#: CPU seconds per wall second below which a kernel counts as idle (its background threads wake now and then).
IDLE_CPU_SHARE = 0.02


def _kernel(runner: psutil.Process) -> psutil.Process | None:
    """The runner's kernel process (``python -m ipykernel_launcher ...``), or ``None`` before it started."""
    with contextlib.suppress(psutil.Error):
        for child in runner.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if any("ipykernel" in part for part in child.cmdline()):
                    return child
    return None


def _cpu_seconds(kernel: psutil.Process) -> float:
    total = 0.0
    with contextlib.suppress(psutil.Error):
        for process in [kernel, *kernel.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
    return total


def _mtimes(files: Sequence[Path]) -> tuple[int, ...]:
    stamps = []
    for path in files:
        try:
            stamps.append(Path(path).stat().st_mtime_ns)
        except OSError:
            stamps.append(0)
    return tuple(stamps)


class Watchdog:
    """Watches the runner's kernel in a thread; :attr:`stalled` holds the reason once it stopped the kernel."""

    def __init__(self, stall_s: float, files: Sequence[Path], say: Callable[[str], None], label: str):
        self.stall_s, self.files, self.say, self.label = float(stall_s), list(files), say, label
        self.interval = max(0.2, min(5.0, self.stall_s / 10))
        self.stalled: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="medclf-watchdog", daemon=True)

    def _loop(self) -> None:
        runner = psutil.Process()
        kernel, cpu, stamps = None, 0.0, _mtimes(self.files)
        last_active, warned = time.monotonic(), False
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            if kernel is None or not kernel.is_running():
                kernel = _kernel(runner)
                cpu = _cpu_seconds(kernel) if kernel else 0.0
                last_active = now
                continue
            new_cpu, new_stamps = _cpu_seconds(kernel), _mtimes(self.files)
            if new_cpu - cpu > IDLE_CPU_SHARE * self.interval or new_stamps != stamps:
                last_active, warned = now, False
            cpu, stamps = new_cpu, new_stamps
            idle = now - last_active
            if idle >= self.stall_s:
                self._stop_kernel(kernel, idle)
                return
            if idle >= self.stall_s / 2 and not warned:
                warned = True
                self.say(f"      {self.label} warning: no progress for {idle:.0f} s ({self._state(kernel)}); "
                         f"the kernel is stopped after {self.stall_s:.0f} s (stall_timeout_s)")

    @staticmethod
    def _state(kernel: psutil.Process) -> str:
        with contextlib.suppress(psutil.Error):
            if kernel.status() == psutil.STATUS_STOPPED:
                return f"kernel pid {kernel.pid} is stopped, e.g. by kill -STOP"
        return f"kernel pid {kernel.pid} uses no CPU"

    def _stop_kernel(self, kernel: psutil.Process, idle: float) -> None:
        self.stalled = (f"stalled: no progress for {idle:.0f} s ({self._state(kernel)}); the kernel was stopped "
                        f"(stall_timeout_s={self.stall_s:g}: raise it, or null for no limit)")
        self.say(f"      {self.label} {self.stalled}")
        with contextlib.suppress(psutil.Error):
            processes = [*kernel.children(recursive=True), kernel]
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    process.kill()  # SIGKILL: a stopped process ignores everything else until continued

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def watching(stall_s: float | None, files: Sequence[Path], say: Callable[[str], None],
             label: str) -> Iterator[Watchdog | None]:
    """A running :class:`Watchdog` for the block, or ``None`` when ``stall_s`` is ``None`` (no limit)."""
    if not stall_s:
        yield None
        return
    with Watchdog(stall_s, files, say, label) as dog:
        yield dog
