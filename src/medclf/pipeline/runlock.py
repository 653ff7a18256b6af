"""One run per output folder: ``<run folder>/.lock`` names the run holding it (pid, host, start, command).

The lock is an exclusive ``flock`` on that file, which the operating system drops when the holder dies
however it ends (``kill -9`` included), so a stale file never blocks: the next run takes it over and says
whose it was. A second run while the holder lives stops at once with one line naming the holder.
Kernels do not inherit the lock (Python opens files non-inheritable).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from medclf.config import paths
from medclf.pipeline.plan import OrchestrationError


class LockHeld(OrchestrationError):
    """Another run holds the output folder's lock (reported as ``error: ...``, exit code 2)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def describe(holder: dict[str, Any]) -> str:
    """``pid 1234 on host h, started 2025-01-31T12:00:00+01:00 (run_all.py --profile quick)``."""
    text = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started {holder.get('started', '?')}"
    command = holder.get("command")
    return text + (f" ({' '.join(map(str, command))})" if command else "")


def read_holder(path: Path) -> dict[str, Any]:
    """The holder a lock file names, or ``{}`` (also for a symbolic link, which is never read)."""
    try:
        if path.is_symlink():
            return {}
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


@contextlib.contextmanager
def hold(root: str | os.PathLike, holder: dict[str, Any], say: Callable[[str], None]) -> Iterator[Path]:
    """Hold the lock of run folder ``root`` for the block (``holder``: pid, started, command are filled in);
    a stale lock file is taken over with a line to ``say``.

    Raises:
        LockHeld: another live run holds it.
    """
    path = paths.RunPaths(Path(root)).lock
    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), **holder}
    if path.is_symlink():  # a copied or hostile folder: the lock is written, so never through a link
        target = os.readlink(path)
        path.unlink()
        say(f"note: removed {path}, a symbolic link to {target} (left as it was); the lock is a plain file")
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:  # ELOOP: a link planted after the check above
            raise LockHeld(f"cannot open the lock file {path} as a plain file ({exc.strerror}); remove it and "
                           "rerun") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(f"output folder {path.parent} is in use by another run: {describe(read_holder(path))}; "
                           f"wait for it to finish or stop it (lock file {path})") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:  # the previous holder removed the file as we opened it
            same = False
        if same:
            break
        os.close(fd)
    try:
        previous = read_holder(path)
        if previous:
            dead = ("its process is gone" if previous.get("host") == holder["host"] and
                    isinstance(previous.get("pid"), int) and not _alive(previous["pid"])
                    else "it holds no lock any more")
            say(f"note: took over the stale lock of a run that ended without releasing it ({describe(previous)}; "
                f"{dead})")
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(holder, default=str) + "\n").encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
        if created:  # a run that stopped before writing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                path.parent.rmdir()
