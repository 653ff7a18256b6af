"""Project, output and cache paths: every file location medclf writes is built here.

Everything is rooted at the project root so notebooks work from any working directory;
``MEDCLF_ROOT`` overrides the root (for an installed, non-editable package or for tests).

Outputs of one data set under one profile live in their own folder (:func:`run_dir`)::

    <output_dir>/<dataset>/<profile>/
        run.json                 the runner's record (versions, settings, per-notebook status)
        notebooks/NN_name.ipynb  executed notebooks (NN_name.failed.ipynb for a failed run)
        reports/NN_name.html     rendered notebooks and reports/index.html
        results/<model_id>.json  one record per trained model
        predictions/<model_id>.csv
        models/<model_id>.keras  (or .skops, a scikit-learn model) and models/<model_id>.json, the model card
        figures/<notebook>/<name>.png
        tables/<name>.csv, .md
        .lock                    held by the run writing here (:mod:`medclf.pipeline.runlock`)
        .staging/<notebook>/     a running notebook's outputs until it succeeds (:mod:`medclf.pipeline.staging`)

so a quick run never meets the records of a full run in a table.

Under ``run_all.py`` a notebook does not write into the run folder itself: the runner names a staging
folder in :data:`STAGING_ENV` and :func:`run_dir` answers that folder (which starts as a hard-linked copy
of the published tree, so earlier notebooks' outputs read as usual); the runner publishes it when the
notebook succeeds. Run alone (JupyterLab), a notebook writes into the run folder directly. Caches are keyed by their
content (data manifest, decode settings), not by profile, and are shared::

    <cache_dir>/<dataset>/<key>.npz                   decoded image arrays
    <cache_dir>/features/<dataset>/<key>_<split>.npy  a transfer model's frozen-part outputs (train, val)
    <cache_dir>/models/<key>/                         one trained model (:mod:`medclf.training.model_cache`)
    <cache_dir>/precision_probe.json                  measured float32 vs bfloat16 step times (benchmarks)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/medclf
PROJECT_ROOT = Path(os.environ.get("MEDCLF_ROOT", PACKAGE_DIR.parents[1])).resolve()
PARAMS_DIR = PROJECT_ROOT / "params"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"

#: Model files (medclf.models.files writes and reads them): a Keras network, a scikit-learn model in
#: skops' format; both load without running code from the file.
KERAS_SUFFIX = ".keras"
SKOPS_SUFFIX = ".skops"
MODEL_SUFFIXES = (KERAS_SUFFIX, SKOPS_SUFFIX)
#: Pickled models (joblib): loading one runs whatever code its author put in it, so they are read only
#: when the user allows it explicitly (``predict --allow-pickle``), and never written.
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


def resolve(path: str | os.PathLike) -> Path:
    """A user path: absolute as given, relative ones taken from the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


#: Environment variable the runner sets while a notebook runs: the staging folder
#: ``<run_dir>/.staging/<notebook>`` that stands in for the run folder in that kernel.
STAGING_ENV = "MEDCLF_STAGING_DIR"

#: Names under a run folder that are the runner's own state, not published outputs (see
#: :meth:`RunPaths.is_run_state`).
RUN_STATE = ("run.json", ".lock", ".staging", "reports/index.html")


def published_run_dir(params: dict) -> Path:
    """``<output_dir>/<dataset>/<profile>``: everything the runs of one data set under one profile publish."""
    return resolve(params["output_dir"]) / params["dataset"] / params["profile"]


def run_dir(params: dict) -> Path:
    """Where this process reads and writes the run's outputs: :func:`published_run_dir`, or, in a kernel
    the runner started, that folder's staging folder named in :data:`STAGING_ENV`."""
    published = published_run_dir(params)
    staged = os.environ.get(STAGING_ENV)
    if staged and Path(staged).parent.parent == published:
        return Path(staged)
    return published


@dataclass(frozen=True)
class RunPaths:
    """The layout under one :func:`run_dir` (see the module docstring)."""

    root: Path

    @classmethod
    def of(cls, params: dict) -> RunPaths:
        """The layout of the run folder ``params`` select."""
        return cls(run_dir(params))

    @property
    def run_info(self) -> Path:
        return self.root / "run.json"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    def figures(self, notebook: str | None = None) -> Path:
        """``figures/`` or, given a notebook name (``"01_eda"``), ``figures/<notebook>``."""
        return self.root / "figures" / notebook if notebook else self.root / "figures"

    def record(self, model_id: str) -> Path:
        return self.results / f"{model_id}.json"

    def prediction(self, model_id: str) -> Path:
        return self.predictions / f"{model_id}.csv"

    def model_file(self, model_id: str, suffix: str = KERAS_SUFFIX) -> Path:
        return self.models / f"{model_id}{suffix}"

    @property
    def lock(self) -> Path:
        """``.lock``: who is running on this folder (:mod:`medclf.pipeline.runlock`)."""
        return self.root / ".lock"

    @property
    def staging_root(self) -> Path:
        return self.root / ".staging"

    def staging(self, stem: str) -> Path:
        """``.staging/<stem>``: the outputs of notebook ``stem`` while it runs."""
        return self.staging_root / stem

    def publish_journal(self, stem: str) -> Path:
        """``.staging/<stem>.publish.json``: the moves of a publish under way (:mod:`medclf.pipeline.staging`)."""
        return self.staging_root / f"{stem}.publish.json"

    @staticmethod
    def is_run_state(relative: str) -> bool:
        """Whether a path relative to the run folder is the runner's state rather than a published output:
        :data:`RUN_STATE` (run.json, the lock, staging, reports/index.html) and the copies of failed
        notebooks (``notebooks/*.failed.ipynb``, ``reports/*.failed.html``)."""
        rel = Path(relative).as_posix()
        if any(rel == name or rel.startswith(name + "/") for name in RUN_STATE):
            return True
        return rel.endswith((".failed.ipynb", ".failed.html"))

    def inside(self, relative: Any) -> Path | None:
        """``root / relative`` when ``relative`` (read from a state file) is a plain relative path that stays
        inside the run folder with every symbolic link resolved, else ``None``: a journal or record written
        by someone else must not name a file elsewhere."""
        if not isinstance(relative, str) or not relative or "\0" in relative:
            return None
        rel = Path(relative)
        if rel.is_absolute() or ".." in rel.parts:
            return None
        root = self.root.resolve()
        target = (root / rel).resolve()
        return root / rel if target != root and target.is_relative_to(root) else None

    def links(self) -> list[Path]:
        """Every symbolic link under the run folder (not followed), sorted."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            found += [Path(dirpath, name) for name in dirnames + filenames if os.path.islink(os.path.join(dirpath, name))]
        return sorted(found)

    def published_files(self) -> list[Path]:
        """Every published output file under the run folder (sorted; run state left out)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.rglob("*")
                      if p.is_file() and not self.is_run_state(p.relative_to(self.root).as_posix()))

    def notebook_outputs(self, stem: str) -> dict[str, Path]:
        """Where the runner puts one notebook's executed copy and HTML (and their ``.failed`` twins)."""
        return {"executed": self.notebooks / f"{stem}.ipynb",
                "failed": self.notebooks / f"{stem}.failed.ipynb",
                "html": self.reports / f"{stem}.html",
                "failed_html": self.reports / f"{stem}.failed.html"}


def figures_dir(params: dict, notebook: str) -> Path:
    """``<run_dir>/figures/<notebook>``."""
    return RunPaths.of(params).figures(notebook)


def tables_dir(params: dict) -> Path:
    """``<run_dir>/tables``."""
    return RunPaths.of(params).tables


def cache_root(params: dict) -> Path:
    """``<cache_dir>``, resolved."""
    return resolve(params["cache_dir"])


def array_cache_file(params: dict, key: str) -> Path:
    """``<cache_dir>/<dataset>/<key>.npz``: one data set's decoded arrays for one cache key."""
    return cache_root(params) / params["dataset"] / f"{key}.npz"


def feature_cache_dir(params: dict, dataset: str) -> Path:
    """``<cache_dir>/features/<dataset>``: cached outputs of transfer models' frozen parts."""
    return cache_root(params) / "features" / dataset


def model_cache_dir(params: dict) -> Path:
    """``<cache_dir>/models``: trained models by the key of what trained them (:mod:`medclf.training.model_cache`)."""
    return cache_root(params) / "models"


def precision_probe_file(params: dict) -> Path:
    """``<cache_dir>/precision_probe.json``: the remembered float32 / bfloat16 step-time probe."""
    return cache_root(params) / "precision_probe.json"
