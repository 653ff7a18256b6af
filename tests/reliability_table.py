#!/usr/bin/env python
"""Run the bad-input, hostile-folder and interruption cases and print docs/reliability.md's table.

Each module's cases assert one kind of answer: a *clear line* (one actionable line, exit 2, outputs
and files outside byte-identical) or *reported* (the command goes on after a note or skip line that says
what it did: a refused journal, a removed link, a skipped image, a stopped run that keeps what finished).
A case that fails is counted under *not as designed*; the table's other kinds (traceback, silent, data
loss, outside write, hang) are what a failing case would be: each case asserts their absence (no
traceback on stderr, the notice, byte-identical files, a subprocess time limit).

    python tests/reliability_table.py            # every case (the slow ones too), on both cores
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: The modules whose every case asserts a clear line, then those whose cases assert a reported outcome.
CLEAR_LINE = ("test_bad_inputs_lines.py", "test_bad_inputs_runner.py", "test_bad_inputs_models.py",
              "test_model_binding.py", "test_predict_targets.py", "test_folders_apart.py")
REPORTED = ("test_untrusted_state.py", "test_hostile_folder.py", "test_decode_as_viewer.py",
            "test_bad_inputs_signals.py")
#: What each module's cases are, for the table.
WHAT = {
    "test_bad_inputs_lines.py": "parameter files, YAML, overrides, run.json, environment",
    "test_bad_inputs_runner.py": "data roots, output and cache folders, permissions, full disk",
    "test_bad_inputs_models.py": "predict: model files, cards, images, targets (fresh processes)",
    "test_model_binding.py": "a card bound to its model, bounded card numbers, zip bombs",
    "test_predict_targets.py": "predict's CSV and overlays never replace an input",
    "test_folders_apart.py": "output folder and data root kept apart",
    "test_untrusted_state.py": "journals, run.json, .lock and .staging as input",
    "test_hostile_folder.py": "a planted run folder, run_all and predict on it",
    "test_decode_as_viewer.py": "EXIF, frames, bit depth, tiny images",
    "test_bad_inputs_signals.py": "Ctrl-C, SIGTERM, SIGHUP, kill -9, a crash mid-publish",
}
MODULES = {**{m: (WHAT[m], "clear line") for m in CLEAR_LINE}, **{m: (WHAT[m], "reported") for m in REPORTED}}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "--all", "-n", "2", "-p", "no:cacheprovider",
                        f"--junitxml={junit}", *[str(HERE / name) for name in MODULES]], cwd=HERE.parent)
        cases = ET.parse(junit).getroot().iter("testcase")
        counts: dict[str, Counter] = {name: Counter() for name in MODULES}
        for case in cases:
            module = case.get("classname", "").split(".")[-1] + ".py"
            if module not in counts:
                continue
            failed = any(child.tag in ("failure", "error") for child in case)
            skipped = any(child.tag == "skipped" for child in case)
            counts[module]["not as designed" if failed else "skipped" if skipped else MODULES[module][1]] += 1
    kinds = ["clear line", "reported", "not as designed", "skipped"]
    print("| module | cases | " + " | ".join(kinds) + " |")
    print("|---|---|" + "---|" * len(kinds))
    total = Counter()
    for name, (what, _) in MODULES.items():
        total.update(counts[name])
        print(f"| `{name}` ({what}) | {sum(counts[name].values())} | "
              + " | ".join(str(counts[name][kind]) for kind in kinds) + " |")
    print(f"| **all** | **{sum(total.values())}** | " + " | ".join(f"**{total[kind]}**" for kind in kinds) + " |")
    return 0 if total["not as designed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
