"""Run provenance: run.json (versions, git commit, machine, settings, per-notebook status) and the index page.

``<run_dir>/run.json`` (:class:`medclf.config.paths.RunPaths`) is rewritten when a notebook starts
(status ``running``) and when it ends, so an interrupted run still says which notebooks finished and
which did not; its per-notebook ``ok_*`` fields are what the next run's plan compares fingerprints with.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medclf.config import paths
from medclf.core import io, versions
from medclf.reporting import pages
from medclf.accel import hardware


def now() -> str:
    """The local time, ISO 8601 to the second, with its UTC offset."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def read_run_info(out_dir: str | Path) -> dict[str, Any]:
    """The previous ``run.json`` of a run folder, or ``{}`` (also when unreadable)."""
    try:
        info = json.loads(paths.RunPaths(Path(out_dir)).run_info.read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def write_run_info(out_dir: str | Path, run_info: dict[str, Any]) -> Path:
    """Write ``run.json`` atomically."""
    return io.write_json(paths.RunPaths(Path(out_dir)).run_info, run_info)


def record_notebook(out_dir: str | Path, name: str, entry: dict[str, Any]) -> Path:
    """Set notebook ``name``'s entry in ``run.json`` (read, changed, written atomically)."""
    info = read_run_info(out_dir)
    info.setdefault("notebooks", {})[name] = entry
    return write_run_info(out_dir, info)


def machine_info() -> dict[str, Any]:
    """The CPU (model name and native bf16 flags), core count, GPUs and whether oneDNN was asked for:
    the same notebook takes two to four times longer on a CPU without bf16, and minutes on a GPU."""
    return {"cpu": hardware.cpu_model(), "cpu_bf16": hardware.cpu_bf16_flags(), "cpus": os.cpu_count(),
            "gpus": hardware.gpu_names(), "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}


def new_run_info(params: dict[str, Any], p_hash: str, data_hash: str | None, command: list[str],
                 started: str, selected: list[str], source_hash: str | None,
                 previous: dict[str, Any]) -> dict[str, Any]:
    """The run record at the start of a run; the previous run's per-notebook entries are kept."""
    return {
        "dataset": params["dataset"], "profile": params["profile"], "status": "running",
        "started": started, "ended": None, "command": command,
        "versions": versions.package_versions(), "git": versions.git_info(paths.PROJECT_ROOT),
        "machine": machine_info(),
        "params": params, "params_hash": p_hash, "data_manifest_hash": data_hash,
        "source_hash": source_hash, "selected": selected,
        "notebooks": dict(previous.get("notebooks", {}) or {}),
    }


def last_took(previous: dict[str, Any], name: str) -> str:
    """``"; last ok run 27.6 min on AMD EPYC"`` from the previous run.json, to plan by; ``""`` if none.

    The CPU is named because the same work takes two to four times longer on one without bf16."""
    entry = (previous.get("notebooks") or {}).get(name) or {}
    wall, cpu = entry.get("ok_wall_s"), entry.get("ok_cpu")
    if wall is None:
        return ""
    took = f"{wall / 60:.1f} min" if wall >= 60 else f"{wall:.0f} s"
    return f"; last ok run {took}" + (f" on {cpu}" if cpu else "")


def write_index(out_dir: Path, run_info: dict[str, Any], order: list[str]) -> Path | None:
    """Write ``reports/index.html``; a failure is a warning on stderr, never the run's failure."""
    try:
        return pages.write_index(out_dir, run_info, order)
    except Exception as exc:  # the run's record matters more than its summary page
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"warning: could not write reports/index.html: {type(exc).__name__}: {first}",
              file=sys.stderr, flush=True)
        return None
