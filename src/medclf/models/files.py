"""Model files: the one place a trained model is written to disk and read back (``.keras`` or ``.joblib``).

A Keras model is saved as a **portable** ``.keras`` file: an uncompiled copy of the network (no optimizer
state, whatever the training used), so ``keras.saving.load_model(path)`` in a Python process that never
imported medclf — safe mode on, the default — gives the same network. A model holding a layer of a class
outside Keras is refused with a message naming it: such a file would not load without medclf.

A scikit-learn model is pickled with joblib (loading it needs medclf: the SVM pipeline's flatten step
is a medclf function).

Files are written atomically (:func:`medclf.core.io.atomic_path`); :func:`save_model` returns the
file's SHA-256, which the model card records, so a reader can tell the file is the one that was scored.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, NamedTuple

import joblib
import keras

from medclf.core.io import atomic_path

KERAS_SUFFIX = ".keras"
JOBLIB_SUFFIX = ".joblib"
#: Model file suffixes :func:`load_model` reads.
SUFFIXES = (KERAS_SUFFIX, JOBLIB_SUFFIX)


class SavedModel(NamedTuple):
    """Where :func:`save_model` wrote a model, and the SHA-256 (hex) of the file's bytes."""

    path: Path
    sha256: str


def model_suffix(model: Any) -> str:
    """``.keras`` for a Keras model, ``.joblib`` for anything else (a scikit-learn estimator)."""
    return KERAS_SUFFIX if isinstance(model, keras.Model) else JOBLIB_SUFFIX


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plain_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A new layer of ``layer``'s config; a sub-model (an ensemble member) becomes its :func:`plain_copy`."""
    if isinstance(layer, keras.Model):
        return plain_copy(layer)
    return layer.__class__.from_config(layer.get_config())


def _foreign_classes(model: keras.Model) -> list[str]:
    """``layer name (module.Class)`` for every layer, at any depth, whose class is not Keras' own."""
    found = []
    for layer in model.layers:
        cls = type(layer)
        if not cls.__module__.startswith("keras."):
            found.append(f"{layer.name} ({cls.__module__}.{cls.__qualname__})")
        if isinstance(layer, keras.Model):
            found += _foreign_classes(layer)
    return found


def plain_copy(model: keras.Model) -> keras.Model:
    """An uncompiled copy of ``model`` (Keras classes only), with ``model``'s weights.

    ``keras.models.clone_model`` compiles its copy like the original, so it clones an uncompiled view
    of ``model`` (a new functional model over the same graph); sub-models are copied the same way.

    Raises:
        ValueError: a layer of a class outside Keras that has no plain Keras equivalent here (the
            message names it): such a file would not load without the code that defines the class.
    """
    view = keras.Model(model.input, model.output, name=model.name)
    copy = keras.models.clone_model(view, clone_function=_plain_layer)
    for source, target in zip(view.layers, copy.layers, strict=True):
        if source.name != target.name:
            raise ValueError(f"copy of model {model.name!r}: layer {target.name!r} where {source.name!r} was")
        target.set_weights(source.get_weights())
    foreign = _foreign_classes(copy)
    if foreign:
        raise ValueError(f"model {model.name!r} has layers of classes outside Keras: {', '.join(foreign)}; "
                         "a portable .keras file can hold Keras classes only")
    return copy


def _target(model: Any, path: str | os.PathLike) -> Path:
    """``path`` with the model's suffix appended (or kept, when it already ends in it)."""
    path, suffix = Path(path), model_suffix(model)
    if path.suffix in SUFFIXES and path.suffix != suffix:
        raise ValueError(f"{path}: a {type(model).__name__} is saved as {suffix}, not {path.suffix}")
    return path if path.suffix == suffix else path.with_name(path.name + suffix)


def save_model(model: Any, path: str | os.PathLike) -> SavedModel:
    """Write ``model`` atomically to ``path`` + its suffix (``.keras`` or ``.joblib``; a path already ending in
    the right suffix is kept), a Keras model as its :func:`plain_copy`.

    Returns:
        The :class:`SavedModel` (path written, SHA-256 of the file).

    Raises:
        ValueError: ``path`` ends in the other kind's suffix, or the Keras model cannot be made plain.
    """
    target = _target(model, path)
    with atomic_path(target) as tmp:  # tmp ends in target's suffix, as Keras' saving requires
        if target.suffix == KERAS_SUFFIX:
            plain_copy(model).save(tmp)
        else:
            joblib.dump(model, tmp)
        sha256 = file_sha256(tmp)
    return SavedModel(target, sha256)


def load_model(path: str | os.PathLike) -> Any:
    """The model saved at ``path``: ``.keras`` with ``keras.saving.load_model`` (safe mode), ``.joblib`` with joblib.

    Raises:
        ValueError: another suffix.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{path}: a model file ends in {' or '.join(SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.suffix == JOBLIB_SUFFIX:
        return joblib.load(path)
    return keras.saving.load_model(path, safe_mode=True)
