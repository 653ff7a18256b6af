"""One line per notebook of finished runs (data set, profile, notebook, status, wall time), then one per
run (total wall, models trained / reused from the model cache, training precision, device).

usage: python benchmarks/study_summary.py OUTPUT_ROOT [RUN_FOLDER ...]
OUTPUT_ROOT is the ``output_dir`` of the runs; each ``<dataset>/<profile>/run.json`` under it is read
(or only the given run folders, relative to it, e.g. ``chest_xray/full``).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from medclf.config import paths
from medclf.pipeline import provenance


def run_lines(run_dir: Path) -> list[str]:
    """The summary lines of one run folder (``[]`` when it holds no ``run.json``)."""
    info = provenance.read_run_info(run_dir)
    if not info:
        return []
    label = f"{info.get('dataset', '?')}/{info.get('profile', '?')}"
    lines, total = [], 0.0
    for name, entry in sorted(info.get("notebooks", {}).items(), key=lambda item: item[1].get("file", item[0])):
        wall = entry.get("wall_s")
        total += wall or 0.0
        took = f"{wall:8.1f} s" if wall is not None else "       - "
        lines.append(f"{label:28s} {Path(entry.get('file', name)).stem:18s} {entry.get('status', '?'):11s} {took}")
    reuse, precision = Counter(), Counter()
    for record_file in sorted(paths.RunPaths(run_dir).results.glob("*.json")):
        training = json.loads(record_file.read_text()).get("training", {})
        reuse["reused" if (training.get("model_cache") or {}).get("reused") else "trained"] += 1
        precision[training.get("mixed_precision") or "?"] += 1
    machine = info.get("machine", {})
    device = ", ".join(machine.get("gpus") or []) or f"CPU {machine.get('cpu', '?')} x{machine.get('cpus', '?')}"
    lines.append(f"{label:28s} {'TOTAL':18s} {info.get('status', '?'):11s} {total:8.1f} s   models trained "
                 f"{reuse['trained']}, reused {reuse['reused']}; precision "
                 f"{', '.join(f'{k} x{v}' for k, v in precision.items()) or '-'}; {device}")
    return lines


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    root = Path(argv[0])
    runs = [root / name for name in argv[1:]] or sorted(p.parent for p in root.glob("*/*/run.json"))
    lines = [line for run in runs for line in run_lines(run)]
    if not lines:
        print(f"error: no run.json under {root}: give the output_dir of finished runs", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
