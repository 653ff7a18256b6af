"""Run the notebooks in order with papermill: skip what is up to date, survive failures, write reports.

``python run_all.py`` calls :func:`main`. For one data set (``outputs/<dataset>/``) it writes

* ``notebooks/NN_name.ipynb``: the executed notebooks (``NN_name.failed.ipynb`` for a failed one,
  which never replaces the last good one),
* ``reports/NN_name.html`` (and ``NN_name.failed.html``) and ``reports/index.html``,
* ``run.json``: versions, git commit, parameters and, per notebook, status, time and fingerprint.

A notebook's *fingerprint* hashes its file bytes, the parameter hash, all ``*.py`` source of
``medclf``, the data manifest fingerprint and the fingerprints of the notebooks it depends on.
It is skipped as up to date when that equals the fingerprint of its last successful run and its
executed notebook and HTML exist. Every file is written to a temporary file beside its
destination and moved into place, so an interrupted run (Ctrl-C, or SIGTERM from ``kill`` or a job
scheduler's time limit) never leaves a truncated file behind, and shuts the running kernel down.

This module imports only light modules at import time: papermill, nbconvert, pandas and the data
layer are imported when needed, and TensorFlow never in this process.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medclf.config import paths as config
from medclf.accel import cpu_steal
from medclf.core import io
from medclf.core import progress
from medclf.config.params import ParamError, load_params, params_hash, parse_override

#: Kernel the notebooks run in.
KERNEL_NAME = "python3"

#: How often (seconds) the runner looks at a running notebook's progress (:mod:`medclf.core.progress`).
PROGRESS_INTERVAL_S = 5.0


class OrchestrationError(ValueError):
    """A bad request to the runner (e.g. an unknown notebook name); reported as ``error: ...``."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. Raised like Ctrl-C's KeyboardInterrupt so that the same clean-up runs: the
    kernel is shut down, temporary files are removed and run.json records the interruption. Python's
    default for SIGTERM is to die on the spot, leaving the kernel training on as an orphan."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Within the block SIGTERM raises :class:`Terminated` (main thread only; the previous handler
    comes back afterwards, so callers embedding :func:`main` keep theirs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True)
class Notebook:
    """One registered notebook: short name, file under ``notebooks/``, names it depends on."""

    name: str
    file: str
    deps: tuple[str, ...] = ()

    @property
    def stem(self) -> str:
        """File name without suffix, e.g. ``01_eda``."""
        return Path(self.file).stem


#: All notebooks, in run order. Only those whose file exists are planned.
REGISTRY: tuple[Notebook, ...] = (
    Notebook("eda", "01_eda.ipynb"),
    Notebook("baselines", "02_baselines.ipynb"),
    Notebook("transfer", "03_transfer.ipynb"),
    Notebook("augmentation", "04_augmentation.ipynb"),
    Notebook("explain", "05_explain.ipynb", ("baselines", "transfer", "augmentation")),
    Notebook("compare", "06_compare.ipynb", ("baselines", "transfer", "augmentation")),
)


@dataclass
class Step:
    """A planned notebook: its fingerprint and whether it will run, with the reason."""

    notebook: Notebook
    path: Path
    fingerprint: str
    inputs: dict[str, Any]
    run: bool
    reason: str


# --------------------------------------------------------------------------- registry / selection


def available_notebooks(registry: tuple[Notebook, ...] | list[Notebook] = REGISTRY,
                        notebooks_dir: str | Path | None = None) -> list[Notebook]:
    """The registry entries whose notebook file exists in ``notebooks_dir``, in registry order."""
    notebooks_dir = Path(notebooks_dir or config.NOTEBOOKS_DIR)
    return [nb for nb in registry if (notebooks_dir / nb.file).is_file()]


def select_notebooks(available: list[Notebook], only: list[str] | None,
                     registry: tuple[Notebook, ...] | list[Notebook] = REGISTRY) -> list[Notebook]:
    """The notebooks named in ``only`` (``eda``, ``01_eda`` or ``01_eda.ipynb``), in run order; all if empty.

    Raises:
        OrchestrationError: an unknown name, or a registered notebook whose file does not exist.
    """
    if not only:
        return list(available)
    wanted = set()
    for raw in only:
        key = raw.strip()
        match = [nb for nb in registry if key in (nb.name, nb.stem, nb.file)]
        if not match:
            names = ", ".join(f"{nb.name} ({nb.stem})" for nb in registry)
            raise OrchestrationError(f"unknown notebook '{raw}' for --only; known notebooks: {names}")
        if match[0] not in available:
            raise OrchestrationError(f"notebook '{raw}' is registered but notebooks/{match[0].file} "
                                     "does not exist yet")
        wanted.add(match[0].name)
    return [nb for nb in available if nb.name in wanted]


# --------------------------------------------------------------------------- fingerprints


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    return _sha(Path(path).read_bytes())


def source_hash(src_dir: str | Path | None = None) -> str:
    """Hash of every ``*.py`` file under ``src_dir`` (default: the ``medclf`` package): names and bytes."""
    src_dir = Path(src_dir or config.PACKAGE_DIR)
    digest = hashlib.sha256()
    for path in sorted(src_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(src_dir).as_posix().encode() + b"\0")
        digest.update(_sha(path.read_bytes()).encode() + b"\0")
    return digest.hexdigest()


def fingerprint(inputs: dict[str, Any]) -> str:
    """Short stable hash of a notebook's inputs (see :func:`notebook_inputs`)."""
    return _sha(json.dumps(inputs, sort_keys=True, default=str).encode())[:20]


def notebook_inputs(notebook_path: str | Path, p_hash: str, src_hash: str, data_hash: str | None,
                    dep_fingerprints: dict[str, str] | None = None) -> dict[str, Any]:
    """The components of a notebook's fingerprint."""
    return {"notebook": file_hash(notebook_path), "params": p_hash, "source": src_hash,
            "data": data_hash, "deps": dict(sorted((dep_fingerprints or {}).items()))}


def _changed(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    if not old:
        return "inputs changed"
    what = [name for name in ("notebook", "params", "source", "data") if old.get(name) != new.get(name)]
    old_deps, new_deps = old.get("deps") or {}, new.get("deps") or {}
    what += [f"dependency {d}" for d in sorted(set(old_deps) | set(new_deps)) if old_deps.get(d) != new_deps.get(d)]
    return (", ".join(what) + " changed") if what else "inputs changed"


# --------------------------------------------------------------------------- paths / run record


def output_paths(out_dir: str | Path, notebook: Notebook) -> dict[str, Path]:
    """Where one notebook's outputs go under ``outputs/<dataset>``."""
    out_dir = Path(out_dir)
    stem = notebook.stem
    return {"executed": out_dir / "notebooks" / f"{stem}.ipynb",
            "failed": out_dir / "notebooks" / f"{stem}.failed.ipynb",
            "html": out_dir / "reports" / f"{stem}.html",
            "failed_html": out_dir / "reports" / f"{stem}.failed.html"}


def read_run_info(out_dir: str | Path) -> dict[str, Any]:
    """The previous ``run.json`` of ``outputs/<dataset>``, or ``{}`` (also when unreadable)."""
    path = Path(out_dir) / "run.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


# --------------------------------------------------------------------------- planning


def make_plan(selected: list[Notebook], available: list[Notebook], notebooks_dir: str | Path,
              out_dir: str | Path, p_hash: str, data_hash: str | None, previous: dict[str, Any],
              force: bool = False, src_hash: str | None = None) -> list[Step]:
    """Fingerprint every available notebook and decide, for the selected ones, run or skip (and why).

    Fingerprints of dependencies come from all available notebooks, so they do not depend on
    the selection.
    """
    notebooks_dir = Path(notebooks_dir)
    src_hash = src_hash or source_hash()
    prev_entries = previous.get("notebooks", {}) or {}
    fps: dict[str, str] = {}
    steps: list[Step] = []
    selected_names = {nb.name for nb in selected}
    for nb in available:
        path = notebooks_dir / nb.file
        deps = {d: fps[d] for d in nb.deps if d in fps}
        inputs = notebook_inputs(path, p_hash, src_hash, data_hash, deps)
        fp = fingerprint(inputs)
        fps[nb.name] = fp
        if nb.name not in selected_names:
            continue
        prev = prev_entries.get(nb.name) or {}
        paths = output_paths(out_dir, nb)
        if data_hash is None:
            run, reason = True, "data not prepared"
        elif force:
            run, reason = True, "forced"
        elif not prev.get("ok_fingerprint"):
            run, reason = True, "never run successfully"
        elif prev["ok_fingerprint"] != fp:
            run, reason = True, _changed(prev.get("ok_inputs"), inputs)
        elif not (paths["executed"].is_file() and paths["html"].is_file()):
            run, reason = True, "outputs missing"
        else:
            run, reason = False, "up to date"
        steps.append(Step(nb, path, fp, inputs, run, reason))
    return steps


# --------------------------------------------------------------------------- execution


def _one_line(text: Any, limit: int = 300) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _failed_cell_number(executed: Path, fallback_index: int | None) -> int | None:
    """1-based position of the failed cell in the *source* notebook (injected/error cells not counted)."""
    try:
        import nbformat

        node = nbformat.read(str(executed), as_version=4)
        position = 0
        for cell in node.cells:
            tags = cell.get("metadata", {}).get("tags", [])
            if "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
                continue
            position += 1
            if cell.get("metadata", {}).get("papermill", {}).get("status") == "failed":
                return position
    except Exception:
        pass
    return None if fallback_index is None else fallback_index  # index incl. the injected cell ≈ 1-based


def _respect_umask(path: Path) -> None:
    """Give a ``mkstemp`` file (mode 0600) the permissions a normally created file would have."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _write_html(notebook_file: Path, html_path: Path, hide_code: bool) -> None:
    from medclf.reporting import pages as report

    page = report.notebook_html(notebook_file, hide_code)
    io.write_text(html_path, page)


def execute_notebook(step: Step, out_dir: str | Path, parameters: dict[str, Any], cwd: str | Path,
                     hide_code: bool = False) -> dict[str, Any]:
    """Execute one notebook into ``out_dir``; return ``{"status", "wall_s", "steal_s", "error", "cell"}``
    (``steal_s``: CPU seconds the hypervisor took meanwhile, see :mod:`medclf.accel.cpu_steal`).

    The notebook is executed into a temporary file beside the destination. On success the HTML
    is rendered and both are moved into place, and stale ``.failed`` files are removed. On
    failure the executed notebook becomes ``NN_name.failed.ipynb`` (plus ``.failed.html``) and
    the last good executed notebook and HTML are left untouched.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    paths = output_paths(out_dir, step.notebook)
    paths["executed"].parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{step.notebook.stem}.", suffix=".tmp.ipynb",
                                    dir=paths["executed"].parent)
    os.close(fd)
    tmp = Path(tmp_name)
    _respect_umask(tmp)
    start, steal_start = time.monotonic(), cpu_steal.steal_seconds()
    error, cell = None, None
    status_file = paths["executed"].parent / f".{step.notebook.stem}.progress.json"
    try:
        try:
            with progress.watch(status_file, lambda line: _say(f"      {step.notebook.stem} {line}"),
                                interval=PROGRESS_INTERVAL_S):
                papermill.execute_notebook(
                    str(step.path), str(tmp), parameters=parameters, kernel_name=KERNEL_NAME,
                    language="python", cwd=str(cwd), progress_bar=False, log_output=False,
                    request_save_on_cell_execute=False,
                    extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
        except PapermillExecutionError as exc:
            cell = _failed_cell_number(tmp, exc.cell_index)
            error = f"{exc.ename}: {_one_line(exc.evalue)}" if exc.evalue else str(exc.ename)
        except Exception as exc:  # kernel died, missing kernel, unreadable notebook, ...
            error = f"{type(exc).__name__}: {_one_line(exc)}"
        wall, steal = round(time.monotonic() - start, 2), cpu_steal.stolen_since(steal_start)
        if error is None:
            try:
                _write_html(tmp, paths["html"], hide_code)
            except Exception as exc:
                error = f"HTML report failed: {type(exc).__name__}: {_one_line(exc)}"
            else:
                os.replace(tmp, paths["executed"])
                for stale in (paths["failed"], paths["failed_html"]):
                    stale.unlink(missing_ok=True)
                return {"status": "ok", "wall_s": wall, "steal_s": steal, "error": None, "cell": None}
        if tmp.is_file() and tmp.stat().st_size > 0:
            os.replace(tmp, paths["failed"])
            try:
                _write_html(paths["failed"], paths["failed_html"], hide_code=False)
            except Exception:
                paths["failed_html"].unlink(missing_ok=True)
        return {"status": "failed", "wall_s": wall, "steal_s": steal, "error": error, "cell": cell}
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    """The ``run_all.py`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="run_all.py",
        description="Execute the notebooks in order (papermill), skipping those that are up to date, "
                    "and write outputs/<dataset>/{notebooks,reports,run.json}.")
    parser.add_argument("--dataset", help="data set: synthetic (default), chest_xray, malaria, "
                                          "pneumoniamnist, folder")
    parser.add_argument("--data-root", help="folder (or .npz) holding the data; overrides the data set's default")
    parser.add_argument("--profile", help="demo | quick | full (default: demo for synthetic, else quick)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override one parameter (repeatable), e.g. -p seed=1 -p image_size=224")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this notebook (repeatable): eda or 01_eda")
    parser.add_argument("--list", action="store_true", help="print the plan and run nothing")
    parser.add_argument("--force", action="store_true", help="run even notebooks that are up to date")
    parser.add_argument("--download", action="store_true",
                        help="fetch the data set into data_root when missing (same as -p download=true)")
    return parser


def _data_layer():
    import medclf.data as data

    return data


def _user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ParamError, OrchestrationError]
    data = sys.modules.get("medclf.data")  # not imported yet: it cannot have raised
    data_error = getattr(data, "DataError", None)
    if isinstance(data_error, type) and issubclass(data_error, BaseException):
        errors.append(data_error)
    return tuple(errors)


def _say(line: str = "") -> None:
    print(line, flush=True)


def _last_took(previous: dict[str, Any], name: str) -> str:
    """``"; last ok run 27.6 min on AMD EPYC"`` from the previous run.json, to plan by; ``""`` if none.

    The CPU is named because the same work takes two to four times longer on one without bf16."""
    entry = (previous.get("notebooks") or {}).get(name) or {}
    wall, cpu = entry.get("ok_wall_s"), entry.get("ok_cpu")
    if wall is None:
        return ""
    took = f"{wall / 60:.1f} min" if wall >= 60 else f"{wall:.0f} s"
    return f"; last ok run {took}" + (f" on {cpu}" if cpu else "")


def _label(i: int, n: int, nb: Notebook, width: int) -> str:
    return f"[{i}/{n}] {nb.stem} ".ljust(width + len(f"[{i}/{n}] ") + 4, ".")


def main(argv: list[str] | None = None, *, registry: tuple[Notebook, ...] | list[Notebook] | None = None,
         notebooks_dir: str | Path | None = None) -> int:
    """Command-line entry point of ``run_all.py``; returns the exit code.

    0: every selected notebook ok or up to date; 1: a notebook failed; 2: bad parameters or data
    (``error: <message>`` on stderr); 130: interrupted (Ctrl-C); 143: terminated (SIGTERM).
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    registry = tuple(registry if registry is not None else REGISTRY)
    notebooks_dir = Path(notebooks_dir or config.NOTEBOOKS_DIR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # kernels inherit it: no TensorFlow start-up noise
    if os.environ.get("KERAS_HOME"):  # kernels run in the notebooks' folder: a relative path would miss
        os.environ["KERAS_HOME"] = os.path.abspath(os.environ["KERAS_HOME"])
    try:
        with _sigterm_as_interrupt():
            return _run(args, registry, notebooks_dir)
    except _user_errors() as exc:
        print(f"error: {_one_line(exc, 1000)}", file=sys.stderr, flush=True)
        return 2


def _run(args: argparse.Namespace, registry: tuple[Notebook, ...], notebooks_dir: Path) -> int:
    started_wall, started = time.monotonic(), _now()
    overrides = dict(parse_override(text) for text in args.param)
    if args.download:
        overrides["download"] = True
    params = load_params(args.dataset, args.profile, args.data_root, overrides)
    p_hash = params_hash(params)
    out_dir = config.dataset_output_dir(params)
    available = available_notebooks(registry, notebooks_dir)
    selected = select_notebooks(available, args.only, registry)
    if not selected:
        raise OrchestrationError(f"no notebooks to run: none of the registered files exist in {notebooks_dir}")
    data = _data_layer()

    if args.list:
        try:
            data_hash = data.manifest_fingerprint(params)
        except _user_errors() as exc:
            data_hash, data_note = None, _one_line(exc)
        else:
            data_note = None
        previous = read_run_info(out_dir)
        steps = make_plan(selected, available, notebooks_dir, out_dir, p_hash, data_hash, previous,
                          force=args.force)
        _say(f"plan: dataset {params['dataset']}, profile {params['profile']}, params {p_hash}, "
             f"outputs {out_dir}")
        if data_note:
            _say(f"data not available yet ({data_note}); run_all.py prepares it before running")
        width = max(len(s.notebook.stem) for s in steps)
        for i, step in enumerate(steps, 1):
            deps = ", ".join(step.notebook.deps) or "-"
            verdict = f"would run ({step.reason}{_last_took(previous, step.notebook.name)})" if step.run \
                else f"skip ({step.reason})"
            _say(f"{_label(i, len(steps), step.notebook, width)} {verdict}   [deps: {deps}]")
        return 0

    data.prepare(params)
    data_hash = data.manifest_fingerprint(params)
    previous = read_run_info(out_dir)
    steps = make_plan(selected, available, notebooks_dir, out_dir, p_hash, data_hash, previous,
                      force=args.force)

    from medclf.training import train
    from medclf.core import versions

    run_info: dict[str, Any] = {
        "dataset": params["dataset"], "profile": params["profile"], "status": "running",
        "started": started, "ended": None, "command": ["run_all.py", *_argv_of(args)],
        "versions": versions.package_versions(), "git": versions.git_info(config.PROJECT_ROOT),
        "machine": {"cpu": train.cpu_model(), "cpu_bf16": train.cpu_bf16_flags(), "cpus": os.cpu_count(),
                    "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS")},
        "params": params, "params_hash": p_hash, "data_manifest_hash": data_hash,
        "source_hash": steps[0].inputs["source"] if steps else None,
        "selected": [s.notebook.name for s in steps],
        "notebooks": dict(previous.get("notebooks", {}) or {}),
    }
    parameters = {"dataset": params["dataset"], "profile": params["profile"],
                  "data_root": args.data_root, "overrides": overrides}
    order = [nb.name for nb in registry]
    _say(f"medclf: dataset {params['dataset']}, profile {params['profile']}, params {p_hash}, outputs {out_dir}")

    failed: set[str] = set()  # failed, or skipped because a dependency failed
    width = max(len(s.notebook.stem) for s in steps)
    try:
        for i, step in enumerate(steps, 1):
            nb = step.notebook
            prev = run_info["notebooks"].get(nb.name) or {}
            entry = {key: prev[key] for key in ("ok_fingerprint", "ok_inputs", "ok_wall_s", "ok_finished", "ok_cpu")
                     if key in prev}
            entry.update({"file": nb.file, "deps": list(nb.deps), "fingerprint": step.fingerprint,
                          "inputs": step.inputs, "params_hash": prev.get("params_hash"),
                          "wall_s": None, "error": None, "cell": None, "reason": step.reason})
            bad_deps = [d for d in nb.deps if d in failed]
            paths = output_paths(out_dir, nb)
            if bad_deps and step.run:
                failed.add(nb.name)
                entry.update(status="skipped", reason=f"depends on failed {', '.join(bad_deps)}")
                text = f"skipped (depends on failed {', '.join(bad_deps)})"
            elif not step.run:
                entry.update(status="up to date", params_hash=p_hash)
                for stale in (paths["failed"], paths["failed_html"]):
                    stale.unlink(missing_ok=True)
                text = "skipped (up to date)"
            else:
                result = execute_notebook(step, out_dir, parameters, notebooks_dir,
                                          hide_code=bool(params.get("report_hide_code")))
                entry.update(status=result["status"], wall_s=result["wall_s"], steal_s=result["steal_s"],
                             error=result["error"], cell=result["cell"], finished=_now())
                if result["status"] == "ok":
                    entry.update(ok_fingerprint=step.fingerprint, ok_inputs=step.inputs,
                                 ok_wall_s=result["wall_s"], ok_finished=entry["finished"], params_hash=p_hash,
                                 ok_cpu=run_info["machine"]["cpu"])
                    stolen = f" (CPU steal {result['steal_s']:.0f} s)" if (result["steal_s"] or 0) >= 0.5 else ""
                    text = f"ok  {result['wall_s']:.1f} s{stolen}"
                else:
                    failed.add(nb.name)
                    where = f"at cell {result['cell']}: " if result["cell"] else ""
                    text = f"FAILED  {where}{result['error']}"
            entry["executed"] = os.path.relpath(paths["executed"], out_dir)
            entry["html"] = os.path.relpath(paths["html"], out_dir)
            run_info["notebooks"][nb.name] = entry
            _say(f"{_label(i, len(steps), nb, width)} {text}")
            io.write_json(out_dir / "run.json", run_info)
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        run_info.update(status="interrupted", interrupted_by="SIGTERM" if terminated else "SIGINT", ended=_now())
        io.write_json(out_dir / "run.json", run_info)
        _write_index(out_dir, run_info, order)
        print(f"{'terminated (SIGTERM)' if terminated else 'interrupted'}: finished notebooks are recorded in "
              "run.json; nothing half-written was kept", file=sys.stderr, flush=True)
        return 143 if terminated else 130

    run_info.update(status="failed" if failed else "ok", ended=_now())
    io.write_json(out_dir / "run.json", run_info)
    index = _write_index(out_dir, run_info, order)
    counts: dict[str, int] = {}
    for step in steps:
        status = run_info["notebooks"][step.notebook.name]["status"]
        counts[status] = counts.get(status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    _say(f"done in {time.monotonic() - started_wall:.1f} s: {summary}")
    for step in steps:
        entry = run_info["notebooks"][step.notebook.name]
        if entry["status"] == "failed":
            _say(f"  {step.notebook.stem} failed; executed notebook kept at "
                 f"{output_paths(out_dir, step.notebook)['failed']}")
    if index:
        _say(f"report: {index}")
    return 1 if failed else 0


def _argv_of(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    for flag, value in (("--dataset", args.dataset), ("--data-root", args.data_root), ("--profile", args.profile)):
        if value is not None:
            out += [flag, str(value)]
    for text in args.param:
        out += ["-p", text]
    for name in args.only:
        out += ["--only", name]
    out += [flag for flag, on in (("--force", args.force), ("--download", args.download)) if on]
    return out


def _write_index(out_dir: Path, run_info: dict[str, Any], order: list[str]) -> Path | None:
    from medclf.reporting import pages as report

    try:
        return report.write_index(out_dir, run_info, order)
    except Exception as exc:  # the run's record matters more than its summary page
        print(f"warning: could not write reports/index.html: {type(exc).__name__}: {_one_line(exc)}",
              file=sys.stderr, flush=True)
        return None
