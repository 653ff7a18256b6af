"""Helpers for the bad-input suites (``tests/test_bad_inputs_*.py``): run a command line as a user would,
check it failed with one clear line, and check that existing outputs were left byte-identical."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from medclf.config import paths

RUN_ALL = str(paths.PROJECT_ROOT / "run_all.py")


def snapshot(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` (empty when ``root`` does not exist)."""
    root = Path(root)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def run(args: list[str], *, cwd: Path | None = None, env: dict | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    """``python <args>`` in a fresh process (``args[0]`` is a script path or ``-m``), text output captured."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd or paths.PROJECT_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_all(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python run_all.py <args>`` in a fresh process."""
    return run([RUN_ALL, *args], **kwargs)


def predict(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -m medclf predict <args>`` in a fresh process."""
    return run(["-m", "medclf", "predict", *args], **kwargs)


def predict_in_process(capfd, *args: str) -> subprocess.CompletedProcess:
    """``python -m medclf predict <args>`` through its entry point (:func:`medclf.__main__.main`) in this
    process: what it writes to stdout and stderr (Python's streams and the file descriptors, ``capfd``) and
    the warnings it raises, shown as a fresh interpreter's default filters show them. No interpreter and
    TensorFlow start-up per call, so a table of bad inputs runs in seconds; :func:`predict` is the fresh process."""
    import warnings

    from PIL import Image

    from medclf.__main__ import main

    capfd.readouterr()
    pixel_limit = Image.MAX_IMAGE_PIXELS  # --max-image-pixels sets PIL's limit process-wide
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for hidden in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", hidden)
        try:
            code = main(["predict", *args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
        finally:
            Image.MAX_IMAGE_PIXELS = pixel_limit
    out, err = capfd.readouterr()
    err += "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    return subprocess.CompletedProcess(["predict", *args], code, out, err)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    """``proc`` exited with ``code``, printed no traceback, and its stderr is exactly one non-empty
    line containing every needle (case-insensitive); returns that line."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}:\n{output[-3000:]}"
    assert "Traceback" not in output, f"traceback printed:\n{output[-3000:]}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line on stderr, got {len(lines)}:\n{proc.stderr[-3000:]}"
    for needle in needles:
        assert needle.lower() in lines[0].lower(), f"{needle!r} not in the error line: {lines[0]}"
    return lines[0]
