"""Model files: the one place a trained model is written to disk and read back (``.keras`` or ``.skops``).

No model file medclf writes or reads by default can run code when it is loaded:

- A Keras model is saved as a **portable** ``.keras`` file: an uncompiled copy of the network (no optimizer
  state, whatever the training used), so ``keras.saving.load_model(path)`` in a Python process that never
  imported medclf — safe mode on, the default — gives the same network. A model holding a layer of a class
  outside Keras is refused with a message naming it: such a file would not load without medclf.
  It is read back in safe mode (no Python lambdas in the file are run).
- A scikit-learn model is saved with skops (``.skops``): a zip of JSON and arrays, not a pickle. Reading it
  first lists the types it would build (``skops.io.get_untrusted_types``) and refuses any beyond skops'
  defaults and :data:`TRUSTED_TYPES`, the two medclf's own SVM pipeline needs; nothing medclf-specific is
  in the file, so it loads without medclf.
- A pickle (``.joblib``, ``.pkl``) runs whatever code its author put in it while it loads: it is read only
  with ``allow_pickle=True`` (``predict --allow-pickle``) and never written.

Keras is imported by the functions that need it, so checking a path (:func:`check_model_path`) and
reading a ``.skops`` file start no TensorFlow. Every problem with a file is a :class:`ModelFileError` of one line (which file, what is wrong, what to do).
Files are written atomically (:func:`medclf.core.io.atomic_path`); :func:`save_model` returns the
file's SHA-256, which the model card records; every reader passes it back (:func:`load_model`'s
``expected_sha256``), so a card or record swapped beside another model is refused instead of scoring
with the wrong threshold, and an archive that would expand past :data:`MAX_EXPANSION` times its size
(a zip bomb) is refused before anything is extracted.
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import skops.io

from medclf.config.paths import KERAS_SUFFIX, MODEL_SUFFIXES, PICKLE_SUFFIXES, SKOPS_SUFFIX
from medclf.core.io import atomic_path

#: Model file suffixes :func:`load_model` reads without ``allow_pickle``.
SUFFIXES = MODEL_SUFFIXES
#: Types a ``.skops`` file may hold beyond skops' own trusted defaults (scikit-learn estimators, numpy
#: arrays and ufuncs, builtins): what :func:`medclf.models.builders.build_svm`'s pipeline is made of.
TRUSTED_TYPES = ("functools.partial", "numpy.reshape")
#: A model archive (``.keras``/``.skops``, both zips) may hold at most this many times its own size, plus
#: :data:`EXPANSION_ALLOWANCE`: weights compress barely (measured: the demo's ``.keras`` files expand 1.0-1.1x),
#: so a file promising far more is built to fill the disk when it is extracted.
MAX_EXPANSION = 20
EXPANSION_ALLOWANCE = 1 << 20


class ModelFileError(ValueError):
    """A model file that cannot be read safely or at all; the message is one line naming the file."""


class PickleRefusedError(ModelFileError):
    """A pickled model (``.joblib``, ``.pkl``) read without ``allow_pickle``."""


class SavedModel(NamedTuple):
    """Where :func:`save_model` wrote a model, and the SHA-256 (hex) of the file's bytes."""

    path: Path
    sha256: str


def model_suffix(model: Any) -> str:
    """``.keras`` for a Keras model, ``.skops`` for anything else (a scikit-learn estimator)."""
    keras = sys.modules.get("keras")  # a Keras model exists only once Keras is imported
    return KERAS_SUFFIX if keras is not None and isinstance(model, keras.Model) else SKOPS_SUFFIX


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plain_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A new layer of ``layer``'s config; a sub-model (an ensemble member) becomes its :func:`plain_copy`."""
    import keras

    if isinstance(layer, keras.Model):
        return plain_copy(layer)
    return layer.__class__.from_config(layer.get_config())


def _foreign_classes(model: keras.Model) -> list[str]:
    """``layer name (module.Class)`` for every layer, at any depth, whose class is not Keras' own."""
    import keras

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
    import keras

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
    if path.suffix in (*SUFFIXES, *PICKLE_SUFFIXES) and path.suffix != suffix:
        raise ValueError(f"{path}: a {type(model).__name__} is saved as {suffix}, not {path.suffix}")
    return path if path.suffix == suffix else path.with_name(path.name + suffix)


def save_model(model: Any, path: str | os.PathLike) -> SavedModel:
    """Write ``model`` atomically to ``path`` + its suffix (``.keras`` or ``.skops``; a path already ending in
    the right suffix is kept), a Keras model as its :func:`plain_copy`.

    Returns:
        The :class:`SavedModel` (path written, SHA-256 of the file).

    Raises:
        ValueError: ``path`` ends in another kind's suffix, or the Keras model cannot be made plain.
    """
    target = _target(model, path)
    with atomic_path(target) as tmp:  # tmp ends in target's suffix, as Keras' saving requires
        if target.suffix == KERAS_SUFFIX:
            plain_copy(model).save(tmp)
        else:
            skops.io.dump(model, tmp)
        sha256 = file_sha256(tmp)
    return SavedModel(target, sha256)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def check_model_path(path: str | os.PathLike, allow_pickle: bool = False) -> Path:
    """``path`` as a Path, checked to be an existing file of a suffix :func:`load_model` reads.

    Raises:
        PickleRefusedError: a pickle without ``allow_pickle``.
        ModelFileError: another suffix, a folder, or no such file.
    """
    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise PickleRefusedError(
            f"model file {path} is a pickle ({path.suffix}), which runs any code its author put in it while it "
            f"loads: medclf saves models as {' or '.join(SUFFIXES)}, which cannot; retrain to get one, or pass "
            "--allow-pickle only if you made this file yourself or trust whoever did")
    if path.suffix not in (*SUFFIXES, *PICKLE_SUFFIXES):
        raise ModelFileError(f"model file {path} is not a {' or '.join(SUFFIXES)} file: pass a model saved under "
                             "outputs/<dataset>/<profile>/models/")
    if path.is_dir():
        raise ModelFileError(f"model file {path} is a folder, not a file: pass the model file inside it, "
                             f"e.g. models/<id>{KERAS_SUFFIX}")
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist: pass a model saved under "
                             "outputs/<dataset>/<profile>/models/ (written when training with save_models=true)")
    return path


def check_sha256(path: Path, expected: str | None, recorded_in: str | os.PathLike) -> None:
    """Refuse ``path`` unless its SHA-256 is ``expected``, the hash ``recorded_in`` (a card, a record, a
    cache entry) holds for the model it describes.

    Raises:
        ModelFileError: no hash recorded, or another one (one line naming both files).
    """
    if not isinstance(expected, str) or len(expected) != 64:
        raise ModelFileError(f"{recorded_in} records no model_sha256 for {path}, so it cannot be told to belong to "
                             "that model file: use the card saved with the model, or retrain")
    actual = file_sha256(path)
    if actual != expected:
        raise ModelFileError(f"{recorded_in} was written for another model file: it records sha256 {expected[:12]}…, "
                             f"{path} has {actual[:12]}… (another model, or this one changed since): put the card "
                             "saved with this model beside it (models/<id>.json), or retrain")


def check_expansion(path: Path) -> None:
    """Refuse a zip archive whose members would expand beyond :data:`MAX_EXPANSION` times its size (read from
    its directory, before anything is extracted)."""
    try:
        with zipfile.ZipFile(path) as archive:
            expanded = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        return  # not a zip: the loader says so in its own words
    limit = MAX_EXPANSION * path.stat().st_size + EXPANSION_ALLOWANCE
    if expanded > limit:
        raise ModelFileError(f"model file {path} would expand to {expanded:,} bytes, over {MAX_EXPANSION}x its size "
                             f"({path.stat().st_size:,} bytes): a model archive never does (a zip bomb?); "
                             "refused before extraction")


def _load_keras(path: Path) -> Any:
    """A ``.keras`` archive (checked to be a zip by :func:`load_model`) read in safe mode (no Python code in
    the file is run)."""
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - whatever Keras raises on a bad archive is one line
        raise ModelFileError(f"model file {path} is not a loadable Keras model ({_first_line(exc)}): "
                             "copy the model file again or retrain") from None


def _load_skops(path: Path) -> Any:
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - not a skops archive at all
        raise ModelFileError(f"model file {path} is not a skops archive ({_first_line(exc)}): "
                             "copy the model file again or retrain") from None
    foreign = [name for name in untrusted if name not in TRUSTED_TYPES]
    if foreign:
        raise ModelFileError(f"model file {path} holds types medclf does not load: {', '.join(foreign)} "
                             "(a medclf model holds scikit-learn and numpy types only): it was not saved by "
                             "medclf; if you trust it, load it yourself with skops.io.load(path, trusted=[...])")
    try:
        return skops.io.load(path, trusted=untrusted)
    except Exception as exc:  # noqa: BLE001 - a damaged archive is one line
        raise ModelFileError(f"model file {path} is not a loadable skops model ({_first_line(exc)}): "
                             "copy the model file again or retrain") from None


def _load_pickle(path: Path) -> Any:
    import joblib  # deferred: only the explicit --allow-pickle path needs it

    try:
        return joblib.load(path)
    except Exception as exc:  # noqa: BLE001 - a damaged pickle is one line
        raise ModelFileError(f"model file {path} is not a loadable pickle ({_first_line(exc)})") from None


def load_model(path: str | os.PathLike, allow_pickle: bool = False, expected_sha256: str | None = None,
               recorded_in: str | os.PathLike | None = None) -> Any:
    """The model saved at ``path``: ``.keras`` with ``keras.saving.load_model`` (safe mode), ``.skops`` with
    skops (only :data:`TRUSTED_TYPES` beyond its defaults); a pickle (``.joblib``, ``.pkl``) only with
    ``allow_pickle`` (it can run any code). With ``recorded_in`` (the card, record or cache entry that
    describes the model), the file must have that description's ``expected_sha256`` (:func:`check_sha256`).

    Raises:
        ModelFileError: one line: another suffix, no such file, a pickle without ``allow_pickle``
            (:class:`PickleRefusedError`), another file than its card describes, an archive that would expand
            past :data:`MAX_EXPANSION` times its size, a file that is not the archive its suffix says,
            untrusted types.
    """
    path = check_model_path(path, allow_pickle)
    if path.suffix == KERAS_SUFFIX and not zipfile.is_zipfile(path):
        raise ModelFileError(f"model file {path} is not a Keras archive (a .keras file is a zip; this one is "
                             "truncated or something else renamed): copy the model file again or retrain")
    if path.suffix in (KERAS_SUFFIX, SKOPS_SUFFIX):
        check_expansion(path)
    if recorded_in is not None and path.suffix in PICKLE_SUFFIXES:
        check_sha256(path, expected_sha256, recorded_in)  # before a pickle runs anything, not after
    loader = {KERAS_SUFFIX: _load_keras, SKOPS_SUFFIX: _load_skops}.get(path.suffix, _load_pickle)
    model = loader(path)
    if recorded_in is not None and path.suffix not in PICKLE_SUFFIXES:
        # after a safe load, so that a damaged or foreign file is named for what it is; the hash then tells
        # whether the description beside it (threshold, classes, TTA) is this model's
        check_sha256(path, expected_sha256, recorded_in)
    return model
