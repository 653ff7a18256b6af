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


class RunRecordError(ValueError):
    """A ``run.json`` that is not a run record as medclf writes it; the message names the file and the fix."""


_TEXT, _NUMBER = (str,), (int, float)
#: The types of the run.json fields its readers use (the plan, ``--list``, ``results``, the index page);
#: any may be absent or null. A run.json edited by hand or written by something else is refused in one
#: line rather than failing deep inside a reader.
_TOP_FIELDS = {"notebooks": (dict,), "machine": (dict,), "git": (dict,), "params": (dict,), "status": _TEXT,
               "dataset": _TEXT, "profile": _TEXT, "started": _TEXT, "ended": _TEXT, "selected": (list,),
               "command": (list,)}
_ENTRY_FIELDS = {"status": _TEXT, "file": _TEXT, "ok_fingerprint": _TEXT, "ok_inputs": (dict,),
                 "ok_wall_s": _NUMBER, "ok_finished": _TEXT, "ok_cpu": _TEXT, "wall_s": _NUMBER,
                 "deps": (list,), "inputs": (dict,), "fingerprint": _TEXT, "params_hash": _TEXT}
_MACHINE_FIELDS = {"cpu": _TEXT, "cpus": (int,), "gpus": (list,), "cpu_bf16": (list,)}
_GIT_FIELDS = {"commit": _TEXT}


def _shape_problem(info: Any) -> str | None:
    """What makes ``info`` (parsed run.json) unusable to its readers, or ``None``."""
    if not isinstance(info, dict):
        return f"it holds a {type(info).__name__}, not a mapping"
    checks = [("", info, _TOP_FIELDS)]
    for key, fields in (("machine", _MACHINE_FIELDS), ("git", _GIT_FIELDS)):
        if isinstance(info.get(key), dict):
            checks.append((f"{key}.", info[key], fields))
    for name, entry in (info.get("notebooks") or {}).items() if isinstance(info.get("notebooks"), dict) else ():
        if not isinstance(entry, dict):
            return f"notebooks.{name} is a {type(entry).__name__}, not a mapping"
        checks.append((f"notebooks.{name}.", entry, _ENTRY_FIELDS))
        for key in ("inputs", "ok_inputs"):
            if isinstance(entry.get(key), dict) and not isinstance(entry[key].get("deps") or {}, dict):
                return f"notebooks.{name}.{key}.deps is a {type(entry[key]['deps']).__name__}, not a mapping"
    for prefix, values, fields in checks:
        for key, types in fields.items():
            value = values.get(key)
            if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
                wanted = {_TEXT: "a string", _NUMBER: "a number", (int,): "an integer", (dict,): "a mapping",
                          (list,): "a list"}[types]
                return f"{prefix}{key} is {value!r:.40} ({type(value).__name__}), not {wanted}"
    return None


def entry_problem(entry: Any) -> str | None:
    """What makes ``entry`` unlike a notebook's run.json entry as the runner writes it, or ``None``."""
    if not isinstance(entry, dict):
        return f"it is a {type(entry).__name__}, not a mapping"
    problem = _shape_problem({"notebooks": {"entry": entry}})
    return problem.replace("notebooks.entry.", "", 1) if problem else None


def read_run_info(out_dir: str | Path) -> dict[str, Any]:
    """The previous ``run.json`` of a run folder, or ``{}`` when there is none.

    Raises:
        RunRecordError: it cannot be read, is not JSON, or is not shaped as medclf writes it (see
            :data:`_TOP_FIELDS`); one line naming the file, what is wrong and what to do.
    """
    path = paths.RunPaths(Path(out_dir)).run_info
    if path.is_symlink():  # a record medclf wrote is a plain file; a link may name anyone's file
        raise RunRecordError(f"{path} is a symbolic link (to {os.readlink(path)}), not a run record medclf wrote; "
                             "delete the link (what it points to is left alone; the next run writes a new run.json "
                             "and reruns every notebook)")
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problem = f"it cannot be read ({exc.strerror or exc})"
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        problem = f"it is not JSON ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    else:
        problem = _shape_problem(info)
    if problem:
        raise RunRecordError(f"{path} is not a run record as medclf writes it: {problem}; move it away or delete "
                             "it (the next run writes a new one, and reruns every notebook)")
    return info


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
