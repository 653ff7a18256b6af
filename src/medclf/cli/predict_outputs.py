"""What ``predict`` writes besides its CSV, and what it may not write over: Grad-CAM overlays
(:func:`save_gradcams`, named by :func:`gradcam_path`) and the check that no output lands on or among the
inputs, the model or its card (:func:`check_targets`), run before anything is scored or written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medclf.cli.model_card import ModelCard, PredictError
from medclf.core import io
from medclf.data.discover import IMAGE_SUFFIXES
from medclf.evaluation.records import model_card_path

#: Images per Grad-CAM gradient pass.
GRADCAM_BATCH = 64


# ---------------------------------------------------------------------------------------------
# Grad-CAM overlays
# ---------------------------------------------------------------------------------------------

def gradcam_path(out_dir: Path, file: Path, root: Path, taken: set[Path] | None = None) -> Path:
    """``out_dir/<file relative to root, suffix .png>`` (``NORMAL/IM-1.jpeg`` → ``NORMAL/IM-1.png``).

    A path already in ``taken`` (``IM-1.png`` beside ``IM-1.jpeg``) keeps the input's suffix instead
    (``IM-1.jpeg.png``), so every input file gets its own overlay; the chosen path is added to ``taken``."""
    path, other = overlay_names(out_dir, file.resolve(), root)
    if taken is not None:
        if path in taken:
            path = other
        taken.add(path)
    return path


def overlay_names(out_dir: Path, real_file: Path, root: Path) -> tuple[Path, Path]:
    """The two paths :func:`gradcam_path` may give the overlay of the image whose resolved path is
    ``real_file``: ``<name>.png``, else ``<name>.<suffix>.png``."""
    relative = real_file.relative_to(root)
    return out_dir / relative.with_suffix(".png"), out_dir / relative.with_name(relative.name + ".png")


def overlay_root(files: Sequence[Path], resolve: Callable[[Path], str] = os.path.realpath) -> Path:
    """The folder overlay paths are relative to: the deepest one holding every image (resolved)."""
    return Path(os.path.commonpath([os.path.dirname(resolve(f)) for f in files])) if files else Path.cwd()


def gradcam_unsupported(model: Any) -> str | None:
    """Why ``model`` gets no Grad-CAM (a scikit-learn model, a dense network), or None when it does."""
    if not hasattr(model, "layers"):
        return "Grad-CAM needs a Keras model; this is a scikit-learn model"
    from medclf.analysis.explain import supports_gradcam

    if not supports_gradcam(model):
        return "Grad-CAM needs a convolutional layer; this dense network has none (use LIME)"
    return None


def save_gradcams(model: Any, chunk: Any, card: ModelCard, threshold: float, out_dir: Path,
                  root: Path, batch_size: int = GRADCAM_BATCH, taken: set[Path] | None = None) -> list[tuple[str, str]]:
    """Write one Grad-CAM overlay PNG (with its colour bar) per image of ``chunk`` (a
    :class:`medclf.cli.predict.ScoredChunk`; names from :func:`gradcam_path`;
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
# output targets: nothing predict writes may land on what it reads
# ---------------------------------------------------------------------------------------------

def _file_id(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of what ``path`` names (links followed), or None when nothing is there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _Resolver:
    """``os.path.realpath`` that keeps each folder's answer: one ``lstat`` per file, not one per part of its
    path (a deep folder of many images would otherwise cost more to check than to list)."""

    def __init__(self) -> None:
        self.folders: dict[str, str] = {}

    def __call__(self, path: str | os.PathLike) -> str:
        if ".." in os.fspath(path).split(os.sep):  # a link before ``..`` changes where it leads: no shortcut
            return os.path.realpath(path)
        head, name = os.path.split(os.path.abspath(path))
        if not name:
            return head
        if head not in self.folders:
            self.folders[head] = os.path.realpath(head)
        full = os.path.join(self.folders[head], name)
        return os.path.realpath(full) if os.path.islink(full) else full


class _Targets:
    """Identities of paths — resolved path and, where something is there, inode (a hard link or a bind
    mount has another path but the same inode) — with the files predict reads (images, model, card)."""

    def __init__(self) -> None:
        self.real = _Resolver()
        self.by_path: dict[str, tuple[str, Path]] = {}
        self.by_id: dict[tuple[int, int], tuple[str, Path]] = {}
        self.chains: dict[str, frozenset] = {}

    def ids(self, path: str | os.PathLike) -> set:
        key = _file_id(path)
        return {self.real(path)} | ({key} if key else set())

    def chain(self, folder: str | os.PathLike) -> frozenset:
        """:meth:`ids` of ``folder`` and of every folder above it: ``ids(F) & chain(X)`` says X is F or lies
        inside it."""
        folder = self.real(folder)
        if folder not in self.chains:
            parent = os.path.dirname(folder)
            above = self.chain(parent) if parent != folder else frozenset()
            self.chains[folder] = frozenset(self.ids(folder)) | above
        return self.chains[folder]

    def protect(self, path: str | os.PathLike, role: str) -> None:
        entry = (role, Path(path))
        self.by_path.setdefault(self.real(path), entry)
        if key := _file_id(path):
            self.by_id.setdefault(key, entry)

    def protected(self, path: str | os.PathLike) -> tuple[str, Path] | None:
        """``(role, path)`` of the file predict reads that writing ``path`` would replace, or None."""
        if hit := self.by_path.get(self.real(path)):
            return hit
        key = _file_id(path)
        return self.by_id.get(key) if key else None


def _same(target: str | os.PathLike, other: Path) -> str:
    return "" if os.path.abspath(target) == os.path.abspath(other) else " (the same file by another path or a link)"


def check_targets(out: str | os.PathLike, gradcam: str | os.PathLike | None, inputs: Sequence[str | os.PathLike],
                  files: Sequence[Path], skipped: Sequence[tuple[str, str]], model_path: str | os.PathLike) -> None:
    """Refuse outputs that would replace or mix with what ``predict`` reads, compared by resolved path and
    inode: the CSV (``out``) must not be an input image, the model or its card; the ``gradcam`` folder must
    neither be nor lie inside an input folder (a later run over it would score the overlays as images) nor
    hold an input; no overlay (:func:`overlay_names`, both candidates) may be an input, the model, the card
    or the CSV, or land inside an input folder through a link.

    Raises:
        PredictError: one line naming both paths and what to do.
    """
    targets = _Targets()
    for path in files:
        targets.protect(path, "the input image")
    for path, _ in skipped:  # an empty image is an input too; other files (an earlier CSV) may be replaced
        if Path(path).suffix.lower() in IMAGE_SUFFIXES and os.path.isfile(path):
            targets.protect(path, "the input image")
    model_path = Path(model_path)
    for model in dict.fromkeys([model_path, Path(os.path.realpath(model_path))]):  # as given, then its target
        targets.protect(model, "the model")
        targets.protect(model_card_path(model), "the model's card")
    if hit := targets.protected(out):
        role, other = hit
        raise PredictError(f"--out {out} is {role} {other}{_same(out, other)}: writing the CSV there would replace "
                           "it; nothing was written: give --out a new file name outside the inputs and the model "
                           "folder, e.g. predictions.csv")
    if not gradcam:
        return
    gradcam = Path(gradcam)
    folders = [(Path(p), targets.ids(p)) for p in inputs if Path(p).is_dir()]
    for folder, ids in folders:
        if ids & targets.chain(gradcam):
            where = "is" if ids & targets.ids(gradcam) else "is inside"
            raise PredictError(f"--gradcam {gradcam} {where} the input folder {folder}: the overlays would land "
                               "among the images (and a later run over that folder would score them as images); "
                               "nothing was written: give --gradcam a folder outside every input")
    gradcam_ids = targets.ids(gradcam)
    for item in [*map(Path, inputs), *files]:
        # the entry itself (a link inside --gradcam would be replaced) and what it leads to
        places = {os.path.dirname(os.path.abspath(item)), os.path.dirname(targets.real(item))}
        if item.is_dir():
            places.add(str(item))
        if any(gradcam_ids & targets.chain(place) for place in places):
            raise PredictError(f"--gradcam {gradcam} holds the input {item}: overlays written there would replace or "
                               "mix with the images; nothing was written: give --gradcam a folder that holds no "
                               "input (and is not inside one)")
    root = overlay_root(files, targets.real)
    overlays = [(file, overlay) for file in files
                for overlay in overlay_names(gradcam, Path(targets.real(file)), root)]
    out_path = targets.real(out)
    for file, overlay in overlays:  # a file replaced is worse than one added: reported first
        if hit := targets.protected(overlay):
            role, other = hit
            raise PredictError(f"--gradcam {gradcam}: the overlay {overlay} would replace {role} {other}"
                               f"{_same(overlay, other)}; nothing was written: give --gradcam a new folder "
                               "with no links into the inputs or the model folder")
        if targets.real(overlay) == out_path:
            raise PredictError(f"--out {out} is also the path of the overlay for {file}: the CSV and the overlay "
                               f"would replace each other; nothing was written: give --out a file outside "
                               f"--gradcam {gradcam}")
    for file, overlay in overlays:
        chain = targets.chain(overlay.parent)
        if inside := next((folder for folder, ids in folders if ids & chain), None):
            raise PredictError(f"--gradcam {gradcam}: the overlay {overlay} would land inside the input folder "
                               f"{inside} (a link under {gradcam} leads there); nothing was written: give "
                               "--gradcam a new folder with no links into the inputs")
