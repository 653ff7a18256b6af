"""Score new images with a saved model: ``python -m medclf predict --model PATH IMAGE_OR_FOLDER...``.

A saved model travels with its *model card* (:mod:`medclf.cli.model_card`), the results record written
beside it. Images are decoded by the data layer's own functions (:func:`medclf.data.decode.decode_files`)
with the card's settings, so a training or test image scores exactly as it did in ``predictions/<id>.csv``
(with test-time augmentation: when scored in the same order, see :func:`iter_scored`).

Model files are read without running code from them (:mod:`medclf.models.files`): ``.keras`` in safe
mode, ``.skops`` with its types checked; a pickle (``.joblib``) only with ``--allow-pickle``.
Every usage problem — model, card, flags, an ``--out`` that cannot be written, an output that would replace
or mix with an input image, the model or its card (:func:`check_targets`) — is found before any image is
scored or any file written, and printed as one line (exit 2). Bad files (not an image, empty, truncated,
undecodable, too large, a dangling or looping link) are listed as skipped and never stop the batch: the CSV
has every image that could be scored (exit 0); when none could, nothing is written (exit 1). A model whose
card flags it for constant predictions still scores, with one warning line on stderr first
(:func:`flagged_warning`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medclf.cli.model_card import ModelCard, PredictError, load_card  # noqa: F401 - PredictError, load_card: API
from medclf.cli.predict_outputs import (  # noqa: F401 - gradcam_path: API
    check_targets, gradcam_path, gradcam_unsupported, overlay_root, save_gradcams)
from medclf.config.param_specs import SPECS
from medclf.config.paths import MODEL_SUFFIXES, PICKLE_SUFFIXES
from medclf.evaluation.records import model_card_path
from medclf.core import io
from medclf.data.decode import DEFAULT_MAX_PIXELS, decode_files
from medclf.data.discover import skip_reason, unusable_entry, walk_files

#: Images decoded and scored together: bounds memory on large folders; Keras batches within it.
CHUNK = 1024
#: Rows of the result table printed on the terminal (the CSV always has every row).
MAX_PRINTED_ROWS = 40
COLUMNS = ("file", "probability", "label", "threshold")


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------

def check_model_file(model_path: str | os.PathLike, allow_pickle: bool = False) -> Path:
    """``model_path`` as a Path, checked to be an existing model file :func:`load_model` may read
    (:func:`medclf.models.files.check_model_path`).

    Raises:
        PredictError: a missing file, a folder, another suffix, or a pickle without ``allow_pickle``.
    """
    from medclf.models import files  # deferred: it loads Keras, which the other commands do not need

    try:
        return files.check_model_path(model_path, allow_pickle)
    except files.ModelFileError as exc:
        raise PredictError(str(exc)) from None


def load_model(model_path: str | os.PathLike, allow_pickle: bool = False, card: ModelCard | None = None) -> Any:
    """A saved Keras (``.keras``, safe mode) or scikit-learn (``.skops``; a pickle with ``allow_pickle``)
    model, read by :func:`medclf.models.files.load_model`; with its ``card``, only the file the card was
    written for (its ``model_sha256``).

    Raises:
        PredictError: the file is missing, has another suffix, is not the card's, or cannot be loaded safely.
    """
    from medclf.models import files

    try:
        model = files.load_model(model_path, allow_pickle, expected_sha256=card.model_sha256 if card else None,
                                 recorded_in=model_card_path(model_path) if card else None)
    except files.ModelFileError as exc:
        raise PredictError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any loader failure is one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PredictError(f"cannot load model {model_path} ({first}): is it a complete model file?") from None
    if not (hasattr(model, "decision_function") or callable(getattr(model, "predict", None))):
        raise PredictError(f"model file {model_path} holds a {type(model).__name__}, not a model that can score "
                           "images: pass a model saved by medclf")
    return model


def check_input_shape(model: Any, card: ModelCard, model_path: str | os.PathLike) -> None:
    """A Keras model's input must match the card's preprocessing (a wrong card beside a model).

    Raises:
        PredictError: the shapes differ.
    """
    shape = getattr(model, "input_shape", None)
    if shape is not None and tuple(shape[1:]) != card.input_shape:
        raise PredictError(f"model {model_path} takes images of shape {tuple(shape[1:])} but its card says "
                           f"{card.input_shape}: the card beside it belongs to another model")
    features = getattr(getattr(model, "steps", [(None, model)])[-1][1], "n_features_in_", None)
    if shape is None and features is not None and features != int(np.prod(card.input_shape)):
        raise PredictError(f"model {model_path} takes {features} pixel values per image but its card says "
                           f"{card.input_shape}: the card beside it belongs to another model")


def check_output(path: str | os.PathLike, what: str = "--out", folder: bool = False) -> Path:
    """``path`` checked to be writable before anything is scored: not a folder (or, with ``folder``, not a
    file), no file in the way of its folders, and a folder that takes a new file.

    Raises:
        PredictError: one line naming the path and what to do.
    """
    path = Path(path)
    if not folder and path.is_dir():
        raise PredictError(f"{what} {path} is a folder: give a file name for the CSV, e.g. {path / 'predictions.csv'}")
    if folder and path.exists() and not path.is_dir():
        raise PredictError(f"{what} {path} is a file: give a folder for the overlays (new or existing)")
    if not folder and path.exists() and not path.is_file():
        raise PredictError(f"{what} {path} is not a regular file: give a CSV file name")
    existing = path if folder and path.is_dir() else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise PredictError(f"{what} {path} cannot be written: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise PredictError(f"{what} {path} cannot be written: cannot create files in {existing} "
                           f"({exc.strerror or exc}); give a path in a folder you can write to") from None
    return path


# ---------------------------------------------------------------------------------------------
# finding and scoring images
# ---------------------------------------------------------------------------------------------

def find_images(inputs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files named by ``inputs`` (files, or folders walked recursively), each once, in order.

    Returns:
        ``(files, skipped)``; skipped holds ``(path, reason)`` for missing paths, entries that are not
        readable files (dangling or looping links, links to folders: :func:`medclf.data.discover.walk_files`),
        files that are not images by suffix (the data layer's list) and empty files.
    """
    files, skipped, seen = [], [], set()
    for item in map(Path, inputs):
        if item.is_dir():
            candidates, unusable = walk_files(item)
            skipped += [(str(path), reason) for path, reason in unusable]
        elif item.is_symlink() or item.exists():
            reason = unusable_entry(item) if not item.is_dir() else None
            if reason:
                skipped.append((str(item), reason))
                continue
            candidates = [item]
        else:
            skipped.append((str(item), "no such file or folder"))
            continue
        for path in candidates:
            key = path.resolve()
            if key in seen:
                continue
            seen.add(key)
            reason = skip_reason(path, path.stat().st_size)
            if reason:
                skipped.append((str(path), reason))
            else:
                files.append(path)
    return files, skipped


@dataclass
class ScoredChunk:
    """One decoded and scored chunk: the files that decoded, their arrays and probabilities."""

    files: list[Path]
    images: np.ndarray
    probabilities: np.ndarray
    skipped: list[tuple[str, str]]


def iter_scored(model: Any, card: ModelCard, files: Sequence[Path], chunk: int = CHUNK,
                workers: int = 2, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[ScoredChunk]:
    """Decode ``files`` with the card's settings and score them, ``chunk`` files at a time.

    Scores are :meth:`ModelCard.score` (batched Keras predictions, an SVM's decision function through
    a sigmoid, averaged over test-time augmentation views when the card says so), the same calls that
    made the stored predictions. TTA views are random (seeded per chunk), so with TTA an image's score
    depends on its place in the chunk: it matches the stored one only for the same images in the same order.
    """
    for start in range(0, len(files), chunk):
        part = list(files[start:start + chunk])
        desc = "decoding" if len(files) <= chunk else f"decoding {start + 1}-{start + len(part)} of {len(files)}"
        decoded = decode_files(part, card.image_size, card.color_mode, card.resize, workers=workers, desc=desc,
                               max_pixels=max_pixels)
        good = [(path, d.array) for path, d in zip(part, decoded) if d.error is None]
        skipped = [(str(path), d.error) for path, d in zip(part, decoded) if d.error is not None]
        if not good:
            yield ScoredChunk([], np.zeros((0, *card.input_shape), np.uint8), np.zeros(0), skipped)
            continue
        images = np.stack([array for _, array in good])
        yield ScoredChunk([path for path, _ in good], images, card.score(model, images), skipped)


def predictions_frame(files: Sequence[str | os.PathLike], probabilities: np.ndarray, card: ModelCard,
                      threshold: float | None = None) -> pd.DataFrame:
    """The output table: ``file, probability, label, threshold`` (label = class name at the threshold)."""
    cut = card.threshold if threshold is None else float(threshold)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    return pd.DataFrame({"file": [str(f) for f in files], "probability": probabilities,
                         "label": card.labels(probabilities, cut), "threshold": cut}, columns=list(COLUMNS))


def write_predictions(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the table as CSV, atomically (a reader never sees half a file)."""
    return io.write_text(path, frame.to_csv(index=False))


def format_table(frame: pd.DataFrame, max_rows: int = MAX_PRINTED_ROWS) -> str:
    """The table for the terminal: every row up to ``max_rows``, else the first rows and a note."""
    shown = frame.head(max_rows).to_string(index=False, float_format=lambda v: f"{v:.4f}")
    if len(frame) > max_rows:
        shown += f"\n... {len(frame) - max_rows} more rows in the CSV"
    counts = ", ".join(f"{n} {name}" for name, n in frame["label"].value_counts().sort_index().items())
    return f"{shown}\n{len(frame)} images scored: {counts}"


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``predict`` subcommand's arguments."""
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files and/or folders (recursive)")
    parser.add_argument("--model", required=True, help="saved model: outputs/<dataset>/<profile>/models/<id>"
                                                       f"{' or '.join(MODEL_SUFFIXES)} (its card <id>.json must sit beside it)")
    parser.add_argument("--out", default="predictions.csv", help="CSV to write (default: predictions.csv); never "
                                                                  "an input image, the model or its card")
    parser.add_argument("--threshold", type=float, help="threshold for the label (default: the card's, "
                                                        "chosen on validation)")
    parser.add_argument("--gradcam", metavar="DIR", help="write a Grad-CAM overlay PNG per image into DIR (Keras "
                                                         "models); DIR must lie outside every input and hold none")
    parser.add_argument("--workers", type=int, default=2, help="decoding threads (default: 2)")
    parser.add_argument("--max-image-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help="skip images of more than N pixels (width × height) as possible decompression bombs "
                             f"(default: {DEFAULT_MAX_PIXELS:,}, the max_image_pixels parameter's default)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help=f"also load a pickled model ({', '.join(PICKLE_SUFFIXES)}). RISK: loading a pickle runs "
                             "any code its author put in it, with your permissions; use it only for a file you made "
                             "or whose author you trust (medclf itself saves .keras and .skops, which cannot run code)")


def flagged_warning(card: ModelCard, model_path: str | os.PathLike) -> str | None:
    """The one stderr line for a model its card flags for constant predictions, or ``None``."""
    if not card.flagged:
        return None
    spread, tolerance = card.flagged.get("spread"), card.flagged.get("tolerance")
    span = (f" (its probabilities spanned {spread:.1e}, under {tolerance:g})"
            if isinstance(spread, (int, float)) and isinstance(tolerance, (int, float)) else "")
    return (f"warning: {model_path} is flagged for constant predictions{span}: it gives about the same score to "
            "every image, so its labels say nothing about the images; use a model that is not flagged")


def _report(skipped: Sequence[tuple[str, str]]) -> None:
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)


def check_flags(args: argparse.Namespace, files: Sequence[Path] = (),
                skipped: Sequence[tuple[str, str]] = ()) -> None:
    """The flags that need no model: threshold, pixel limit, and the outputs: none may replace or mix with
    the inputs ``files`` (and the empty images among ``skipped``), the model or its card (:func:`check_targets`),
    and each is writable, all before anything is scored or written.

    Raises:
        PredictError: the first problem, in one line.
    """
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise PredictError(f"--threshold {args.threshold} is outside 0..1: scores are probabilities")
    spec = SPECS["max_image_pixels"]
    if not spec.low <= args.max_image_pixels <= spec.high:
        raise PredictError(f"--max-image-pixels {args.max_image_pixels} is out of range: give a value with "
                           f"{spec.range_text().replace('x', 'N', 1)}")
    check_targets(args.out, args.gradcam, args.inputs, files, skipped, args.model)
    check_output(args.out)
    if args.gradcam:
        check_output(args.gradcam, "--gradcam", folder=True)


def run(args: argparse.Namespace) -> int:
    """Run ``predict``. Exit codes: 0 some image scored (the CSV has them; the rest are listed as skipped on
    stderr), 1 none could be scored or the CSV could not be written, 2 usage error (nothing scored)."""
    files, skipped = find_images(args.inputs)  # first: the outputs are checked against every input
    try:
        check_flags(args, files, skipped)
        model_path = check_model_file(args.model, args.allow_pickle)
        card = load_card(model_path)
        model = load_model(model_path, args.allow_pickle, card)
        check_input_shape(model, card, args.model)
    except PredictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if warning := flagged_warning(card, args.model):
        print(warning, file=sys.stderr)
    threshold = card.threshold if args.threshold is None else args.threshold
    gradcam_dir = Path(args.gradcam) if args.gradcam else None
    if gradcam_dir and (why := gradcam_unsupported(model)):
        print(f"note: {why} ({args.model}), so no overlays are written", file=sys.stderr)
        gradcam_dir = None

    _report(skipped)
    root = overlay_root(files)
    scored_files, probabilities, overlays = [], [], set()
    for chunk in iter_scored(model, card, files, workers=args.workers, max_pixels=args.max_image_pixels):
        _report(chunk.skipped)
        skipped += chunk.skipped
        if gradcam_dir and chunk.files:
            failed = save_gradcams(model, chunk, card, threshold, gradcam_dir, root, taken=overlays)
            _report(failed)
        scored_files += chunk.files
        probabilities.append(chunk.probabilities)
    if not scored_files:
        found = f"{len(skipped)} skipped, see above" if skipped else "no files in the inputs"
        print(f"error: no image could be scored ({found}); nothing written", file=sys.stderr)
        return 1
    frame = predictions_frame(scored_files, np.concatenate(probabilities), card, threshold)
    try:
        out = write_predictions(frame, args.out)
    except OSError as exc:
        print(f"error: cannot write {args.out} ({exc.strerror or exc}); {len(frame)} images were scored but not "
              "saved: rerun with --out in a folder you can write to", file=sys.stderr)
        return 1
    print(format_table(frame))
    print(f"threshold {threshold:.4g} ({'--threshold' if args.threshold is not None else 'from the model card'}); "
          f"positive class {card.class_names[1]}; {len(skipped)} files skipped; wrote {out}"
          + (f"; Grad-CAM overlays in {gradcam_dir}" if gradcam_dir else ""))
    return 0
