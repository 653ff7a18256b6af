"""Project paths, all rooted at the project root so notebooks work from any working directory.

``MEDCLF_ROOT`` overrides the root (for an installed, non-editable package or for tests).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/medclf
PROJECT_ROOT = Path(os.environ.get("MEDCLF_ROOT", PACKAGE_DIR.parents[1])).resolve()
PARAMS_DIR = PROJECT_ROOT / "params"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"


def resolve(path: str | os.PathLike) -> Path:
    """A user path: absolute as given, relative ones taken from the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def dataset_output_dir(params: dict) -> Path:
    """``outputs/<dataset>``: everything one data set's runs write."""
    return resolve(params["output_dir"]) / params["dataset"]


def figures_dir(params: dict, notebook: str) -> Path:
    """``outputs/<dataset>/figures/<notebook>``."""
    return dataset_output_dir(params) / "figures" / notebook


def tables_dir(params: dict) -> Path:
    """``outputs/<dataset>/tables``."""
    return dataset_output_dir(params) / "tables"
