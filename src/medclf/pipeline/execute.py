"""Notebook execution: papermill into a temporary file, HTML rendering, atomic moves, SIGTERM and SIGHUP as Ctrl-C.

Every file is written to a temporary file beside its destination and moved into place, so an
interrupted run (Ctrl-C, SIGTERM from ``kill`` or a job scheduler's time limit, SIGHUP from a closed
terminal) never leaves a truncated file behind, and the running kernel is stopped at once.

papermill and nbformat are imported by the functions that use them, not at
module level: the runner's start-up (``--help``, ``--list``, a bad parameter) stays free of them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from medclf.accel import cpu_steal
from medclf.config import paths
from medclf.core import io, progress
from medclf.reporting import pages
from medclf.pipeline import staging, watchdog
from medclf.pipeline.plan import Step

#: Kernel the notebooks run in.
KERNEL_NAME = "python3"

#: How often (seconds) the runner looks at a running notebook's progress (:mod:`medclf.core.progress`).
PROGRESS_INTERVAL_S = 5.0

#: The one papermill parameter the runner injects: the merged, checked settings as a flat dict
#: (:meth:`medclf.config.settings.Settings.as_params`); the notebooks' ``notebook_setup`` reads it.
SETTINGS_PARAMETER = "settings"


#: The signals that stop a run, with what the runner says (``<word>: finished notebooks are recorded ...``).
#: A terminal that closes sends SIGHUP to its foreground job, the runner, and not to the kernel, which
#: runs in a session of its own: like SIGTERM, Python's default would end the runner on the spot and
#: leave the kernel training on and run.json saying "running".
STOP_SIGNALS = {"SIGINT": "interrupted", "SIGTERM": "terminated (SIGTERM)", "SIGHUP": "terminated (SIGHUP)"}

#: Set by the signal handler: the kernel being shut down is then killed at once (:class:`RunnerKernelManager`).
_stopping = threading.Event()


class Terminated(KeyboardInterrupt):
    """A stop signal arrived (:data:`STOP_SIGNALS`; :attr:`signal_name` says which). Raised like Ctrl-C's
    KeyboardInterrupt so that the same clean-up runs: the kernel is shut down, temporary files are removed
    and run.json records the interruption."""

    def __init__(self, signal_name: str = "SIGINT") -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def stop_signal(exc: BaseException) -> str:
    """The name of the signal behind a KeyboardInterrupt (``SIGINT`` unless it was a :class:`Terminated`)."""
    return getattr(exc, "signal_name", "SIGINT")


@contextlib.contextmanager
def signals_as_interrupt():
    """Within the block SIGINT, SIGTERM and SIGHUP raise :class:`Terminated` and mark the run as stopping
    (main thread only; the previous handlers come back afterwards, so callers embedding the runner keep
    theirs). A signal the process was started ignoring stays ignored: ``nohup`` (SIGHUP) and a background
    job (SIGINT) keep their meaning."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum, frame):
        _stopping.set()
        raise Terminated(signal.Signals(signum).name)

    previous = {}
    for name in STOP_SIGNALS:
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
            previous[number] = signal.signal(number, raise_terminated)
    _stopping.clear()
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _stopping.clear()


@functools.cache
def _kernel_manager_class() -> type:
    """:class:`RunnerKernelManager`, made on first use: jupyter_client comes with papermill, not at import."""
    from jupyter_client.manager import AsyncKernelManager

    class RunnerKernelManager(AsyncKernelManager):
        """The runner's kernel manager: when the run is stopping (a stop signal arrived) the kernel is killed
        (SIGKILL to its process group, then reaped) instead of shut down gracefully.

        Why: nbclient shuts the kernel down in a ``finally`` while the KeyboardInterrupt unwinds, and the
        graceful way sends a shutdown request and waits up to ``shutdown_wait_time`` (5 s, SIGTERM half-way)
        for a kernel busy in native code (TensorFlow training), which cannot answer it: 2.5 s measured for
        ``sum(range(10**11))``. An interrupted notebook's outputs are discarded, so not waiting loses nothing.
        """

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            await super().shutdown_kernel(now=now or _stopping.is_set(), restart=restart)

    return RunnerKernelManager


def say(line: str = "") -> None:
    """Print one progress line for the user, flushed at once."""
    print(line, flush=True)


def one_line(text: Any, limit: int = 300) -> str:
    """The first non-empty line of ``text``, cut to ``limit`` characters."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _failed_cell_number(executed: Path, fallback_index: int | None) -> int | None:
    """1-based position in the *source* notebook (injected/error cells not counted) of the cell that
    failed, or else of the cell at index ``fallback_index`` of the executed notebook."""
    try:
        import nbformat

        node = nbformat.read(str(executed), as_version=4)
        positions, position = {}, 0
        for index, cell in enumerate(node.cells):
            tags = cell.get("metadata", {}).get("tags", [])
            if "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
                continue
            position += 1
            if cell.get("metadata", {}).get("papermill", {}).get("status") == "failed":
                return position
            positions[index] = position
        if fallback_index in positions:  # the kernel died, stalled or timed out in this cell
            return positions[fallback_index]
    except Exception:
        pass
    return None if fallback_index is None else fallback_index  # index incl. the injected cell ≈ 1-based


def _ended_early(executed: Path) -> tuple[str, int | None] | None:
    """``(error, cell)`` for a notebook that papermill finished without running all of it, else ``None``:
    a cell that called ``sys.exit()`` (IPython shows the SystemExit and papermill goes on, or stops, without
    an error) or a code cell left unexecuted. ``cell`` is its 1-based position in the source notebook."""
    import nbformat

    try:
        node = nbformat.read(str(executed), as_version=4)
    except Exception as exc:
        return f"the executed notebook cannot be read back ({type(exc).__name__}: {one_line(exc)})", None
    position = 0
    for cell in node.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        position += 1
        if cell.get("cell_type") != "code" or not str(cell.get("source", "")).strip():
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and output.get("ename") == "SystemExit":
                code = output.get("evalue") or "None"
                return (f"the notebook stopped itself with sys.exit({code}) before its last cell; a notebook's "
                        "result is all of its cells: remove the exit or raise an error instead"), position
        if cell.get("execution_count") is None:
            return "the cell never ran: the notebook ended before its last cell", position
    return None


class _RunningCell:
    """nbclient hooks that remember which cell is executing: the one a dead, stalled or timed-out kernel was in."""

    def __init__(self) -> None:
        self.index: int | None = None

    def started(self, cell: Any = None, cell_index: int | None = None, **_: Any) -> None:
        self.index = cell_index

    def finished(self, cell: Any = None, cell_index: int | None = None, **_: Any) -> None:
        self.index = None


def _respect_umask(path: Path) -> None:
    """Give a ``mkstemp`` file (mode 0600) the permissions a normally created file would have."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_html(notebook_file: Path, html_path: Path, hide_code: bool) -> None:
    """Render an executed notebook as a standalone HTML page (atomic write)."""
    io.write_text(html_path, pages.notebook_html(notebook_file, hide_code))


def execute_notebook(step: Step, out_dir: str | Path, settings: dict[str, Any], cwd: str | Path,
                     hide_code: bool = False, stage: staging.Stage | None = None) -> dict[str, Any]:
    """Execute one planned notebook with ``settings`` injected as its :data:`SETTINGS_PARAMETER`; return
    ``{"status", "wall_s", "steal_s", "error", "cell"}`` (``steal_s``: CPU seconds the hypervisor
    took meanwhile, see :mod:`medclf.accel.cpu_steal`; ``None`` with the ``accel`` setting off).

    With a ``stage`` (:mod:`medclf.pipeline.staging`) the kernel writes its outputs there and the
    executed notebook and HTML go there too, for the runner to publish; without, into ``out_dir``.
    The notebook is executed into a hidden temporary file (saved after every cell). On success the HTML
    is rendered and both are moved into place, and stale ``.failed`` files are removed. On failure the
    executed notebook becomes ``<out_dir>/notebooks/NN_name.failed.ipynb`` (plus ``.failed.html``)
    and the last good executed notebook and HTML are left untouched. ``cell_timeout_s`` bounds each
    cell (papermill's ``execution_timeout``), ``stall_timeout_s`` a kernel without progress
    (:mod:`medclf.pipeline.watchdog`).
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    papermill_log = logging.getLogger("papermill")  # its errors (a timeout, a dead kernel) are reported here
    if not papermill_log.handlers:
        papermill_log.addHandler(logging.NullHandler())

    published = paths.RunPaths(Path(out_dir)).notebook_outputs(step.notebook.stem)
    work = Path(stage.dir) if stage else Path(out_dir)
    outputs = paths.RunPaths(work).notebook_outputs(step.notebook.stem)
    outputs["executed"].parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{step.notebook.stem}.", suffix=".tmp.ipynb",
                                    dir=outputs["executed"].parent)
    os.close(fd)
    tmp = Path(tmp_name)
    _respect_umask(tmp)
    steal_counted = settings.get("accel", True)  # CPU-steal accounting is one of the optional accel features
    start, steal_start = time.monotonic(), cpu_steal.steal_seconds() if steal_counted else None
    error, cell = None, None
    status_file = outputs["executed"].parent / f".{step.notebook.stem}.progress.json"
    stall_s, cell_s = settings.get("stall_timeout_s"), settings.get("cell_timeout_s")
    label = step.notebook.stem
    dog, running = None, _RunningCell()
    try:
        try:
            with contextlib.ExitStack() as context:
                context.enter_context(staging.staged_env(stage) if stage else contextlib.nullcontext())
                context.enter_context(progress.watch(status_file, lambda line: say(f"      {label} {line}"),
                                                     interval=PROGRESS_INTERVAL_S))
                dog = context.enter_context(watchdog.watching(stall_s, [status_file, tmp], say, label))
                papermill.execute_notebook(
                    str(step.path), str(tmp), parameters={SETTINGS_PARAMETER: settings}, kernel_name=KERNEL_NAME,
                    language="python", cwd=str(cwd), progress_bar=False, log_output=False,
                    request_save_on_cell_execute=True, execution_timeout=cell_s,
                    on_cell_execute=running.started, on_cell_executed=running.finished,
                    kernel_manager_class=_kernel_manager_class(),
                    extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
        except PapermillExecutionError as exc:
            cell = _failed_cell_number(tmp, exc.cell_index)
            error = f"{exc.ename}: {one_line(exc.evalue)}" if exc.evalue else str(exc.ename)
        except Exception as exc:  # kernel died, cell timed out, missing kernel, unreadable notebook, ...
            cell = _failed_cell_number(tmp, running.index) if running.index is not None else None
            error = f"{type(exc).__name__}: {one_line(exc)}"
            if type(exc).__name__ == "CellTimeoutError":
                error = (f"cell timed out after {cell_s} s (cell_timeout_s: raise it, or null for no limit)")
        if dog is not None and dog.stalled:
            error = dog.stalled
        wall, steal = round(time.monotonic() - start, 2), cpu_steal.stolen_since(steal_start)
        if error is None and (early := _ended_early(tmp)):
            error, cell = early
        if error is None:
            try:
                write_html(tmp, outputs["html"], hide_code)
            except Exception as exc:
                error = f"HTML report failed: {type(exc).__name__}: {one_line(exc)}"
            else:
                os.replace(tmp, outputs["executed"])
                for stale in (published["failed"], published["failed_html"]):
                    stale.unlink(missing_ok=True)
                return {"status": "ok", "wall_s": wall, "steal_s": steal, "error": None, "cell": None}
        kept = None
        if tmp.is_file() and tmp.stat().st_size > 0:
            published["failed"].parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, published["failed"])
            kept = str(published["failed"])
            try:
                write_html(published["failed"], published["failed_html"], hide_code=False)
            except Exception:
                published["failed_html"].unlink(missing_ok=True)
        else:  # nothing was executed: no copy is kept, and none from an earlier failure may pass for it
            for stale in (published["failed"], published["failed_html"]):
                stale.unlink(missing_ok=True)
        return {"status": "failed", "wall_s": wall, "steal_s": steal, "error": error, "cell": cell,
                "kept": kept}
    finally:
        tmp.unlink(missing_ok=True)
