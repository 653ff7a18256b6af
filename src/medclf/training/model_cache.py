"""The model cache: a trained model is never trained twice for the same inputs.

One entry is one trained network (or SVM). Its weights are determined by how its spec trains one network
(:func:`training_identity`: the spec after overrides and caps, less its name, description, study, scoring and
ensemble size), the input shape, the
training settings, the exact training and validation arrays it sees (so the data manifest *and*
the split), the seed, the dtype policy, the code of the training path and the library versions.
:func:`model_key` hashes all of those; :class:`ModelCache` keeps one entry per key under
``<cache_dir>/models/<key>/``: the model file (written by :mod:`medclf.models.files`, so plain Keras
or the safe scikit-learn format) and ``training.json`` (the training result, written last: an entry
without it is incomplete and ignored). ``02``, ``03`` and ``04`` share it, so a model ``04`` trains
with the same spec, data and seed as ``02`` is loaded, and a rerun after a report-only change
retrains nothing. An ensemble is cached member by member, so its member with seed ``s`` and the single model
trained with seed ``s`` (``cnn_ours_chest_ensemble``'s first member and ``cnn_ours_chest``) are one entry, trained
once. What is scored is always recomputed from the model.

Anything outside the training path (evaluation, plots, reports, notebooks) is not in the key:
changing it reuses the models. ``model_cache: false`` neither reads nor writes the cache; ``refresh`` (what ``run_all.py --force``
sets) trains every model and replaces its entry.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medclf.config.settings import TrainingSettings, TransferSettings
from medclf.core.io import atomic_path
from medclf.core.versions import package_versions
from medclf.models import files
from medclf.training.fit import TrainResult

#: Packages whose source decides what a training run produces (relative to ``src/medclf``).
TRAINING_CODE = ("core", "config", "accel", "data", "models", "training", "evaluation")
#: Libraries whose version enters the key.
LIBRARIES = ("keras", "tensorflow", "numpy", "scikit-learn")
#: Training settings that do not change the weights. ``mixed_precision`` is the run-wide declaration; the
#: policy the network actually trains in (its own ``model_overrides`` entry may differ) is keyed as ``precision``.
_NOT_IN_KEY = {"save_models", "model_cache", "accel", "mixed_precision"}
#: Spec fields that name, document or score a model, or say how many seeded copies are averaged: none of
#: them changes how one network trains.
_SPEC_NOT_IN_KEY = {"name", "description", "study", "reported", "dataset", "tta_views", "ensemble"}
TRAINING_FILE = "training.json"


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """SHA-256 of the source of :data:`TRAINING_CODE` (file names and bytes, in sorted order)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in TRAINING_CODE:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _describe(value: Any) -> Any:
    """A JSON-able, process-independent description (no memory addresses) of a spec field."""
    if isinstance(value, functools.partial):
        return {"function": _describe(value.func), "args": [_describe(a) for a in value.args],
                "keywords": {k: _describe(v) for k, v in sorted(value.keywords.items())}}
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{value.__module__}.{value.__qualname__}"
    if is_dataclass(value) and not isinstance(value, type):
        return {"class": type(value).__qualname__, **{f.name: _describe(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in sorted(value.items(), key=lambda item: str(item[0]))}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def array_digest(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def training_identity(spec: Any) -> Any:
    """What of ``spec`` decides how one network (or the SVM) trains: its description (:func:`_describe`)
    without :data:`_SPEC_NOT_IN_KEY` and without the Keras model name its builder is given."""
    described = _describe(spec)
    if not isinstance(described, dict):
        return described
    identity = {k: v for k, v in described.items() if k not in _SPEC_NOT_IN_KEY}
    build = identity.get("build")
    if isinstance(build, dict) and "keywords" in build:
        identity["build"] = {**build, "keywords": {k: v for k, v in build["keywords"].items() if k != "name"}}
    return identity


def identity_digest(spec: Any) -> str:
    """A short digest of :func:`training_identity`: the same for a model and each member of an ensemble of it."""
    return hashlib.sha256(json.dumps(training_identity(spec), sort_keys=True).encode()).hexdigest()[:12]


def model_key(*, spec: Any, input_shape: Sequence[int], epochs: int, training: TrainingSettings,
              transfer: TransferSettings | None, augmentation: dict | None, arrays: Sequence[np.ndarray],
              precision: str) -> str:
    """The cache key of one training run of one network: everything that determines its weights (see the
    module); ``training.seed`` is the member's own seed."""
    payload = {
        "spec": training_identity(spec),
        "input_shape": list(input_shape),
        "epochs": epochs,
        "training": {k: v for k, v in asdict(training).items() if k not in _NOT_IN_KEY},
        "transfer": _describe(transfer),
        "augmentation": _describe(augmentation),
        "data": [array_digest(a) for a in arrays],
        "precision": precision,
        "code": code_hash(),
        "versions": package_versions(LIBRARIES),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


class ModelCache:
    """Trained models by :func:`model_key`, under one folder (:func:`medclf.config.paths.model_cache_dir`)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def entry(self, key: str) -> Path:
        return self.folder / key

    def get(self, key: str) -> tuple[Any, TrainResult] | None:
        """``(model, training result)`` of a complete entry, else ``None``; an unreadable entry is removed
        (one line says so) so that the model is trained again."""
        entry = self.entry(key)
        info_file = entry / TRAINING_FILE
        if not info_file.is_file():
            return None
        try:
            info = json.loads(info_file.read_text())
            model_file = (entry / info["model_file"]).resolve()
            if model_file.parent != entry.resolve():  # a shared cache is input: its entry names its own file only
                raise ValueError(f"model_file {info['model_file']!r} lies outside the entry")
            model = files.load_model(model_file, expected_sha256=info.get("model_sha256"),
                                     recorded_in=info_file)
            return model, TrainResult(**info["training"])
        except Exception as exc:  # a corrupt entry must cost a retraining, never the run
            print(f"model cache: entry {entry} is unreadable ({type(exc).__name__}: {exc}); training again",
                  flush=True)
            shutil.rmtree(entry, ignore_errors=True)
            return None

    def put(self, key: str, model: Any, training: TrainResult) -> None:
        """Store a trained model: its file first, ``training.json`` last (atomically), so a stop in between
        leaves an incomplete entry that :meth:`get` ignores."""
        entry = self.entry(key)
        entry.mkdir(parents=True, exist_ok=True)
        (entry / TRAINING_FILE).unlink(missing_ok=True)  # replacing an entry: incomplete until rewritten
        saved = files.save_model(model, entry / "model")
        with atomic_path(entry / TRAINING_FILE) as tmp:
            Path(tmp).write_text(json.dumps({"model_file": saved.path.name, "model_sha256": saved.sha256,
                                             "training": training.to_dict()}, indent=1, default=float))
