#!/usr/bin/env python
"""Frozen MobileNetV2 + head (``mobilenet_v2_frozen``) trained for N epochs on the chest X-ray training split.

(a) the studies' way: every epoch runs the image batches through the frozen backbone (float32, Keras'
    default policy), training and validation;
(b) this workspace: the backbone's output is computed once per image (the ``params`` precision,
    mixed_bfloat16 where the hardware has it) into a fresh feature cache, then only the head trains.

Same model, same images, same batch size, same epochs (early stopping off), one run; (b)'s time
includes computing the features (a cold cache). A second (b) run with the cache filled shows what a
rerun costs.

    KERAS_HOME=../shared/keras python benchmarks/bench_transfer_cache.py --data-root ../shared/data/chest_xray \\
        [--epochs 10] [--limit 1000] [--image-size 224]

``--limit`` takes the first N training images (and N/9 validation images) to keep (a) short on a CPU;
the ratio does not depend on it much, since both sides scale with the number of images.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class Subset:
    """The parts of a :class:`medclf.data.Dataset` the transfer stage reads, limited to the first images."""

    def __init__(self, ds, limit: int | None):
        self.name, self.manifest_hash = ds.name, f"{ds.manifest_hash}-limit{limit}"
        self._arrays = {}
        for split, n in (("train", limit), ("val", None if limit is None else max(limit // 9, 32))):
            images, labels = ds.arrays(split)
            self._arrays[split] = (images[:n], labels[:n])

    def arrays(self, split: str):
        return self._arrays[split]


def timed(params: dict, data: Subset, spec, epochs: int, image_size: int, precision: str) -> float:
    """Seconds to build the model and train its head for ``epochs`` (features computed inside when cached)."""
    from medclf import train, transfer

    train.set_precision(precision)
    train.seed_everything(0)
    start = time.perf_counter()
    model = transfer.build_transfer((image_size, image_size, 1), spec.backbone, head_dropout=0.2,
                                    weights=params["weights"])
    transfer.fit_stage(model, spec, data, params, None, learning_rate=spec.learning_rate, epochs=epochs,
                       progress=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="data/chest_xray", help="chest X-ray folder holding train/")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, help="use the first N training images (default: all)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(args.data_root, "train")):
        print(f"error: {args.data_root}/train does not exist: pass --data-root pointing at the chest X-ray data",
              file=sys.stderr)
        return 2
    from medclf import models, train
    from medclf.data import load_dataset
    from medclf.params import load_params

    with tempfile.TemporaryDirectory() as cache:
        params = load_params("chest_xray", "full", args.data_root, {
            "image_size": args.image_size, "color_mode": "grayscale", "class_weight": True})
        data = Subset(load_dataset(params), args.limit)
        params = {**params, "cache_dir": cache}
        spec = dataclasses.replace(models.get_spec("mobilenet_v2_frozen"), callbacks=())  # fixed epoch count
        ours = train.precision_policy(params["mixed_precision"])
        try:
            a = timed({**params, "feature_cache": False}, data, spec, args.epochs, args.image_size, "off")
            b = timed({**params, "feature_cache": True}, data, spec, args.epochs, args.image_size, params["mixed_precision"])
            b_warm = timed({**params, "feature_cache": True}, data, spec, args.epochs, args.image_size,
                           params["mixed_precision"])
        except Exception as exc:  # e.g. WeightsUnavailable: one line, no traceback
            print(f"error: {exc}", file=sys.stderr)
            return 2
    n_train = len(data.arrays("train")[0])
    result = {"epochs": args.epochs, "train_images": n_train, "val_images": len(data.arrays("val")[0]),
              "image_size": args.image_size, "end_to_end_s": round(a, 1), "cached_cold_s": round(b, 1),
              "cached_warm_s": round(b_warm, 1), "ratio_cold": round(a / b, 1), "ratio_warm": round(a / b_warm, 1),
              "cached_precision": ours, "weights": params["weights"]}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    print(f"mobilenet_v2_frozen {args.image_size}px, {n_train} train images, {args.epochs} epochs: "
          f"(a) end to end, float32 {a:.0f} s; (b) cached features ({ours}) {b:.0f} s incl. extraction, "
          f"{b_warm:.0f} s with the cache filled; ratio (a)/(b) = {a / b:.1f}x cold, {a / b_warm:.1f}x warm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
