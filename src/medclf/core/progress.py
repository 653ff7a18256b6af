"""Progress of long work, for whoever is waiting: which model is training, which epoch, how fast.

``run_all.py`` executes notebooks headless, in a kernel whose output it only sees when the notebook has
finished — an hour later for a full-profile notebook on a CPU. So the kernel keeps a small JSON status
file up to date (what it is doing, the epoch, seconds per epoch, the last validation metrics) and the
runner prints a line whenever that file changes (:func:`watch`). The runner names the file in the
environment variable :data:`ENV_VAR`, which the kernel inherits; without it :func:`report` writes nothing.
In an interactive notebook the same epochs advance a tqdm bar instead (``medclf.training.fit.fit_keras``).

What is being done is a stack of labels (:func:`task`), e.g. ``cnn_ours_chest_ensemble · member 2/3``, so
the code that trains one network need not know which model, member or stage it belongs to.

This module imports nothing heavy: the runner, which never imports TensorFlow, uses it too.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from medclf.core import io

#: Environment variable naming the status file the kernel writes.
ENV_VAR = "MEDCLF_PROGRESS_FILE"

_labels: list[str] = []


@contextlib.contextmanager
def task(label: str) -> Iterator[None]:
    """Label the work done inside the block (nested blocks add to the label) and report its start."""
    _labels.append(str(label))
    try:
        report()
        yield
    finally:
        _labels.pop()


def current_task() -> str:
    """The labels of the enclosing :func:`task` blocks, outermost first, joined by `` · ``."""
    return " · ".join(_labels)


def report(**fields: Any) -> None:
    """Write the current task and ``fields`` (e.g. ``epoch``, ``epochs``) to the status file, if there is one.

    Never raises for an unwritable file: progress must not stop the work it reports on.
    """
    path = os.environ.get(ENV_VAR)
    if not path:
        return
    with contextlib.suppress(OSError):
        io.write_json(path, {"task": current_task(), **fields})


def bars_wanted() -> bool:
    """Whether to draw progress bars: not in a kernel the runner watches (:data:`ENV_VAR` set), whose
    saved notebook and HTML report would keep every redraw as a line; the runner prints progress instead."""
    return ENV_VAR not in os.environ


def epoch_fields(epoch: int, epochs: int, seconds: list[float], logs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fields :func:`report` gets at the end of an epoch: 1-based ``epoch`` of at most ``epochs``, the mean
    seconds per epoch so far, and the validation metrics of ``logs`` (Keras' epoch logs)."""
    val = {key[4:]: round(float(value), 4) for key, value in (logs or {}).items()
           if key.startswith("val_") and isinstance(value, (int, float))}
    return {"epoch": int(epoch), "epochs": int(epochs),
            "seconds_per_epoch": round(sum(seconds) / len(seconds), 1) if seconds else None, "val": val}


def describe(state: Mapping[str, Any]) -> str:
    """One line for a status: ``cnn_deeper · epoch 4/10 · 65 s/epoch, ≤ 7 min left · val auc 0.962, loss 0.210``.

    "Left" is what the remaining epochs of this fit take at the mean pace so far: an upper bound, since
    early stopping may end the fit sooner (scoring, and any further model, come on top)."""
    parts = [state.get("task") or "preparing"]
    epoch, epochs, pace = state.get("epoch"), state.get("epochs"), state.get("seconds_per_epoch")
    if epoch:
        parts.append(f"epoch {epoch}/{epochs or '?'}")
    if pace:
        left = (epochs - epoch) * pace if epoch and epochs and epochs > epoch else 0
        parts.append(f"{pace:.0f} s/epoch" + (f", ≤ {math.ceil(left / 60)} min left" if left else ""))
    val = state.get("val") or {}
    if val:
        parts.append("val " + ", ".join(f"{key} {value:.3f}" for key, value in sorted(val.items())))
    return " · ".join(parts)


def read_state(path: str | os.PathLike) -> dict[str, Any] | None:
    """The status in ``path``; ``None`` if there is none yet (or it cannot be read)."""
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


@contextlib.contextmanager
def watch(path: str | os.PathLike, emit: Callable[[str], None], interval: float = 5.0) -> Iterator[None]:
    """While the block runs, :data:`ENV_VAR` names ``path`` (processes started inside inherit it) and a
    background thread calls ``emit`` with each new status line (prefixed by the minutes elapsed), checking
    every ``interval`` seconds. Afterwards the variable is restored and the file removed."""
    path = Path(path)
    path.unlink(missing_ok=True)
    before, stop, start = os.environ.get(ENV_VAR), threading.Event(), time.monotonic()

    def poll() -> None:
        last = None
        while not stop.wait(interval):
            state = read_state(path)
            line = describe(state) if state is not None else None
            if line is not None and line != last:
                last = line
                minutes, seconds = divmod(int(time.monotonic() - start), 60)
                emit(f"{minutes:d}:{seconds:02d} {line}")

    os.environ[ENV_VAR] = str(path)
    thread = threading.Thread(target=poll, name="medclf-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if before is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = before
        path.unlink(missing_ok=True)
