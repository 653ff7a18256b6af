"""What a run was made with: package versions and the git commit, without importing the packages.

Versions come from ``importlib.metadata`` (installed distributions), so recording them does not
import TensorFlow; the git state comes from the ``git`` command and is ``None`` where there is
no git or no repository.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

#: Distributions whose versions every run records (distribution names, as pip spells them).
PACKAGES = ("tensorflow", "keras", "numpy", "pandas", "scikit-learn", "papermill", "nbconvert")


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """``{"python": "3.11.7", "tensorflow": "2.21.0", ...}``; ``None`` for a package not installed."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(root: str | Path) -> dict[str, str | bool | None]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository holding ``root``.

    ``dirty`` is true when tracked files differ from the commit or untracked, non-ignored files
    exist; both are ``None`` without git or outside a repository (or before the first commit).
    """
    root = Path(root)
    if not root.is_dir():
        return {"commit": None, "dirty": None}
    commit = _git(root, "rev-parse", "--verify", "--quiet", "HEAD")
    status = _git(root, "status", "--porcelain")
    return {"commit": commit or None, "dirty": None if status is None else bool(status)}
