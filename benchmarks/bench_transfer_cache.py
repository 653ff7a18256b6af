#!/usr/bin/env python
"""Frozen MobileNetV2 + head (``mobilenet_v2_frozen``) trained for N epochs on the chest X-ray training split.

(a) the studies' way: every epoch Keras' directory loader decodes the JPEGs and every batch runs
    through the frozen backbone (float32, Keras' default policy), training and validation;
(b) this workspace: the backbone's output is computed once per image into a fresh feature cache, under
    the dtype policy the full profile declares for this model (``mixed_precision``), then only the head trains.

Same model, same images, same batch size, same epochs (early stopping off), one run; each variant
runs in a fresh process (see ``isolated.py``). (b)'s time includes computing the features (a cold
cache); a second (b)
process with the cache filled shows what a rerun costs. Besides wall time each side's CPU time
(its process, all threads) is reported: it does not grow with CPU steal, so it compares the two
sides fairly when the host of a virtual machine is busy.

    KERAS_HOME=../shared/keras python benchmarks/bench_transfer_cache.py --data-root ../shared/data/chest_xray \\
        [--epochs 10] [--limit 1000] [--image-size 224]

``--limit`` takes a seeded sample of N training images (and N/9 validation images) to keep (a) short on a CPU;
the ratio does not depend on it much, since both sides scale with the number of images.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from isolated import clocks, run_isolated, since  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


class Subset:
    """The parts of a :class:`medclf.data.Dataset` the transfer stage reads, limited to a seeded sample
    of ``limit`` training images (and ``limit / 9`` validation images); ``files`` are their paths."""

    def __init__(self, ds, limit: int | None, root: str):
        import numpy as np

        self.name, self.manifest_hash = ds.name, f"{ds.manifest_hash}-limit{limit}"
        self._arrays, self.files = {}, {}
        rng = np.random.default_rng(0)
        for split, n in (("train", limit), ("val", None if limit is None else max(limit // 9, 32))):
            rows = ds.indices(split)
            if n is not None and n < len(rows):
                rows = np.sort(rng.choice(rows, n, replace=False))
            self._arrays[split] = (ds.images[rows], ds.frame["label"].to_numpy()[rows])
            self.files[split] = [(os.path.join(root, rel), ds.class_names[label])
                                 for rel, label in zip(ds.frame["relpath"].to_numpy()[rows], self._arrays[split][1])]

    def arrays(self, split: str):
        return self._arrays[split]

    def selection_mask(self):
        """Every sampled validation image chooses epochs (the benchmark times training, not model choice)."""
        import numpy as np

        return np.ones(len(self._arrays["val"][1]), dtype=bool)

    def selection_arrays(self):
        return self._arrays["val"]


def directory_loader(files: list[tuple[str, str]], folder: str, image_size: int, batch_size: int, shuffle: bool):
    """Keras' directory loader over ``folder`` filled with links to ``files`` (path, class name): the
    JPEGs are decoded and resized every epoch, as the studies' ``flow_from_directory`` did."""
    import keras

    classes = sorted({name for _, name in files})
    for name in classes:
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    for path, name in files:
        os.symlink(os.path.abspath(path), os.path.join(folder, name, os.path.basename(path)))
    return keras.utils.image_dataset_from_directory(
        folder, label_mode="binary", class_names=classes, color_mode="grayscale", image_size=(image_size, image_size),
        batch_size=batch_size, shuffle=shuffle, seed=0, verbose=False)


def timed_studies_way(params: dict, data: Subset, spec, epochs: int, image_size: int,
                      folder: str) -> tuple[float, float, float | None]:
    """(a): wall, CPU and steal seconds to build the model and fit it for ``epochs`` on JPEGs decoded every epoch, every
    batch going through the frozen backbone, float32."""
    import keras

    from medclf.models import builders
    from medclf.training import fit
    from medclf.models import transfer

    loaders = {split: directory_loader(data.files[split], os.path.join(folder, split), image_size, spec.batch_size,
                                       shuffle=split == "train") for split in ("train", "val")}
    keras.mixed_precision.set_global_policy("float32")
    fit.seed_everything(0)
    start = clocks()
    model = transfer.build_transfer((image_size, image_size, 1), spec.backbone, head_dropout=0.2,
                                    weights=params["weights"])
    fit.compile_model(model, builders.make_optimizer(spec.optimizer, spec.learning_rate))
    model.fit(loaders["train"], validation_data=loaders["val"], epochs=epochs, verbose=0,
              class_weight=fit.class_weights(data.arrays("train")[1]))
    return since(start)


def timed_workspace_way(params: dict, data: Subset, spec, epochs: int, image_size: int,
                        policy: str) -> tuple[float, float, float | None]:
    """(b): wall, CPU and steal seconds to build the model and train its head for ``epochs`` from the uint8 arrays, the
    features computed inside (once, into the cache) unless the cache already holds them."""
    import keras

    from medclf.config import paths
    from medclf.config.settings import TrainingSettings, TransferSettings
    from medclf.models import transfer
    from medclf.training import fit, transfer_fit

    keras.mixed_precision.set_global_policy(policy)
    fit.seed_everything(0)
    start = clocks()
    model = transfer.build_transfer((image_size, image_size, 1), spec.backbone, head_dropout=0.2,
                                    weights=params["weights"])
    transfer_fit.fit_stage(model, spec, data, None, training=TrainingSettings.of(params),
                           transfer=TransferSettings.of(params), feature_dir=paths.feature_cache_dir(params, data.name),
                           learning_rate=spec.learning_rate, epochs=epochs, progress=False)
    return since(start)


def declared_policy(params: dict) -> str:
    """The dtype policy the settings declare for the frozen model; in its own process so this one never
    imports TensorFlow."""
    from medclf.accel import precision

    return precision.declared_precision("mobilenet_v2_frozen", params).policy


def variant(name: str, params: dict, limit: int | None, epochs: int, image_size: int, policy: str):
    """One timed variant (``"a"``: the studies' way, ``"b"``: the cached path) in this process;
    returns ``((wall, CPU, steal) seconds, {split: images})``."""
    from medclf.models import registry
    from medclf.data import load_dataset

    data = Subset(load_dataset(params), limit, params["data_root"])
    spec = dataclasses.replace(registry.get_spec("mobilenet_v2_frozen"), callbacks=())  # fixed epoch count
    if name == "a":
        seconds = timed_studies_way(params, data, spec, epochs, image_size, os.path.join(params["cache_dir"], "links"))
    else:
        seconds = timed_workspace_way({**params, "feature_cache": True}, data, spec, epochs, image_size, policy)
    return seconds, {split: len(data.arrays(split)[1]) for split in ("train", "val")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="data/chest_xray", help="chest X-ray folder holding train/")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, help="use a seeded sample of N training images (default: all)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(args.data_root, "train")):
        print(f"error: {args.data_root}/train does not exist: pass --data-root pointing at the chest X-ray data",
              file=sys.stderr)
        return 2
    from medclf.config.params import load_params  # no TensorFlow in this process: it would compete for the CPUs

    with tempfile.TemporaryDirectory() as cache:
        params = {**load_params("chest_xray", "full", args.data_root, {
            "image_size": args.image_size, "color_mode": "grayscale", "class_weight": True}), "cache_dir": cache}
        try:
            ours = run_isolated(declared_policy, params)
            (a, a_cpu, steal_a), counts = run_isolated(variant, "a", params, args.limit, args.epochs, args.image_size,
                                                       "float32")
            (b, b_cpu, steal_b), _ = run_isolated(variant, "b", params, args.limit, args.epochs, args.image_size, ours)
            (b_warm, _, _), _ = run_isolated(variant, "b", params, args.limit, args.epochs, args.image_size, ours)
        except Exception as exc:  # e.g. WeightsUnavailable: one line, no traceback
            print(f"error: {exc}", file=sys.stderr)
            return 2
    n_train = counts["train"]
    result = {"epochs": args.epochs, "train_images": n_train, "val_images": counts["val"],
              "image_size": args.image_size, "end_to_end_s": round(a, 1), "cached_cold_s": round(b, 1),
              "cached_warm_s": round(b_warm, 1), "ratio_cold": round(a / b, 1), "ratio_warm": round(a / b_warm, 1),
              "end_to_end_cpu_s": round(a_cpu, 1), "cached_cold_cpu_s": round(b_cpu, 1),
              "cpu_ratio_cold": round(a_cpu / b_cpu, 1),
              "cached_precision": ours, "weights": params["weights"],
              "cpu_steal_s": {"end_to_end": steal_a, "cached_cold": steal_b}}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    print(f"mobilenet_v2_frozen {args.image_size}px, {n_train} train images, {args.epochs} epochs: "
          f"(a) end to end, float32 {a:.0f} s; (b) cached features ({ours}) {b:.0f} s incl. extraction, "
          f"{b_warm:.0f} s with the cache filled; ratio (a)/(b) = {a / b:.1f}x cold, {a / b_warm:.1f}x warm; "
          f"by CPU time {a_cpu:.0f} / {b_cpu:.0f} CPU-s = {a_cpu / b_cpu:.1f}x cold "
          f"(precision as declared; CPU steal {steal_a} s during (a), "
          f"{steal_b} s during (b) cold)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
