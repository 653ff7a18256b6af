#!/usr/bin/env python
"""Time per epoch of the 3-conv "deeper" CNN (S1) at 128×128 on the chest X-ray training folder.

(a) the studies' way: JPEGs decoded and resized every epoch by Keras' directory loader, float32,
    Keras' own Adam (what the studies compiled with);
    TensorFlow's own choice of CPU kernels (oneDNN only on CPUs with AVX512 deep-learning features);
(b) this workspace: decoded once into cached uint8 arrays, fed from memory by tf.data, with
    the dtype policy the quick profile declares for the model (``mixed_precision``),
    Keras' Adam and oneDNN kernels
    on every x86 CPU (``medclf/__init__.py``).

Same model, same images (every file of the official ``train`` folder), same batch size, one run;
each variant in a fresh process (see ``isolated.py``).
Epoch 1 of each is a warm-up (graph tracing, cache fill) and is not counted. Besides wall time it
reports each side's CPU time (this process, all threads), which does not grow when the host of a
virtual machine takes the CPUs away (steal) and so compares the two sides fairly on a busy host.

    python benchmarks/bench_input_pipeline.py --data-root ../shared/data/chest_xray [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from isolated import run_isolated  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

MODEL = "cnn_deeper"


def timed_fit(dataset, epochs: int, optimizer) -> tuple[list[float], list[float], float | None, bool | None]:
    """Wall seconds and CPU seconds (this process) of each epoch of cnn_deeper, the CPU steal seconds over
    the whole fit, and whether TensorFlow ran oneDNN kernels."""
    from medclf.accel import cpu_steal
    from medclf.accel import hardware
    from medclf.models import registry
    from medclf.training import fit
    from medclf.training.callbacks import callback_classes

    model = registry.build_model(registry.get_spec(MODEL), (128, 128, 3))
    fit.compile_model(model, optimizer)
    EpochTimer, _ = callback_classes()
    timer, steal_start = EpochTimer(), cpu_steal.steal_seconds()
    model.fit(dataset, epochs=epochs, callbacks=[timer], verbose=0)
    return timer.seconds, timer.cpu_seconds, cpu_steal.stolen_since(steal_start), hardware.onednn_enabled()


def studies_way(root: str, batch_size: int, epochs: int,
                tf_env: dict[str, str | None] | None = None) -> tuple[list[float], list[float], float | None, bool | None]:
    """(a). ``tf_env``: environment variables to set (``None``: unset) before TensorFlow starts — in a
    fresh process, the values the user started with, so TensorFlow makes its own oneDNN choice as the
    studies' runs did rather than the one ``medclf`` sets on import."""
    for name, value in (tf_env or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    import keras

    from medclf.models import registry

    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(0)
    loader = keras.utils.image_dataset_from_directory(
        os.path.join(root, "train"), label_mode="binary", class_names=["NORMAL", "PNEUMONIA"], color_mode="rgb",
        image_size=(128, 128), batch_size=batch_size, shuffle=True, seed=0, verbose=False)
    return timed_fit(loader, epochs, keras.optimizers.Adam(learning_rate=registry.get_spec(MODEL).learning_rate))


def workspace_way(root: str, batch_size: int, epochs: int) -> tuple[list[float], list[float], float | None, bool | None,
                                                                   str]:
    from medclf.accel import precision
    from medclf.data.pipeline import make_dataset
    from medclf.models import builders, registry
    from medclf.training import fit
    from medclf.data import load_dataset
    from medclf.config.params import load_params

    params = load_params("chest_xray", "quick", root, {"image_size": 128, "color_mode": "rgb"})
    spec = registry.get_spec(MODEL)
    policy = precision.set_precision(precision.declared_precision(MODEL, params).policy)
    fit.seed_everything(0)
    ds = load_dataset(params)
    rows = (ds.frame["source_split"] == "train").to_numpy()
    data = make_dataset(ds.images[rows], ds.frame["label"].to_numpy()[rows], batch_size, shuffle=True, seed=0)
    optimizer = builders.make_optimizer(spec.optimizer, spec.learning_rate)
    return (*timed_fit(data, epochs, optimizer), policy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="data/chest_xray", help="chest X-ray folder holding train/")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per variant (the first is warm-up)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is warm-up)")
    if not os.path.isdir(os.path.join(args.data_root, "train")):
        print(f"error: {args.data_root}/train does not exist: pass --data-root pointing at the chest X-ray data",
              file=sys.stderr)
        return 2
    as_given = {"TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}  # before medclf sets it
    from medclf.accel import hardware  # no TensorFlow: the CPU's name and bf16 flags for the summary

    ours, ours_cpu, steal_b, onednn_b, policy = run_isolated(workspace_way, args.data_root, args.batch_size,
                                                             args.epochs)
    theirs, theirs_cpu, steal_a, onednn_a = run_isolated(studies_way, args.data_root, args.batch_size, args.epochs,
                                                         as_given)
    a, b = statistics.median(theirs[1:]), statistics.median(ours[1:])
    a_cpu, b_cpu = statistics.median(theirs_cpu[1:]), statistics.median(ours_cpu[1:])
    result = {"studies_s_per_epoch": round(a, 2), "workspace_s_per_epoch": round(b, 2), "ratio": round(a / b, 2),
              "studies_cpu_s_per_epoch": round(a_cpu, 2), "workspace_cpu_s_per_epoch": round(b_cpu, 2),
              "cpu_ratio": round(a_cpu / b_cpu, 2),
              "workspace_precision": policy, "batch_size": args.batch_size, "epochs_timed": args.epochs - 1,
              "studies_epochs_s": [round(s, 2) for s in theirs], "workspace_epochs_s": [round(s, 2) for s in ours],
              "cpu_steal_s": {"studies": steal_a, "workspace": steal_b},
              "onednn": {"studies": onednn_a, "workspace": onednn_b},
              "cpu": hardware.cpu_model(), "cpu_bf16": hardware.cpu_bf16_flags()}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    kernels = {True: "oneDNN", False: "Eigen", None: "TensorFlow's kernels"}
    print(f"cnn_deeper 128x128, batch {args.batch_size}: (a) directory loader + float32 + Keras Adam + "
          f"{kernels[onednn_a]} {a:.1f} s/epoch; "
          f"(b) cached arrays + tf.data + {policy} + {kernels[onednn_b]} {b:.1f} s/epoch; ratio (a)/(b) = {a / b:.1f}x; by CPU time "
          f"{a_cpu:.1f} / {b_cpu:.1f} CPU-s per epoch = {a_cpu / b_cpu:.1f}x "
          f"(CPU steal over all epochs: {steal_a} s in (a), {steal_b} s in (b); CPU {result['cpu']}, native bf16: "
          f"{', '.join(result['cpu_bf16']) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
