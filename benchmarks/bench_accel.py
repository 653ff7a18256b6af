#!/usr/bin/env python
"""What the optional CPU speed-ups (``accel``) save on a whole notebook, and how far they move the results.

Runs ``run_all.py`` twice on the same data with the same seeds, each into its own temporary output
root and with ``--force``: once with ``-p accel=true`` (the bf16 probe behind ``mixed_precision=auto``,
CPU-steal accounting) and once with ``-p accel=false`` (float32 unless ``mixed_precision=on``). Extra
``-p`` settings apply to both runs (e.g. ``-p mixed_precision=off`` to compare at one precision).
It prints each run's wall time (and each notebook's, from ``run.json``) and the largest difference
between the two runs' test metrics (``results/*.json``: ``evaluation.test``, every number but counts).

    python benchmarks/bench_accel.py --data-root ../shared/data/chest_xray
    python benchmarks/bench_accel.py --dataset malaria --data-root ../shared/data/malaria/cell_images --only baselines

The decoded-image cache (``cache_dir``) is shared by both runs: a cold cache makes the first run pay
the decode. Run once beforehand, or pass ``--order false,true`` to swap which side goes first.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Leaves of ``evaluation.test`` that are counts, not metrics (they differ by whole images).
COUNT_KEYS = {"n", "support", "confusion_matrix"}


def run(setting: str, out: Path, args: argparse.Namespace) -> float:
    """Wall seconds of one ``run_all.py`` call with ``-p accel=<setting>`` into ``out``."""
    command = [sys.executable, str(ROOT / "run_all.py"), "--dataset", args.dataset, "--profile", args.profile,
               "--force", "-p", f"accel={setting}", "-p", f"output_dir={out}"]
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
    parser.add_argument("--order", default="true,false", help="which accel setting runs first (default true,false)")
    parser.add_argument("--keep", action="store_true", help="keep the two output roots (printed)")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    args.only = args.only or ["baselines"]
    order = [s.strip() for s in args.order.split(",")]
    if sorted(order) != ["false", "true"]:
        parser.error("--order must name true and false once each, e.g. false,true")

    roots, walls, metrics, per_notebook = {}, {}, {}, {}
    for setting in order:
        roots[setting] = Path(tempfile.mkdtemp(prefix=f"bench_accel_{setting}_"))
        walls[setting] = run(setting, roots[setting], args)
        folder = run_folder(roots[setting], args.dataset, args.profile)
        metrics[setting], per_notebook[setting] = read_test_metrics(folder), notebook_times(folder)

    for setting in order:
        notebooks = ", ".join(f"{name} {s:.1f} s" for name, s in per_notebook[setting].items()) or "n/a"
        print(f"accel={setting}: {walls[setting]:.1f} s wall ({notebooks}); {len(metrics[setting])} models")
    saved = 1 - walls["true"] / walls["false"]
    print(f"accel saves {saved:.1%} of the wall time ({walls['false']:.1f} s → {walls['true']:.1f} s)")
    largest = largest_difference(metrics["true"], metrics["false"])
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
        print("outputs:", ", ".join(f"accel={s}: {p}" for s, p in roots.items()))
    else:
        import shutil

        for path in roots.values():
            shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
