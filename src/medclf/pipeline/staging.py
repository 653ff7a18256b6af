"""All or nothing per notebook: a running notebook writes into a staging folder the runner publishes on success.

A notebook's records, predictions, models, model cards, figures, tables, executed copy and HTML become
visible together, and only when it succeeded; an interrupted or failed notebook leaves the published
tree as it was. The steps, for notebook ``NN_name`` of run folder ``<run>``:

1. :func:`open_stage`: ``<run>/.staging/NN_name/`` starts as a *hard-linked* copy of the published tree
   (run state left out: :meth:`medclf.config.paths.RunPaths.is_run_state`), so the notebook reads the
   earlier notebooks' outputs as usual. Every writer replaces files (:func:`medclf.core.io.atomic_path`:
   a new file moved over the name), never rewrites one in place, so a link is never written through.
2. While the kernel runs, :data:`medclf.config.paths.STAGING_ENV` names that folder, and
   :func:`medclf.config.paths.run_dir` answers it in the kernel: every write lands in staging.
3. :func:`publish`: the files that are new or replaced (a different inode than the published file's)
   and the names the notebook removed are written to a journal ``<run>/.staging/NN_name.publish.json``
   together with the notebook's run.json entry; then each file is moved into place (``os.replace``),
   run.json is updated, and the journal and staging folder are removed.
4. :func:`recover`, at the start of the next run (holding the lock): a journal left by a run that
   stopped mid-publish is completed (the moves are idempotent: a file already moved is skipped) and
   its run.json entry written, so the tree is the finished notebook's; a staging folder without a journal
   (a run stopped before its notebook finished) is removed, its notebook reruns (run.json says it did not
   finish).

A run folder is something people copy, share and unpack, so its state is input like any image: a journal's
paths must stay inside the run folder (:meth:`medclf.config.paths.RunPaths.inside`) and its entry must be a
notebook entry as the runner writes it, or the journal is refused (nothing moved or removed) and its
notebook reruns; a ``.staging`` that is a symbolic link, or a link inside it, is removed (the link, not
what it points to); a link anywhere else in the published tree stops the run (:func:`check_tree`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medclf.config import paths
from medclf.core import io
from medclf.pipeline.plan import OrchestrationError


@dataclass
class Stage:
    """One notebook's staging folder and what it started from (``{relative path: (device, inode)}``)."""

    stem: str
    dir: Path
    base: dict[str, tuple[int, int]]


def _published(layout: paths.RunPaths) -> Iterator[tuple[str, Path]]:
    for path in layout.published_files():
        yield path.relative_to(layout.root).as_posix(), path


def check_tree(root: str | os.PathLike) -> None:
    """Refuse a run folder whose published tree holds a symbolic link: a write through it (a notebook's
    replaced record, a publish's move) would land outside the run folder.

    Raises:
        OrchestrationError: one line naming the link and what to do.
    """
    layout = paths.RunPaths(Path(root))
    planted = [link for link in layout.links() if not layout.is_run_state(link.relative_to(layout.root).as_posix())]
    if planted:
        more = f" (and {len(planted) - 1} more)" if len(planted) > 1 else ""
        raise OrchestrationError(
            f"{planted[0]} is a symbolic link (to {os.readlink(planted[0])}){more}: medclf writes a run folder "
            "through plain files and folders only, so a write cannot land outside it; replace the link by a copy "
            "of what it points to, or remove it")


def _files(folder: Path) -> dict[str, Path]:
    """Files under ``folder`` by relative path, leaving out hidden names (unfinished atomic writes)."""
    found = {}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            found[rel.as_posix()] = path
    return found


def _identity(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_dev, info.st_ino


def open_stage(root: str | os.PathLike, stem: str) -> Stage:
    """A fresh staging folder for notebook ``stem`` holding links to (or, where the file system has no
    hard links, copies of) every published file; a leftover one is replaced."""
    layout = paths.RunPaths(Path(root))
    folder = layout.staging(stem)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    base = {}
    for rel, path in _published(layout):
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        base[rel] = _identity(target)
    return Stage(stem, folder, base)


@contextlib.contextmanager
def staged_env(stage: Stage) -> Iterator[None]:
    """Within the block, :data:`medclf.config.paths.STAGING_ENV` names the stage (kernels started inside inherit it)."""
    before = os.environ.get(paths.STAGING_ENV)
    os.environ[paths.STAGING_ENV] = str(stage.dir)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(paths.STAGING_ENV, None)
        else:
            os.environ[paths.STAGING_ENV] = before


def discard(root: str | os.PathLike, stem: str) -> None:
    """Remove notebook ``stem``'s staging folder (and ``.staging`` itself once empty)."""
    layout = paths.RunPaths(Path(root))
    shutil.rmtree(layout.staging(stem), ignore_errors=True)
    with contextlib.suppress(OSError):
        layout.staging_root.rmdir()


def changes(stage: Stage) -> tuple[list[str], list[str]]:
    """``(files to move into place, published files to remove)``, as paths relative to the run folder."""
    staged = _files(stage.dir)
    moved = sorted(rel for rel, path in staged.items() if stage.base.get(rel) != _identity(path))
    removed = sorted(rel for rel in stage.base if rel not in staged)
    return moved, removed


#: Moves a file into place; tests replace it to stop a publish half-way.
_replace = os.replace


def _apply(root: Path, stem: str, moved: list[str], removed: list[str]) -> int:
    """Carry out a publish's moves and removals; a move whose staged file is gone was done already."""
    layout = paths.RunPaths(root)
    done = 0
    for rel in moved:
        source, target = layout.staging(stem) / rel, root / rel
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            _replace(source, target)
            done += 1
    for rel in removed:
        (root / rel).unlink(missing_ok=True)
    return done


def publish(root: str | os.PathLike, stage: Stage, name: str, entry: dict[str, Any],
            record: Callable[[str, dict[str, Any]], Any]) -> int:
    """Move the stage's new and replaced files into the run folder, remove what the notebook removed,
    then ``record(name, entry)`` (which writes the notebook's run.json entry); return how many files moved.

    The journal written first holds the moves and the entry, for :func:`recover`."""
    root = Path(root)
    moved, removed = changes(stage)
    journal = paths.RunPaths(root).publish_journal(stage.stem)
    io.write_json(journal, {"notebook": stage.stem, "name": name, "entry": entry, "moved": moved,
                            "removed": removed})
    done = _apply(root, stage.stem, moved, removed)
    record(name, entry)
    journal.unlink(missing_ok=True)
    discard(root, stage.stem)
    return done


def settle(root: str | os.PathLike, stem: str, record: Callable[[str, dict[str, Any]], Any],
           entry_problem: EntryCheck) -> bool:
    """After an interruption: finish notebook ``stem``'s publish if it had begun (its journal exists) and
    return True, else discard its staging folder and return False."""
    if paths.RunPaths(Path(root)).publish_journal(stem).is_file():
        recover(root, record, entry_problem)
        return True
    discard(root, stem)
    return False


#: ``entry_problem(stem, name, entry)``: what makes a journal's notebook name and run.json entry unlike the
#: runner's own for notebook ``stem``, or ``None`` (the runner knows its registry and run.json's shape).
EntryCheck = Callable[[str, str, Any], "str | None"]


def _journal_problem(layout: paths.RunPaths, stem: str, plan: Any, entry_problem: EntryCheck) -> str | None:
    """What makes a parsed publish journal unsafe or unusable, or ``None``."""
    if not isinstance(plan, dict):
        return f"it holds a {type(plan).__name__}, not a mapping"
    if plan.get("notebook") != stem:
        return f"it names notebook {plan.get('notebook')!r:.60}, not {stem}"
    name = plan.get("name")
    if not isinstance(name, str):
        return f"its name {name!r:.60} is not a string"
    for key, base in (("moved", layout.staging(stem)), ("removed", layout.root)):
        items = plan.get(key)
        if not isinstance(items, list):
            return f"its {key} is not a list"
        for rel in items:
            target = layout.inside(rel)
            if target is None or layout.is_run_state(rel) or target.is_dir() or (
                    key == "moved" and paths.RunPaths(base).inside(rel) is None):
                return f"its {key} names {rel!r:.80}, which is not a published file inside the run folder"
    problem = entry_problem(stem, name, plan.get("entry"))
    return f"its entry is not a notebook entry as the runner writes it: {problem}" if problem else None


def _neutralize_links(layout: paths.RunPaths) -> list[str]:
    """Remove a ``.staging`` that is a symbolic link, or links inside it (the links only); one line each."""
    said = []
    candidates = [layout.staging_root] if layout.staging_root.is_symlink() else (
        [path for path in layout.staging_root.iterdir() if path.is_symlink()] if layout.staging_root.is_dir() else [])
    for link in candidates:
        target = os.readlink(link)
        link.unlink()
        said.append(f"removed {link}, a symbolic link to {target} (left as it was): the runner's staging state "
                    "is plain files and folders it made, never followed through a link")
    return said


def recover(root: str | os.PathLike, record: Callable[[str, dict[str, Any]], Any],
            entry_problem: EntryCheck) -> list[str]:
    """Finish every publish a stopped run left half done and remove unfinished staging folders; return
    one line per thing done, for the user.

    A journal is input (the folder may have been copied from anyone): one whose paths leave the run
    folder, or whose name and entry ``entry_problem`` rejects (:data:`EntryCheck`), is refused:
    nothing it names is moved or removed, its notebook reruns, and a line says why."""
    root = Path(root)
    layout = paths.RunPaths(root)
    said = _neutralize_links(layout)
    if not layout.staging_root.is_dir():
        return said
    for journal in sorted(layout.staging_root.glob("*.publish.json")):
        stem = journal.name[: -len(".publish.json")]
        try:
            plan = json.loads(journal.read_text())
        except (OSError, ValueError):
            plan, problem = None, "it is not readable JSON"
        else:
            problem = _journal_problem(layout, stem, plan, entry_problem)
        if problem:
            said.append(f"refused the publish journal {journal}: {problem}; nothing it names was moved or "
                        "removed (the journal and its staging folder were deleted)")
            journal.unlink(missing_ok=True)
            discard(root, stem)
            continue
        moved, removed, name, entry = plan["moved"], plan["removed"], plan["name"], plan["entry"]
        done = _apply(root, stem, moved, removed)
        record(name, entry)
        journal.unlink(missing_ok=True)
        discard(root, stem)
        said.append(f"recovered: finished publishing {stem}, which a stopped run had begun "
                    f"({done} of its {len(moved)} files were still to move)")
    left = sorted(layout.staging_root.iterdir()) if layout.staging_root.is_dir() else []
    for path in left:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            said.append(f"removed the unpublished outputs of {path.name} left by a stopped run; "
                        "the published ones are unchanged")
        else:  # e.g. a journal's unfinished temporary file
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        layout.staging_root.rmdir()
    return said
