"""A generated, seeded stand-in for the chest X-ray data, in the Kermany folder layout.

Normal images show two dark lung fields in a brighter body with ribs and a spine; pneumonia
images add one to three bright, diffuse opacities inside the lungs, a learnable signal. File
names follow the real data (``IM-0001-0001.jpeg``, ``person12_bacteria_31.jpeg``) so that
patient grouping works the same way. For the demo and tests only: never a medical result.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from medclf.data.errors import DataError

GENERATOR_VERSION = 2
MARKER = ".synthetic.json"
CLASSES = ("NORMAL", "PNEUMONIA")


def _chest(rng: np.random.Generator, size: int, pneumonia: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 110 + 40 * yy + rng.normal(0, 4, (size, size))
    image += 10 * np.sin(2 * np.pi * (yy * rng.uniform(7, 9) + rng.uniform(0, 1)))  # ribs
    cx, cy = 0.5 + rng.normal(0, 0.02), 0.5 + rng.normal(0, 0.02)
    lungs = np.zeros_like(image, dtype=bool)
    for side in (-1, 1):
        lx, ly = cx + side * rng.uniform(0.17, 0.21), cy + rng.normal(0, 0.02)
        rx, ry = rng.uniform(0.12, 0.16), rng.uniform(0.25, 0.32)
        lungs |= ((xx - lx) / rx) ** 2 + ((yy - ly) / ry) ** 2 < 1
    image[lungs] -= rng.uniform(55, 70)
    image[np.abs(xx - cx) < 0.035] += 45  # spine
    if pneumonia:
        ys, xs = np.nonzero(lungs)
        for _ in range(rng.integers(1, 4)):
            k = rng.integers(len(ys))
            sigma = rng.uniform(0.08, 0.14)
            blob = np.exp(-(((xx - xs[k] / size) ** 2 + (yy - ys[k] / size) ** 2) / (2 * sigma**2)))
            image += rng.uniform(75, 105) * blob * lungs
    image = (image - 128) * rng.uniform(0.85, 1.15) + 128 + rng.normal(0, 6)
    return np.clip(image, 0, 255).astype(np.uint8)


def _patients(rng: np.random.Generator, n_images: int, max_per_patient: int) -> list[int]:
    """Images per patient, adding up to ``n_images``."""
    counts = []
    while sum(counts) < n_images:
        counts.append(int(min(rng.integers(1, max_per_patient + 1), n_images - sum(counts))))
    return counts


def _file_names(class_name: str, patient: int, count: int, first_index: int) -> list[str]:
    if class_name == "PNEUMONIA":
        kind = "bacteria" if patient % 3 else "virus"
        return [f"person{patient}_{kind}_{first_index + k}.jpeg" for k in range(count)]
    return [f"IM-{patient:04d}-{k + 1:04d}.jpeg" for k in range(count)]


def _split_of(rng: np.random.Generator, val_left: list[int], class_idx: int) -> str:
    if val_left[class_idx] > 0 and rng.random() < 0.1:
        return "val"
    return "test" if rng.random() < 0.2 else "train"


def _looks_generated(root: Path) -> bool:
    """Does ``root`` hold only what :func:`generate` writes (split folders of class folders of .jpeg files)?"""
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        allowed = {0: ({"train", "val", "test"}, {MARKER}), 1: (set(CLASSES), set())}.get(depth, (set(), None))
        if not set(dirnames) <= allowed[0] or any(os.path.islink(os.path.join(dirpath, d)) for d in dirnames):
            return False
        if allowed[1] is None:
            if any(not name.endswith(".jpeg") for name in filenames):
                return False
        elif not set(filenames) <= allowed[1]:
            return False
    return True


def state(root: Path, per_class: int, size: int, seed: int) -> str:
    """``"ready"`` (``root`` holds the set for these settings), ``"missing"``, ``"stale"`` (made with other
    settings) or ``"damaged"`` (an unreadable marker in a folder holding only generated files); all but
    ``"ready"`` mean :func:`generate` makes it.

    Raises:
        DataError: ``root`` is not ours to replace (a file, a folder without the marker, or a damaged
            marker beside files :func:`generate` does not write).
    """
    root = Path(root)
    settings = {"version": GENERATOR_VERSION, "per_class": per_class, "size": size, "seed": seed}
    marker = root / MARKER
    if not root.exists():
        return "missing"
    if not marker.is_file():
        raise DataError(f"{root} exists and is not a synthetic data set made here: choose another "
                        "data_root for the synthetic data (it would be replaced)")
    try:
        found = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        if not _looks_generated(root):
            raise DataError(f"{marker} is unreadable ({str(exc).splitlines()[0]}) and {root} holds files the "
                            "generator does not write: delete the folder yourself to regenerate it, or choose "
                            "another data_root") from None
        return "damaged"
    return "ready" if found == settings else "stale"


def generate(root: Path, per_class: int, size: int, seed: int) -> Path:
    """Write the synthetic data set to ``root`` unless it is already there with the same settings.

    Built in a temporary sibling folder and moved into place, so a half-written set never remains.
    A folder is only replaced when it is ours (see :func:`state`).
    """
    root = Path(root)
    found = state(root, per_class, size, seed)
    if found == "ready":
        return root
    if found == "damaged":
        print(f"medclf: {root / MARKER} is unreadable and {root} holds only generated images: generating "
              "the synthetic data set again", file=sys.stderr, flush=True)
    settings = {"version": GENERATOR_VERSION, "per_class": per_class, "size": size, "seed": seed}
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    rng = np.random.default_rng(seed)
    val_left = [4, 4]
    for class_idx, class_name in enumerate(CLASSES):
        image_index = 1
        counts = _patients(rng, per_class, 3 if class_idx else 2)
        used: set[str] = set()
        for patient, count in enumerate(counts, start=1):
            split = _split_of(rng, val_left, class_idx)
            missing = [s for s in ("test", "val", "train") if s not in used]
            if split not in missing and len(counts) - patient < len(missing):  # the last patients fill a split
                split = missing[0]                                              # still without this class
            used.add(split)
            if split == "val":
                val_left[class_idx] -= count
            folder = staging / split / class_name
            folder.mkdir(parents=True, exist_ok=True)
            for name in _file_names(class_name, patient, count, image_index):
                Image.fromarray(_chest(rng, size, bool(class_idx))).save(folder / name, quality=92)
            image_index += count
    (staging / MARKER).write_text(json.dumps(settings))
    if root.exists():
        shutil.rmtree(root)
    staging.rename(root)
    return root
