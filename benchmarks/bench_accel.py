#!/usr/bin/env python
"""What mixed_bfloat16 saves against float32, per notebook and per training step, and how far it moves the results.

Precision is declared (``mixed_precision``, ``model_overrides.<model>.mixed_precision``), never chosen by
a timing: this benchmark measures what a declaration costs, it decides nothing.

Runs ``run_all.py`` twice on the same data with the same seeds, each into its own temporary output
root and with ``--force``: once with ``-p mixed_precision=float32`` and once with
``-p mixed_precision=mixed_bfloat16`` (a model whose settings declare its own policy in
``model_overrides`` keeps it: pass ``-p model_overrides=...`` to compare it too). Extra ``-p`` settings
apply to both runs. It prints each run's wall time (and each notebook's, from ``run.json``) and the
largest difference between the two runs' test metrics (``results/*.json``: ``evaluation.test``, every
number but counts).

    python benchmarks/bench_accel.py --data-root ../shared/data/chest_xray
    python benchmarks/bench_accel.py --dataset malaria --data-root ../shared/data/malaria/cell_images --only baselines

``--probe MODEL,...`` instead times one training step of each model under both policies (random weights
and a random batch, at ``--image-size``; remembered per machine in ``<cache_dir>/precision_probe.json``):

    python benchmarks/bench_accel.py --probe cnn_deeper,cnn_ours_chest --image-size 96

The decoded-image cache (``cache_dir``) is shared by both runs: a cold cache makes the first run pay
the decode. Run once beforehand, or pass ``--order mixed_bfloat16,float32`` to swap which side goes first.
Timings on a shared virtual machine drift with CPU steal; compare the per-notebook times of several runs.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Leaves of ``evaluation.test`` that are counts, not metrics (they differ by whole images).
COUNT_KEYS = {"n", "support", "confusion_matrix"}
#: The two policies compared, the baseline first.
POLICIES = ("float32", "mixed_bfloat16")


def run(policy: str, out: Path, args: argparse.Namespace) -> float:
    """Wall seconds of one ``run_all.py`` call with ``-p mixed_precision=<policy>`` into ``out``."""
    command = [sys.executable, str(ROOT / "run_all.py"), "--dataset", args.dataset, "--profile", args.profile,
               "--force", "-p", f"mixed_precision={policy}", "-p", f"output_dir={out}"]
    if args.data_root:
        command += ["--data-root", args.data_root]
    for name in args.only:
        command += ["--only", name]
    for param in args.param:
        command += ["-p", param]
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return time.perf_counter() - start


def step_seconds(build: Callable[[], Any], input_shape: Sequence[int], policy: str, batch_size: int = 16,
                 repeats: int = 5) -> float:
    """Fastest of ``repeats`` timed training steps of ``build()`` under ``policy`` on a random batch.

    The first step (graph tracing) is not timed; the global policy is restored afterwards.
    """
    import keras
    import numpy as np

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build()
        model.compile(optimizer=keras.optimizers.SGD(1e-6), loss="binary_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (batch_size, *input_shape)).astype("float32")
        y = rng.integers(0, 2, (batch_size, 1)).astype("float32")
        model.train_on_batch(x, y)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
        return min(times)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def cached_probe(probe: Callable[[str], float], store: str | Path, key: str) -> Callable[[str], float]:
    """``probe`` memoised in the JSON file ``store`` under ``key`` and the policy, so a model is measured
    once per machine (``key`` should name the model, input shape and device)."""
    from medclf.core.io import write_json

    def measured(policy: str) -> float:
        path = Path(store)
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
        entry = f"{key}|{policy}"
        if entry not in known:
            known[entry] = probe(policy)
            write_json(path, known)
        return float(known[entry])

    return measured


def probe_models(names: Sequence[str], image_size: int, store: Path) -> dict[str, dict[str, float]]:
    """``{model: {policy: seconds of one training step}}`` at ``image_size`` (random weights: speed does not
    depend on them), keyed in ``store`` by the network's training identity, the shape and the device."""
    import keras

    from medclf.accel import hardware
    from medclf.models import registry
    from medclf.training import model_cache

    timings = {}
    for name in names:
        spec = registry.get_spec(name)
        shape = (image_size, image_size, spec.channels)
        options = {"weights": "none"} if spec.family == "transfer" else {}
        key = (f"{model_cache.identity_digest(spec)}|{'x'.join(map(str, shape))}|{hardware.device_id()}"
               f"|keras {keras.__version__}")
        probe = cached_probe(lambda policy: step_seconds(lambda: registry.build_model(spec, shape, **options),
                                                         shape, policy), store, key)
        timings[name] = {policy: probe(policy) for policy in POLICIES}
    return timings


def run_folder(out: Path, dataset: str, profile: str) -> Path:
    """``<out>/<dataset>/<profile>``, the run folder :func:`medclf.config.paths.run_dir` builds."""
    return out / dataset / profile


def notebook_times(folder: Path) -> dict[str, float]:
    """Each notebook's wall seconds from the runner's ``run.json`` (empty where it is missing)."""
    try:
        info = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    entries = info.get("notebooks", info)
    if isinstance(entries, dict):
        entries = [{"notebook": name, **entry} for name, entry in entries.items() if isinstance(entry, dict)]
    return {str(e.get("notebook") or e.get("name")): e["wall_s"] for e in entries
            if isinstance(e, dict) and isinstance(e.get("wall_s"), (int, float))}


def numbers(node, path: str = ""):
    """``(path, value)`` of every finite number under ``node``, skipping :data:`COUNT_KEYS`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in COUNT_KEYS:
                yield from numbers(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, (int, float)) and not isinstance(node, bool) and math.isfinite(node):
        yield path, float(node)


def read_test_metrics(folder: Path) -> dict[str, dict[str, float]]:
    """``{model_id: {metric path: value}}`` of ``evaluation.test`` in every ``results/*.json``."""
    metrics = {}
    for path in sorted((folder / "results").glob("*.json")):
        record = json.loads(path.read_text())
        metrics[record.get("model_id", path.stem)] = dict(numbers(record["evaluation"]["test"]))
    return metrics


def largest_difference(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]):
    """``(difference, model_id, metric)`` of the largest absolute difference over shared models and metrics
    (``None`` when the runs share none)."""
    pairs = [(abs(a[m][k] - b[m][k]), m, k) for m in sorted(set(a) & set(b)) for k in sorted(set(a[m]) & set(b[m]))]
    return max(pairs) if pairs else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="chest_xray")
    parser.add_argument("--data-root", help="data folder (passed to run_all.py)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--only", action="append", default=None, metavar="NAME",
                        help="notebooks to run (default: baselines)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="further settings for both runs")
    parser.add_argument("--order", default=",".join(POLICIES),
                        help=f"which policy runs first (default {','.join(POLICIES)})")
    parser.add_argument("--probe", metavar="MODEL,...", help="time one training step of these models instead")
    parser.add_argument("--image-size", type=int, default=96, help="--probe: input side in pixels (default 96)")
    parser.add_argument("--keep", action="store_true", help="keep the two output roots (printed)")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    if args.probe:
        from medclf.config import paths
        from medclf.config.params import load_params, parse_override

        params = load_params(args.dataset, args.profile, args.data_root, dict(map(parse_override, args.param)))
        store = paths.precision_probe_file(params)  # -p cache_dir=... moves it
        timings = probe_models([n.strip() for n in args.probe.split(",") if n.strip()], args.image_size, store)
        for name, seconds in timings.items():
            f32, bf16 = seconds["float32"], seconds["mixed_bfloat16"]
            print(f"{name} {args.image_size}px: float32 {f32 * 1000:.1f} ms/step, mixed_bfloat16 "
                  f"{bf16 * 1000:.1f} ms/step ({bf16 / f32:.2f}x)")
        if args.json:
            Path(args.json).write_text(json.dumps({"image_size": args.image_size, "step_s": timings}, indent=2))
        return 0
    args.only = args.only or ["baselines"]
    order = [s.strip() for s in args.order.split(",")]
    if sorted(order) != sorted(POLICIES):
        parser.error(f"--order must name {' and '.join(POLICIES)} once each, e.g. {','.join(reversed(POLICIES))}")

    roots, walls, metrics, per_notebook = {}, {}, {}, {}
    for policy in order:
        roots[policy] = Path(tempfile.mkdtemp(prefix=f"bench_accel_{policy}_"))
        walls[policy] = run(policy, roots[policy], args)
        folder = run_folder(roots[policy], args.dataset, args.profile)
        metrics[policy], per_notebook[policy] = read_test_metrics(folder), notebook_times(folder)

    for policy in order:
        notebooks = ", ".join(f"{name} {s:.1f} s" for name, s in per_notebook[policy].items()) or "n/a"
        print(f"mixed_precision={policy}: {walls[policy]:.1f} s wall ({notebooks}); {len(metrics[policy])} models")
    base, bf16 = POLICIES
    saved = 1 - walls[bf16] / walls[base]
    print(f"{bf16} saves {saved:.1%} of the wall time ({walls[base]:.1f} s → {walls[bf16]:.1f} s)")
    largest = largest_difference(metrics[bf16], metrics[base])
    if largest is None:
        print("no model in both runs: nothing to compare")
    else:
        print(f"largest test-metric difference: {largest[0]:.6f} ({largest[1]}: {largest[2]})")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "wall_s": walls, "notebook_wall_s": per_notebook, "saved": saved,
            "largest_difference": None if largest is None else {"value": largest[0], "model_id": largest[1],
                                                                "metric": largest[2]}}, indent=2))
    if args.keep:
        print("outputs:", ", ".join(f"mixed_precision={s}: {p}" for s, p in roots.items()))
    else:
        import shutil

        for path in roots.values():
            shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
