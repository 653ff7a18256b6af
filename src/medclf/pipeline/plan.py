"""Run planning: the notebook registry, selection, settings merged once, fingerprints, run-or-skip.

A notebook's *fingerprint* hashes its file bytes, the settings hash, all ``*.py`` source of
``medclf``, the data manifest fingerprint and the fingerprints of the notebooks it depends on.
It is skipped as up to date when that equals the fingerprint of its last successful run, its last
attempt did not fail or stop (:data:`UNFINISHED`), no notebook it depends on reran (in this run, or
since it last succeeded) and its executed notebook and HTML exist.

Light at import time (no TensorFlow, papermill or pandas), so ``run_all.py --list`` answers quickly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medclf.config import paths
from medclf.config.params import check_model_names, load_params
from medclf.config.settings import Settings


class OrchestrationError(ValueError):
    """A bad request to the runner (e.g. an unknown notebook name); reported as ``error: ...``."""


@dataclass(frozen=True)
class Notebook:
    """One registered notebook: short name, file under ``notebooks/``, names it depends on."""

    name: str
    file: str
    deps: tuple[str, ...] = ()

    @property
    def stem(self) -> str:
        """File name without suffix, e.g. ``01_eda``."""
        return Path(self.file).stem


#: All notebooks, in run order. Only those whose file exists are planned.
REGISTRY: tuple[Notebook, ...] = (
    Notebook("eda", "01_eda.ipynb"),
    Notebook("baselines", "02_baselines.ipynb"),
    Notebook("transfer", "03_transfer.ipynb"),
    Notebook("augmentation", "04_augmentation.ipynb"),
    Notebook("explain", "05_explain.ipynb", ("baselines", "transfer", "augmentation")),
    Notebook("compare", "06_compare.ipynb", ("baselines", "transfer", "augmentation")),
)


@dataclass
class Step:
    """A planned notebook: its fingerprint and whether it will run, with the reason."""

    notebook: Notebook
    path: Path
    fingerprint: str
    inputs: dict[str, Any]
    run: bool
    reason: str


# --------------------------------------------------------------------------- settings


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send file descriptor 2 to /dev/null within the block. TensorFlow's C++ start-up lines (oneDNN,
    CUDA drivers) are written there before any log level applies; Python exceptions still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def registered_models() -> tuple[list[str], list[str]]:
    """``(every registered model name, those with an augmentation setting)`` from the model registry.

    Imported here rather than at module level: the registry builds on Keras, whose start-up
    (seconds) ``run_all.py --help`` and a failed argument parse should not pay; its start-up
    lines are kept off the runner's output.
    """
    with _native_stderr_silenced():
        from medclf.models import registry

    return list(registry.MODELS), [name for name, spec in registry.MODELS.items() if spec.augment]


def resolve_settings(dataset: str | None, profile: str | None, data_root: str | None,
                     overrides: dict[str, Any]) -> Settings:
    """Merge defaults ← dataset ← profile ← command line once and check every key (type, range,
    cross-key rules, model names against the registry) before any notebook starts.

    Raises:
        ParamError: the first problem, in one line naming the key.
    """
    params = load_params(dataset, profile, data_root, overrides)
    known, augmentable = registered_models()
    check_model_names(params, known, augmentable)
    return Settings.from_params(params)


# --------------------------------------------------------------------------- registry / selection


def available_notebooks(registry: tuple[Notebook, ...] | list[Notebook] = REGISTRY,
                        notebooks_dir: str | Path | None = None) -> list[Notebook]:
    """The registry entries whose notebook file exists in ``notebooks_dir``, in registry order."""
    notebooks_dir = Path(notebooks_dir or paths.NOTEBOOKS_DIR)
    return [nb for nb in registry if (notebooks_dir / nb.file).is_file()]


def select_notebooks(available: list[Notebook], only: list[str] | None,
                     registry: tuple[Notebook, ...] | list[Notebook] = REGISTRY) -> list[Notebook]:
    """The notebooks named in ``only`` (``eda``, ``01_eda`` or ``01_eda.ipynb``), in run order; all if empty.

    Raises:
        OrchestrationError: an unknown name, or a registered notebook whose file does not exist.
    """
    if not only:
        return list(available)
    wanted = set()
    for raw in only:
        key = raw.strip()
        match = [nb for nb in registry if key in (nb.name, nb.stem, nb.file)]
        if not match:
            names = ", ".join(f"{nb.name} ({nb.stem})" for nb in registry)
            raise OrchestrationError(f"unknown notebook '{raw}' for --only; known notebooks: {names}")
        if match[0] not in available:
            raise OrchestrationError(f"notebook '{raw}' is registered but notebooks/{match[0].file} "
                                     "does not exist yet")
        wanted.add(match[0].name)
    return [nb for nb in available if nb.name in wanted]


def check_parameters_cell(path: str | Path) -> None:
    """Refuse a notebook without exactly one code cell tagged ``parameters``: papermill injects the run's
    settings after that cell, so without it (a tag lost when the cell was recreated in JupyterLab) the
    notebook would run on its own defaults while the run says otherwise.

    Raises:
        OrchestrationError: one line naming the file, the cells and the fix.
    """
    path = Path(path)
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        tagged = [i for i, cell in enumerate(cells, 1) if "parameters" in (cell.get("metadata") or {}).get("tags", [])
                  and cell.get("cell_type") == "code"]
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise OrchestrationError(f"{path} is not a readable notebook ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}); restore it from git") from None
    if len(tagged) != 1:
        found = "no code cell" if not tagged else f"{len(tagged)} code cells ({', '.join(map(str, tagged))})"
        raise OrchestrationError(
            f"{path} has {found} tagged 'parameters', where the runner injects the run's settings; exactly one "
            "must be: in JupyterLab select the cell `settings = {...}`, open the property inspector (gear icon) "
            "and set its tags to parameters" + (" only" if tagged else ""))


# --------------------------------------------------------------------------- fingerprints


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    return _sha(Path(path).read_bytes())


def source_hash(src_dir: str | Path | None = None) -> str:
    """Hash of every ``*.py`` file under ``src_dir`` (default: the ``medclf`` package): names and bytes."""
    src_dir = Path(src_dir or paths.PACKAGE_DIR)
    digest = hashlib.sha256()
    for path in sorted(src_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(src_dir).as_posix().encode() + b"\0")
        digest.update(_sha(path.read_bytes()).encode() + b"\0")
    return digest.hexdigest()


def fingerprint(inputs: dict[str, Any]) -> str:
    """Short stable hash of a notebook's inputs (see :func:`notebook_inputs`)."""
    return _sha(json.dumps(inputs, sort_keys=True, default=str).encode())[:20]


def notebook_inputs(notebook_path: str | Path, p_hash: str, src_hash: str, data_hash: str | None,
                    dep_fingerprints: dict[str, str] | None = None) -> dict[str, Any]:
    """The components of a notebook's fingerprint."""
    return {"notebook": file_hash(notebook_path), "params": p_hash, "source": src_hash,
            "data": data_hash, "deps": dict(sorted((dep_fingerprints or {}).items()))}


def _changed(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    if not old:
        return "inputs changed"
    what = [name for name in ("notebook", "params", "source", "data") if old.get(name) != new.get(name)]
    old_deps, new_deps = old.get("deps") or {}, new.get("deps") or {}
    what += [f"dependency {d}" for d in sorted(set(old_deps) | set(new_deps)) if old_deps.get(d) != new_deps.get(d)]
    return (", ".join(what) + " changed") if what else "inputs changed"


# --------------------------------------------------------------------------- planning


def make_plan(selected: list[Notebook], available: list[Notebook], notebooks_dir: str | Path,
              out_dir: str | Path, p_hash: str, data_hash: str | None, previous: dict[str, Any],
              force: bool = False, src_hash: str | None = None) -> list[Step]:
    """Fingerprint every available notebook and decide, for the selected ones, run or skip (and why).

    Fingerprints of dependencies come from all available notebooks, so they do not depend on
    the selection.
    """
    notebooks_dir = Path(notebooks_dir)
    layout = paths.RunPaths(Path(out_dir))
    src_hash = src_hash or source_hash()
    prev_entries = previous.get("notebooks", {}) or {}
    fps: dict[str, str] = {}
    steps: list[Step] = []
    selected_names = {nb.name for nb in selected}
    will_run: set[str] = set()
    for nb in available:
        path = notebooks_dir / nb.file
        deps = {d: fps[d] for d in nb.deps if d in fps}
        inputs = notebook_inputs(path, p_hash, src_hash, data_hash, deps)
        fp = fingerprint(inputs)
        fps[nb.name] = fp
        if nb.name not in selected_names:
            continue
        prev = prev_entries.get(nb.name) or {}
        outputs = layout.notebook_outputs(nb.stem)
        rerun_deps = [d for d in nb.deps if d in will_run or _newer(prev_entries.get(d), prev)]
        if data_hash is None:
            run, reason = True, "data not prepared"
        elif force:
            run, reason = True, "forced"
        elif not prev.get("ok_fingerprint"):
            run, reason = True, "never run successfully"
        elif prev["ok_fingerprint"] != fp:
            run, reason = True, _changed(prev.get("ok_inputs"), inputs)
        elif prev.get("status") in UNFINISHED:
            run, reason = True, UNFINISHED[prev["status"]]
        elif rerun_deps:
            run, reason = True, f"dependency {', '.join(rerun_deps)} reran"
        elif not (outputs["executed"].is_file() and outputs["html"].is_file()):
            run, reason = True, "outputs missing"
        else:
            run, reason = False, "up to date"
        if run:
            will_run.add(nb.name)
        steps.append(Step(nb, path, fp, inputs, run, reason))
    return steps


#: A notebook whose last attempt ended so reruns even when its inputs match its last success: its
#: outputs were never published (:mod:`medclf.pipeline.staging`), yet the next run does it again
#: rather than call the older outputs up to date.
UNFINISHED = {"running": "last run did not finish", "interrupted": "last run interrupted",
              "failed": "last run failed"}


def _newer(dependency: dict[str, Any] | None, entry: dict[str, Any]) -> bool:
    """Whether ``dependency`` last succeeded after ``entry`` did (its outputs changed under ``entry``'s)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(dependency["ok_finished"]) > datetime.fromisoformat(entry["ok_finished"])
    except (TypeError, KeyError, ValueError):
        return False

