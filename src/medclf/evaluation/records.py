"""Result records: one JSON file per trained model, built, validated, saved, read, and checked for comparability.

Layout under ``out_dir`` = ``outputs/<dataset>/<profile>`` (:class:`medclf.config.paths.RunPaths`)::

    results/<model_id>.json      the record (see :data:`REQUIRED`)
    models/<model_id>.json       the same record beside a saved model (its model card)

The per-image predictions beside them are :mod:`medclf.evaluation.predictions`', the tables made from
records :mod:`medclf.evaluation.tables`'. Files are written atomically (:mod:`medclf.core.io`), so a
reader never sees half a file.

Records are comparable (:func:`comparable_records`) only when they were made with the same profile and
the same split (:data:`COMPARABLE_PARAMS`): a quick run and a full run of one data set, or two splits, never
meet in one table, comparison, explanation or headline.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medclf.config import paths
from medclf.core import io
from medclf.core.versions import git_info, package_versions

#: Git state (commit, dirty) of the code this process imported, read once at import: a record
#: written at the end of a long run names the code that trained it even if the checkout has moved on.
CODE_GIT = git_info(paths.PROJECT_ROOT)

#: Keys every record has; nested keys are written ``parent.child``.
REQUIRED = (
    "model_id", "model", "family", "study", "reported", "params", "spec", "data", "training",
    "params_count", "evaluation", "created", "versions",
    "data.dataset", "data.manifest_hash", "data.split_counts",
    "training.seconds", "training.seconds_per_epoch", "training.epochs_run", "training.best_epoch",
    "training.mixed_precision", "training.history",
    "evaluation.threshold", "evaluation.val", "evaluation.test", "evaluation.ci",
)

_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class RecordError(ValueError):
    """A result record is incomplete or malformed; the message names the missing keys."""


# ---------------------------------------------------------------------------------------------
# building and checking records
# ---------------------------------------------------------------------------------------------

def utc_now() -> str:
    """Current UTC time as ISO 8601 with seconds, e.g. ``2025-01-31T12:00:00+00:00``."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def build_record(*, model_id: str, model: str, family: str, study: str | None, reported: dict | None,
                 params: dict, spec: dict, data: dict, training: dict, params_count: int,
                 evaluation: dict, versions: dict | None = None, git: dict | None = None, **extra: Any) -> dict:
    """A record with ``created`` (now, UTC), ``versions`` and ``git`` filled in; checked by :func:`validate_record`.

    ``versions`` defaults to :func:`medclf.core.versions.package_versions`, ``git`` to :data:`CODE_GIT`.
    Extra keyword arguments are kept as additional top-level keys.
    """
    if versions is None:
        versions = package_versions()
    record = {"model_id": model_id, "model": model, "family": family, "study": study, "reported": reported,
              "params": params, "spec": spec, "data": data, "training": training,
              "params_count": params_count, "evaluation": evaluation, "created": utc_now(),
              "versions": versions, "git": CODE_GIT if git is None else git, **extra}
    validate_record(record)
    return record


def _lookup(record: Mapping, dotted: str) -> tuple[bool, Any]:
    node: Any = record
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def validate_record(record: dict) -> dict:
    """Check that ``record`` has every key of :data:`REQUIRED` with a sensible type.

    Returns:
        The record itself.

    Raises:
        RecordError: naming the record and every missing or mistyped key.
    """
    if not isinstance(record, Mapping):
        raise RecordError(f"a record must be a dict; got {type(record).__name__}")
    name = record.get("model_id", "<no model_id>")
    missing = [key for key in REQUIRED if not _lookup(record, key)[0]]
    if missing:
        raise RecordError(f"record {name!r} is missing {', '.join(missing)}; "
                          f"a record needs: {', '.join(REQUIRED)}")
    problems = []
    if not isinstance(record["model_id"], str) or not _MODEL_ID.match(record["model_id"]):
        problems.append(f"model_id must be a file-name-safe string (letters, digits, . _ -); "
                        f"got {record['model_id']!r}")
    if record["reported"] is not None and not isinstance(record["reported"], Mapping):
        problems.append(f"reported must be a dict or None; got {type(record['reported']).__name__}")
    for key in ("params", "spec", "data", "training", "evaluation", "versions"):
        if not isinstance(record[key], Mapping):
            problems.append(f"{key} must be a dict; got {type(record[key]).__name__}")
    for key in ("val", "test"):
        part = record["evaluation"][key]
        if not isinstance(part, Mapping) or not {"at_0.5", "at_threshold"} <= set(part):
            problems.append(f"evaluation.{key} must hold 'at_0.5' and 'at_threshold' (evaluate_model's output)")
    if problems:
        raise RecordError(f"record {name!r} is malformed: " + "; ".join(problems))
    return record


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays converted, tuples to lists, NaN/inf to None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


# ---------------------------------------------------------------------------------------------
# writing and reading
# ---------------------------------------------------------------------------------------------

def check_model_id(model_id: str) -> str:
    """``model_id`` when it is a file-name-safe string; else ValueError."""
    if not isinstance(model_id, str) or not _MODEL_ID.match(model_id):
        raise ValueError(f"model_id must be a file-name-safe string (letters, digits, . _ -); got {model_id!r}")
    return model_id


def record_path(out_dir: str | os.PathLike, model_id: str) -> Path:
    """``<out_dir>/results/<model_id>.json``."""
    return paths.RunPaths(Path(out_dir)).record(check_model_id(model_id))


def save_record(out_dir: str | os.PathLike, model_id: str, record: dict) -> Path:
    """Validate ``record`` and write it to ``<out_dir>/results/<model_id>.json`` (atomic).

    Numpy values are converted to plain JSON numbers and NaN to ``null``.

    Returns:
        The path written.

    Raises:
        RecordError: the record is incomplete or its ``model_id`` differs from ``model_id``.
    """
    check_model_id(model_id)
    validate_record(record)
    if record["model_id"] != model_id:
        raise RecordError(f"record['model_id'] is {record['model_id']!r} but it is saved as {model_id!r}")
    return io.write_json(record_path(out_dir, model_id), _jsonable(record))


def model_card_path(model_path: str | os.PathLike) -> Path:
    """The record kept beside a saved model: ``models/<id>.keras`` → ``models/<id>.json``."""
    return Path(model_path).with_suffix(".json")


def save_model_card(model_path: str | os.PathLike, record: dict) -> Path:
    """Write ``record`` beside the saved model (atomic), so the model file travels with its input size,
    colour mode, resize mode, class names and validation-chosen threshold (what ``predict`` needs)."""
    validate_record(record)
    return io.write_json(model_card_path(model_path), _jsonable(record))


def load_records(out_dir: str | os.PathLike) -> list[dict]:
    """Every record under ``<out_dir>/results`` (sorted by file name; none if the folder is missing).

    Raises:
        RecordError: a file is not valid JSON or not a valid record (the message names the file).
    """
    folder = paths.RunPaths(Path(out_dir)).results
    if not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):  # an atomic write in progress
            continue
        records.append(read_record(path))
    return records


def read_record(path: str | os.PathLike) -> dict:
    """One record file, read and validated.

    Raises:
        RecordError: not valid JSON or not a valid record (the message names the file).
    """
    try:
        record = json.loads(Path(path).read_text())
        validate_record(record)
    except (json.JSONDecodeError, RecordError) as error:
        raise RecordError(f"{path}: {error}") from error
    return record


# ---------------------------------------------------------------------------------------------
# comparability
# ---------------------------------------------------------------------------------------------

#: Parameters that decide which image lands in which split (with the data set's files), and which
#: validation rows rank the models (``select_on``).
SPLIT_PARAMS = ("dataset", "data_root", "seed", "split_mode", "split_by_image", "select_on", "source_val",
                "val_fraction", "test_fraction", "group_pattern")

#: What makes two records comparable: the same profile (a quick run's epochs and image sizes are not a
#: full run's) and the same split (:data:`SPLIT_PARAMS`).
COMPARABLE_PARAMS = ("profile", *SPLIT_PARAMS)


def comparable_settings(record: Mapping) -> dict:
    """The record's :data:`COMPARABLE_PARAMS`: ``data_root`` resolved (relative paths are from the project root),
    ``split_by_image`` absent read as none and ``select_on`` as ``all`` (records written before they existed);
    ``profile`` absent stays ``None``, so such a record only matches others without one."""
    values = {key: record["params"].get(key) for key in COMPARABLE_PARAMS}
    if values["data_root"]:
        values["data_root"] = str(paths.resolve(values["data_root"]).resolve())
    values["split_by_image"] = values["split_by_image"] or []
    values["select_on"] = values["select_on"] or "all"
    return values


def comparable_records(records: Sequence[Mapping]) -> tuple[list[Mapping], list[str]]:
    """The records made with the newest one's profile and split, and a line for each other record.

    Choosing a model by validation score, or testing two models on paired predictions, is fair only
    between models that saw the same validation and test images and were scored on the same validation
    rows (``select_on``); both follow from the data files and :data:`SPLIT_PARAMS`, which every record keeps.
    Records of another profile are left out too, so profiles never mix in one table.

    Returns:
        ``(kept records, one line per record left out)``.
    """
    if not records:
        return [], []
    newest = comparable_settings(max(records, key=lambda r: r["created"]))
    kept, left_out = [], []
    for record in records:
        settings = comparable_settings(record)
        if settings == newest:
            kept.append(record)
            continue
        differ = ", ".join(f"{key} {settings[key]!r} (newest: {newest[key]!r})"
                           for key in COMPARABLE_PARAMS if settings[key] != newest[key])
        left_out.append(f"results/{record['model_id']}.json was made with another profile or split than the "
                        f"newest records ({differ}); left out: rerun the notebook that trains it, or remove its "
                        "results/ and predictions/ files")
    return kept, left_out


def load_comparable(out_dir: str | os.PathLike) -> tuple[list[Mapping], list[str]]:
    """:func:`comparable_records` of :func:`load_records`: what every cross-model view reads."""
    return comparable_records(load_records(out_dir))
