"""Score new images with a saved model: ``python -m medclf predict --model PATH IMAGE_OR_FOLDER...``.

A saved model travels with its *model card*, the results record written beside it
(``models/<id>.json``, see :func:`medclf.evaluation.records.save_model_card`). The card holds everything
needed to score an image the way the model was trained and evaluated: input size, colour mode,
resize mode, class names, the threshold chosen on validation and, when the model kept it, its
test-time augmentation (:mod:`medclf.evaluation.tta`; the threshold was chosen on those averaged scores).
Images are decoded by the data layer's own functions (:func:`medclf.data.decode.decode_files`) with
those settings, so a training or test image scores exactly as it did in ``predictions/<id>.csv``
(with test-time augmentation: when scored in the same order, see :func:`iter_scored`).

Bad files (not an image, empty, truncated, undecodable) are reported and skipped; they never stop
the batch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medclf.core import io
from medclf.data.decode import CHANNELS, decode_files
from medclf.data.discover import skip_reason
from medclf.evaluation import scoring
from medclf.evaluation.records import model_card_path

#: Model file suffixes predict can load: those of medclf.models.files.SUFFIXES (not imported here, as that
#: would load Keras for every command; tests/test_portable_models.py checks they agree).
MODEL_SUFFIXES = (".keras", ".joblib")
#: Images decoded and scored together: bounds memory on large folders; Keras batches within it.
CHUNK = 1024
#: Rows of the result table printed on the terminal (the CSV always has every row).
MAX_PRINTED_ROWS = 40
COLUMNS = ("file", "probability", "label", "threshold")
#: The data layer's resize modes (medclf.data.decode.resize_square).
RESIZE_MODES = ("stretch", "pad")
#: Images per Grad-CAM gradient pass.
GRADCAM_BATCH = 64


class PredictError(ValueError):
    """A usage problem (missing or unreadable model, missing or incomplete card); one line, exit code 2."""


@dataclass(frozen=True)
class ModelCard:
    """What :func:`predict_files` needs from a model's record: preprocessing, class names, threshold."""

    model_id: str
    image_size: int
    color_mode: str
    resize: str
    class_names: tuple[str, str]
    threshold: float
    tta: dict | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, CHANNELS[self.color_mode])

    def labels(self, probabilities: np.ndarray, threshold: float | None = None) -> list[str]:
        """Class names at ``threshold`` (default: the card's): ``p >= threshold`` is label 1, as in evaluation."""
        cut = self.threshold if threshold is None else threshold
        return [self.class_names[int(p >= cut)] for p in probabilities]

    @classmethod
    def from_record(cls, record: dict, source: str | os.PathLike = "record") -> ModelCard:
        """Read the card's fields from a results record.

        Raises:
            PredictError: a field is missing or has a value the data layer cannot use.
        """
        fields = {"image_size": ("spec", "image_size_used"), "color_mode": ("spec", "color_mode"),
                  "resize": ("params", "resize"), "class_names": ("data", "class_names"),
                  "threshold": ("evaluation", "threshold")}
        values = {}
        for name, (section, key) in fields.items():
            try:
                values[name] = record[section][key]
            except (KeyError, TypeError):
                raise PredictError(f"model card {source} lacks {section}.{key}: it is not a complete results "
                                   "record (re-save it with medclf.evaluation.records.save_model_card)") from None
        if (values["color_mode"] not in CHANNELS or values["resize"] not in RESIZE_MODES
                or len(values["class_names"]) != 2):
            raise PredictError(f"model card {source}: unusable color_mode {values['color_mode']!r}, resize "
                               f"{values['resize']!r} or class_names {values['class_names']!r} (expected one of "
                               f"{sorted(CHANNELS)}, one of {list(RESIZE_MODES)} and two names)")
        positive = (record.get("data") or {}).get("positive_class")
        if positive not in (None, values["class_names"][1]):
            raise PredictError(f"model card {source}: positive_class {positive!r} is not label 1 "
                               f"({values['class_names'][1]!r}); scores are probabilities of label 1")
        tta = record["evaluation"].get("tta")
        return cls(model_id=str(record.get("model_id", Path(source).stem)), image_size=int(values["image_size"]),
                   color_mode=values["color_mode"], resize=values["resize"],
                   class_names=tuple(values["class_names"]), threshold=float(values["threshold"]),
                   tta=tta if tta and tta.get("used") else None)

    def score(self, model: Any, images: np.ndarray) -> np.ndarray:
        """Probabilities of label 1 as evaluation made them: plain, or averaged over the card's TTA views."""
        return scoring.scorer(model, self.tta)(images)


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------

def load_card(model_path: str | os.PathLike) -> ModelCard:
    """The card saved beside ``model_path`` (``models/<id>.keras`` → ``models/<id>.json``).

    Raises:
        PredictError: the card is missing, not JSON, or incomplete (the message says how it is made).
    """
    path = model_card_path(model_path)
    if not path.is_file():
        raise PredictError(f"model card {path} is missing: predict reads the input size, colour mode, class names "
                           "and threshold from it; it is written beside the model when a notebook or "
                           "medclf.training.experiment.run_model trains with save_models=true")
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PredictError(f"model card {path} is not readable JSON ({exc}): retrain, or re-save it with "
                           "medclf.evaluation.records.save_model_card") from None
    return ModelCard.from_record(record, path)


def check_model_file(model_path: str | os.PathLike) -> Path:
    """``model_path`` as a Path, checked to be an existing ``.keras`` or ``.joblib`` file.

    Raises:
        PredictError: the file is missing or has another suffix.
    """
    path = Path(model_path)
    if path.suffix not in MODEL_SUFFIXES:
        raise PredictError(f"model file {path} is not a .keras or .joblib file: pass a model saved under "
                           "outputs/<dataset>/<profile>/models/")
    if not path.is_file():
        raise PredictError(f"model file {path} does not exist: pass a model saved under outputs/<dataset>/<profile>/models/ "
                           "(written when training with save_models=true)")
    return path


def load_model(model_path: str | os.PathLike) -> Any:
    """A saved Keras (``.keras``, safe mode) or scikit-learn (``.joblib``) model, read by
    :func:`medclf.models.files.load_model`.

    Raises:
        PredictError: the file is missing, has another suffix, or cannot be loaded.
    """
    # Deferred: medclf.models.files loads Keras, which the other commands of ``python -m medclf`` do not need.
    from medclf.models import files

    path = check_model_file(model_path)
    try:
        return files.load_model(path)
    except Exception as exc:  # noqa: BLE001 - any loader failure is one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PredictError(f"cannot load model {path} ({first}): is it a complete model file?") from None


def check_input_shape(model: Any, card: ModelCard, model_path: str | os.PathLike) -> None:
    """A Keras model's input must match the card's preprocessing (a wrong card beside a model).

    Raises:
        PredictError: the shapes differ.
    """
    shape = getattr(model, "input_shape", None)
    if shape is not None and tuple(shape[1:]) != card.input_shape:
        raise PredictError(f"model {model_path} takes images of shape {tuple(shape[1:])} but its card says "
                           f"{card.input_shape}: the card beside it belongs to another model")


# ---------------------------------------------------------------------------------------------
# finding and scoring images
# ---------------------------------------------------------------------------------------------

def find_images(inputs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files named by ``inputs`` (files, or folders walked recursively), each once, in order.

    Returns:
        ``(files, skipped)``; skipped holds ``(path, reason)`` for missing paths, files that are
        not images by suffix (the data layer's list) and empty files.
    """
    files, skipped, seen = [], [], set()
    for item in map(Path, inputs):
        if item.is_dir():
            candidates = sorted(p for p in item.rglob("*") if p.is_file())
        elif item.is_file():
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
                workers: int = 2) -> Iterator[ScoredChunk]:
    """Decode ``files`` with the card's settings and score them, ``chunk`` files at a time.

    Scores are :meth:`ModelCard.score` (batched Keras predictions, an SVM's decision function through
    a sigmoid, averaged over test-time augmentation views when the card says so), the same calls that
    made the stored predictions. TTA views are random (seeded per chunk), so with TTA an image's score
    depends on its place in the chunk: it matches the stored one only for the same images in the same order.
    """
    for start in range(0, len(files), chunk):
        part = list(files[start:start + chunk])
        desc = "decoding" if len(files) <= chunk else f"decoding {start + 1}-{start + len(part)} of {len(files)}"
        decoded = decode_files(part, card.image_size, card.color_mode, card.resize, workers=workers, desc=desc)
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
# Grad-CAM overlays
# ---------------------------------------------------------------------------------------------

def gradcam_path(out_dir: Path, file: Path, root: Path, taken: set[Path] | None = None) -> Path:
    """``out_dir/<file relative to root, suffix .png>`` (``NORMAL/IM-1.jpeg`` → ``NORMAL/IM-1.png``).

    A path already in ``taken`` (``IM-1.png`` beside ``IM-1.jpeg``) keeps the input's suffix instead
    (``IM-1.jpeg.png``), so every input file gets its own overlay; the chosen path is added to ``taken``."""
    relative = file.resolve().relative_to(root)
    path = out_dir / relative.with_suffix(".png")
    if taken is not None:
        if path in taken:
            path = out_dir / relative.with_name(relative.name + ".png")
        taken.add(path)
    return path


def gradcam_unsupported(model: Any) -> str | None:
    """Why ``model`` gets no Grad-CAM (a scikit-learn model, a dense network), or None when it does."""
    if not hasattr(model, "layers"):
        return "Grad-CAM needs a Keras model; this is a scikit-learn model"
    from medclf.analysis.explain import supports_gradcam

    if not supports_gradcam(model):
        return "Grad-CAM needs a convolutional layer; this dense network has none (use LIME)"
    return None


def save_gradcams(model: Any, chunk: ScoredChunk, card: ModelCard, threshold: float, out_dir: Path,
                  root: Path, batch_size: int = GRADCAM_BATCH, taken: set[Path] | None = None) -> list[tuple[str, str]]:
    """Write one Grad-CAM overlay PNG (with its colour bar) per image of ``chunk`` (:func:`gradcam_path`;
    ``taken``: the overlays written so far in this run).

    Returns:
        ``(file, reason)`` for images whose heat map could not be computed (the rest are written).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medclf.analysis.explain import gradcams
    from medclf.plots.explain_plots import plot_gradcam

    failed = []
    for start in range(0, len(chunk.files), batch_size):
        part = slice(start, start + batch_size)
        try:
            heatmaps = gradcams(model, chunk.images[part])
        except Exception as exc:  # noqa: BLE001 - a failing batch must not stop the scoring
            failed += [(str(path), f"no Grad-CAM ({type(exc).__name__}: {exc})") for path in chunk.files[part]]
            continue
        for path, image, heatmap, p in zip(chunk.files[part], chunk.images[part], heatmaps,
                                           chunk.probabilities[part]):
            fig, ax = plt.subplots(figsize=(5, 4), layout="constrained")
            plot_gradcam(ax, image, heatmap, f"{path.name}\np={p:.3f} → {card.labels([p], threshold)[0]}",
                         colorbar=True)
            io.save_figure(fig, gradcam_path(out_dir, path, root, taken))
            plt.close(fig)
    return failed


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``predict`` subcommand's arguments."""
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files and/or folders (recursive)")
    parser.add_argument("--model", required=True, help="saved model: outputs/<dataset>/<profile>/models/<id>.keras or .joblib "
                                                       "(its card <id>.json must sit beside it)")
    parser.add_argument("--out", default="predictions.csv", help="CSV to write (default: predictions.csv)")
    parser.add_argument("--threshold", type=float, help="threshold for the label (default: the card's, "
                                                        "chosen on validation)")
    parser.add_argument("--gradcam", metavar="DIR", help="write a Grad-CAM overlay PNG per image into DIR (Keras models)")
    parser.add_argument("--workers", type=int, default=2, help="decoding threads (default: 2)")


def _report(skipped: Sequence[tuple[str, str]]) -> None:
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run ``predict``. Exit codes: 0 some image scored, 1 none could be scored, 2 usage error."""
    try:
        if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
            raise PredictError(f"--threshold {args.threshold} is outside 0..1: scores are probabilities")
        model_path = check_model_file(args.model)
        card = load_card(model_path)
        model = load_model(model_path)
        check_input_shape(model, card, args.model)
    except PredictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    threshold = card.threshold if args.threshold is None else args.threshold
    gradcam_dir = Path(args.gradcam) if args.gradcam else None
    if gradcam_dir and (why := gradcam_unsupported(model)):
        print(f"note: {why} ({args.model}), so no overlays are written", file=sys.stderr)
        gradcam_dir = None

    files, skipped = find_images(args.inputs)
    _report(skipped)
    root = Path(os.path.commonpath([f.resolve().parent for f in files])) if files else Path.cwd()
    scored_files, probabilities, overlays = [], [], set()
    for chunk in iter_scored(model, card, files, workers=args.workers):
        _report(chunk.skipped)
        skipped += chunk.skipped
        if gradcam_dir and chunk.files:
            failed = save_gradcams(model, chunk, card, threshold, gradcam_dir, root, taken=overlays)
            _report(failed)
        scored_files += chunk.files
        probabilities.append(chunk.probabilities)
    if not scored_files:
        print(f"error: no image could be scored ({len(skipped)} skipped, see above)", file=sys.stderr)
        return 1
    frame = predictions_frame(scored_files, np.concatenate(probabilities), card, threshold)
    out = write_predictions(frame, args.out)
    print(format_table(frame))
    print(f"threshold {threshold:.4g} ({'--threshold' if args.threshold is not None else 'from the model card'}); "
          f"positive class {card.class_names[1]}; {len(skipped)} files skipped; wrote {out}"
          + (f"; Grad-CAM overlays in {gradcam_dir}" if gradcam_dir else ""))
    return 0
