"""Quiet start-up: no TensorFlow/absl/CUDA log lines unless asked for (``MEDCLF_VERBOSE=1``, ``run_all.py --verbose``).

Two kinds of start-up noise reach the terminal and every notebook's output (as red stderr blocks):

* C++ log lines written once TensorFlow's logging is set up (``E0000 … failed call to cuInit`` on a
  machine without a GPU driver, ``W0000 …``). ``TF_CPP_MIN_LOG_LEVEL=3`` drops them; it must be set
  before TensorFlow is imported. It hides nothing from a present GPU: devices are found as before.
* Lines written while TensorFlow's shared libraries load, before absl's logging is initialised
  (``WARNING: All log messages before absl::InitializeLog() …``, ``I0000 … port.cc] oneDNN custom
  operations are on``, ``I0000 … cudart_stub.cc] Could not find cuda drivers``). absl writes
  those regardless of any level or environment variable (abseil-cpp PR #1957 is about exactly
  this), so the only way to keep them off the screen is at the file-descriptor level: while
  ``tensorflow`` is imported, file descriptor 2 points at a temporary file; afterwards every line
  that is not such an info/warning line (a real error, a Python warning) is written back to stderr.

:func:`install` does both; ``medclf/__init__.py`` calls it, so the runner, the notebook kernels it
starts (they inherit the environment and import medclf before TensorFlow) and ``python -m medclf``
are all quiet. The user's own values of these variables win.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import json
import os
import re
import sys
import tempfile

#: Set to 1 (``run_all.py --verbose`` does) to see TensorFlow's start-up lines again.
VERBOSE_ENV = "MEDCLF_VERBOSE"

#: Environment defaults for a quiet TensorFlow (set only where the user has not set them).
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR"}

#: Lines dropped from stderr while TensorFlow's libraries load: absl's banner, info and warning lines.
NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                   r"|[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] )")

_set_by_us: dict[str, str] = {}


def verbose() -> bool:
    """Whether the user asked for TensorFlow's start-up lines (``MEDCLF_VERBOSE`` set and not 0)."""
    return os.environ.get(VERBOSE_ENV, "0").strip().lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def filtered_native_stderr():
    """Within the block, file descriptor 2 writes to a temporary file; on exit every line not matching
    :data:`NOISE` is written back to the real stderr (so errors and warnings still show)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not NOISE.match(line)]
            if kept:
                os.write(2, "".join(kept).encode())


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader of ``tensorflow`` inside :func:`filtered_native_stderr`."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with filtered_native_stderr():
            self.loader.exec_module(module)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` the ordinary way and hands back its spec with a :class:`_QuietLoader`.
    It removes itself on first use: TensorFlow is imported once per process."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        uninstall_import_filter()
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def uninstall_import_filter() -> None:
    """Stop filtering TensorFlow's import (``--verbose``)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietTensorFlowFinder)]


def reopen_closed_stderr() -> None:
    """Give a process started with stderr closed (``2>&-``) ``/dev/null`` as file descriptor 2 and
    ``sys.stderr``. Python sets ``sys.stderr`` to ``None`` then, and the first write, flush or ``os.dup(2)``
    (this module's filter, the runner's messages) would end the process in a traceback nobody sees,
    with exit code 1 whatever the command's own result."""
    try:
        os.fstat(2)
    except OSError:
        fd = os.open(os.devnull, os.O_WRONLY)
        if fd != 2:
            os.dup2(fd, 2)
            os.close(fd)
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False, errors="backslashreplace")  # noqa: SIM115 - lives as long as the process


def keras_backend_problem() -> str | None:
    """Why Keras would not load the TensorFlow backend medclf is written for (one line naming where the
    other backend is set and what to do), or ``None``. Read from ``KERAS_BACKEND`` and, when that is unset,
    Keras's ``keras.json`` (in ``KERAS_HOME`` or ``~/.keras``) without importing Keras, so the command can
    say it before the error surfaces as a model failing to build."""
    backend = os.environ.get("KERAS_BACKEND")
    if backend is not None:
        where, fix = f"KERAS_BACKEND={backend}", "unset KERAS_BACKEND or set KERAS_BACKEND=tensorflow"
    else:
        config = os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME") or "~/.keras"), "keras.json")
        try:
            with open(config, encoding="utf-8") as handle:
                backend = json.load(handle).get("backend")
        except (OSError, ValueError, AttributeError):
            return None  # Keras then uses its default, TensorFlow
        where, fix = f'"backend": "{backend}" in {config}', f'set "backend": "tensorflow" there or KERAS_BACKEND=tensorflow'
    if backend is None or str(backend).strip().lower() == "tensorflow":
        return None
    return f"{where}: medclf needs Keras's TensorFlow backend (its models and saved files are TensorFlow's); {fix}"


def install() -> None:
    """Quiet TensorFlow's start-up in this process and in the processes it starts (environment), unless
    :func:`verbose`. Has no effect on a TensorFlow that is already imported except the log level.
    A closed stderr is first replaced by ``/dev/null`` (:func:`reopen_closed_stderr`)."""
    reopen_closed_stderr()
    if verbose():
        return
    for key, value in QUIET_ENV.items():
        if key not in os.environ:
            os.environ[key] = _set_by_us[key] = value
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())


def make_verbose() -> None:
    """Undo :func:`install` and mark the environment verbose, for this process and the kernels it starts."""
    os.environ[VERBOSE_ENV] = "1"
    for key, value in list(_set_by_us.items()):
        if os.environ.get(key) == value:
            del os.environ[key]
        del _set_by_us[key]
    uninstall_import_filter()
