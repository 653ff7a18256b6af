"""``run_all.py``: run the notebooks in order with papermill, skip what is up to date, survive failures.

For one data set and profile (``<output_dir>/<dataset>/<profile>/``, :func:`medclf.config.paths.run_dir`)
it writes

* ``notebooks/NN_name.ipynb``: the executed notebooks (``NN_name.failed.ipynb`` for a failed one,
  which never replaces the last good one),
* ``reports/NN_name.html`` (and ``NN_name.failed.html``) and ``reports/index.html``,
* ``run.json``: versions, git commit, settings and, per notebook, status, time and fingerprint.

A notebook's outputs are staged and published only when it succeeds (:mod:`medclf.pipeline.staging`);
one run at a time holds the output folder (:mod:`medclf.pipeline.runlock`); a stalled kernel is stopped
(:mod:`medclf.pipeline.watchdog`). See docs/runs.md.

The settings are merged and checked once here (:func:`medclf.pipeline.plan.resolve_settings`),
before any notebook starts, and every notebook receives exactly those (its ``settings`` parameter).
Before the model registry (Keras) is even imported, the output and cache folders must be writable,
a ``weights`` file must exist and the data must pass :func:`medclf.data.check` (usable root, two
classes, a possible split, arrays that fit in memory): a failure is one line and exit code 2,
``--list`` included.
Planning lives in :mod:`medclf.pipeline.plan`, execution in :mod:`medclf.pipeline.execute`, the run
record in :mod:`medclf.pipeline.provenance`. TensorFlow is imported in this process only by the settings
check (the model registry's names); no model is built here, and the process skips the final garbage
collection at exit (:func:`exit_process`).
"""

from __future__ import annotations

import argparse
import gc
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import medclf.data as data
from medclf.config import datasets, paths
from medclf.core import quiet
from medclf.config.params import ParamError, load_params, params_hash, parse_override
from medclf.data import DataError
from medclf.pipeline import execute, plan, provenance, runlock, staging
from medclf.pipeline.execute import say
from medclf.pipeline.plan import Notebook, OrchestrationError

#: Errors that are the user's to fix: ``error: <one line>`` and exit code 2, no traceback.
USER_ERRORS = (ParamError, OrchestrationError, DataError, provenance.RunRecordError)


def build_parser() -> argparse.ArgumentParser:
    """The ``run_all.py`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="run_all.py",
        description="Execute the notebooks in order (papermill), skipping those that are up to date, "
                    "and write outputs/<dataset>/<profile>/{notebooks,reports,run.json}.")
    parser.add_argument("--dataset", help=f"data set: {', '.join(datasets.names())} (default: synthetic)")
    parser.add_argument("--data-root", help="folder (or .npz) holding the data; overrides the data set's default")
    parser.add_argument("--profile", help="demo | quick | full (default: demo for synthetic, else quick)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override one parameter (repeatable), e.g. -p seed=1 -p image_size=224")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this notebook (repeatable): eda or 01_eda")
    parser.add_argument("--list", action="store_true",
                        help="print the plan and run nothing: for every notebook, whether it would run or is "
                             "up to date and why, and its last successful wall time")
    parser.add_argument("--force", action="store_true", help="run even notebooks that are up to date, and retrain models the model cache holds")
    parser.add_argument("--download", action="store_true",
                        help="fetch the data set into data_root when missing (same as -p download=true)")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up log lines in the terminal and the notebooks "
                             "(hidden by default: medclf.core.quiet)")
    return parser


def _writable(key: str, folder: Path) -> None:
    """``folder`` (the value of parameter ``key``) can be created and written: its nearest existing
    ancestor is a folder this process may write into. Raises ParamError (one line) otherwise."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    needed = "" if probe == folder else f", so {folder} cannot be created there"
    if not probe.is_dir():
        raise ParamError(f"parameter '{key}': {probe} is a file, not a folder{needed}: give a folder with "
                         f"-p {key}=PATH")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ParamError(f"parameter '{key}': folder {probe} is not writable{needed}: fix its permissions "
                         f"or give a writable folder with -p {key}=PATH")


def check_writable_folders(params: dict[str, Any]) -> None:
    """Before any notebook starts: the run folder (and every folder already in it) and the data set's
    cache folder can be written. Raises ParamError naming the parameter, the folder and the fix."""
    run_folder = paths.run_dir(params)
    _writable("output_dir", run_folder)
    if run_folder.is_dir():
        for dirpath, dirnames, _ in os.walk(run_folder):
            for name in dirnames:
                _writable("output_dir", Path(dirpath, name))
    _writable("cache_dir", paths.cache_root(params) / params["dataset"])


def check_weights(params: dict[str, Any]) -> None:
    """A ``weights`` file given for the transfer models exists. The kernels run in the notebooks' folder,
    so a relative path is refused rather than read from there."""
    weights = params["weights"]
    if not params["transfer_models"] or weights in ("imagenet", "none", "None", ""):
        return
    path = Path(weights).expanduser()
    if not path.is_absolute():
        raise ParamError(f"parameter 'weights' = {weights!r} is a relative path: give imagenet, none, or the "
                         "absolute path of a weights file")
    if not path.is_file():
        raise ParamError(f"parameter 'weights' = {weights!r}: no such file: give imagenet, none, or the path "
                         "of a Keras weights file for the backbone (include_top=False)")


def journal_check(registry: tuple[Notebook, ...] | list[Notebook]) -> staging.EntryCheck:
    """The check of a publish journal's notebook name and run.json entry (:data:`staging.EntryCheck`): the
    registered notebook of that file, an entry shaped as the runner writes one, of a notebook that succeeded."""
    by_stem = {nb.stem: nb for nb in registry}

    def problem(stem: str, name: str, entry: Any) -> str | None:
        nb = by_stem.get(stem)
        if nb is None or nb.name != name:
            return f"{name!r:.40} is not the registered notebook of {stem}.ipynb"
        shape = provenance.entry_problem(entry)
        if shape:
            return f"its entry: {shape}"
        if entry.get("status") != "ok" or entry.get("file") != nb.file:
            return (f"its entry says status {entry.get('status')!r:.20}, file {entry.get('file')!r:.40}: a publish "
                    f"is journaled only for {nb.file} after it succeeded")
        return None

    return problem


def _label(i: int, n: int, nb: Notebook, width: int) -> str:
    return f"[{i}/{n}] {nb.stem} ".ljust(width + len(f"[{i}/{n}] ") + 4, ".")


def main(argv: list[str] | None = None, *, registry: tuple[Notebook, ...] | list[Notebook] | None = None,
         notebooks_dir: str | Path | None = None) -> int:
    """Command-line entry point of ``run_all.py``; returns the exit code.

    0: every selected notebook ok or up to date; 1: a notebook failed (or stalled, or timed out); 2: bad
    parameters or data, or another run holds the output folder (``error: <message>`` on stderr);
    130: interrupted (Ctrl-C); 143: terminated (SIGTERM); 129: terminated (SIGHUP, a closed terminal).
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    registry = tuple(registry if registry is not None else plan.REGISTRY)
    notebooks_dir = Path(notebooks_dir or paths.NOTEBOOKS_DIR)
    if args.verbose:  # the kernels inherit the environment: medclf.core.quiet is off there too
        quiet.make_verbose()
    if problem := quiet.keras_backend_problem():  # else the first notebook fails, blaming a model
        print(f"error: {problem}", file=sys.stderr, flush=True)
        return 2
    if os.environ.get("KERAS_HOME"):  # kernels run in the notebooks' folder: a relative path would miss
        os.environ["KERAS_HOME"] = os.path.abspath(os.environ["KERAS_HOME"])
    try:
        with execute.signals_as_interrupt():
            return _run(args, registry, notebooks_dir)
    except USER_ERRORS as exc:
        print(f"error: {execute.one_line(exc, 1000)}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt as exc:  # before the notebooks' loop, which records its own
        return _stopped(exc, "stopped before the run was recorded in run.json")


def _stopped(exc: KeyboardInterrupt, what: str) -> int:
    """Say how the run was stopped (one line on stderr) and return the exit code, 128 + the signal's number.
    A closed terminal (SIGHUP) cannot take the line; the exit code still tells."""
    name = execute.stop_signal(exc)
    with contextlib.suppress(OSError):
        print(f"{execute.STOP_SIGNALS[name]}: {what}", file=sys.stderr, flush=True)
    return 128 + signal.Signals[name].value


def exit_process(code: int) -> NoReturn:
    """End the process with ``code`` once :func:`main` returned, without the interpreter's final garbage
    collection: every object alive is frozen (``gc.freeze``), the exit hooks run as usual.

    Why: the runner has TensorFlow, Keras, papermill and scikit-learn imported (the settings check reads
    the model registry), about 4,800 modules and 600,000 objects, and collecting them at exit cost 1.2 s
    of CPU after everything was written and the kernel was gone (0.1 s frozen, measured). On a loaded
    2-CPU machine that grew to 4-17 s between Ctrl-C and the runner's exit: what pushed the signal tests
    past their 60 s, and time a scheduler's grace period between SIGTERM and SIGKILL does not have.
    """
    gc.freeze()
    sys.exit(code)


def _run(args: argparse.Namespace, registry: tuple[Notebook, ...], notebooks_dir: Path) -> int:
    started_wall, started = time.monotonic(), provenance.now()
    overrides = dict(parse_override(text) for text in args.param)
    if args.download:
        overrides["download"] = True
    # Checked before the model registry (Keras, seconds) is imported: a bad path answers at once.
    checked = load_params(args.dataset, args.profile, args.data_root, overrides)
    if args.force and checked["model_cache"] is True:  # rerun everything, the models too (not in the params hash)
        overrides["model_cache"] = "refresh"
    check_writable_folders(checked)
    check_weights(checked)
    provenance.read_run_info(paths.published_run_dir(checked))  # a damaged run.json: refused before any work
    summary = data.check(checked)
    settings = plan.resolve_settings(args.dataset, args.profile, args.data_root, overrides)
    params = settings.as_params()
    p_hash = params_hash(params)
    out_dir = paths.published_run_dir(params)
    available = plan.available_notebooks(registry, notebooks_dir)
    selected = plan.select_notebooks(available, args.only, registry)
    if not selected:
        raise OrchestrationError(f"no notebooks to run: none of the registered files exist in {notebooks_dir}")

    for nb in selected:
        plan.check_parameters_cell(notebooks_dir / nb.file)
    if args.list:
        return _list(args, params, p_hash, out_dir, selected, available, notebooks_dir, summary)
    with runlock.hold(out_dir, {"started": started, "command": ["run_all.py", *_argv_of(args)]}, say):
        for line in staging.recover(out_dir, lambda name, entry: provenance.record_notebook(out_dir, name, entry),
                                    journal_check(registry)):
            say(f"note: {line}")
        staging.check_tree(out_dir)
        return _run_locked(args, registry, notebooks_dir, settings, params, p_hash, out_dir, selected,
                           available, started, started_wall, summary)


def _run_locked(args: argparse.Namespace, registry: tuple[Notebook, ...], notebooks_dir: Path, settings: Any,
                params: dict[str, Any], p_hash: str, out_dir: Path, selected: list[Notebook],
                available: list[Notebook], started: str, started_wall: float, summary: Any) -> int:
    """The run itself, holding the output folder's lock (:mod:`medclf.pipeline.runlock`)."""
    data.prepare(params)
    if summary is None:  # made by prepare (generated or downloaded): check what it made
        summary = data.check(params)
    if summary is not None:
        for line in summary.lines():
            say(line)
        if summary.cache_problem and summary.cache_file.is_file():
            summary.cache_file.unlink()
    data_hash = data.manifest_fingerprint(params)
    previous = provenance.read_run_info(out_dir)
    steps = plan.make_plan(selected, available, notebooks_dir, out_dir, p_hash, data_hash, previous,
                           force=args.force)
    run_info = provenance.new_run_info(params, p_hash, data_hash, ["run_all.py", *_argv_of(args)], started,
                                       [s.notebook.name for s in steps],
                                       steps[0].inputs["source"] if steps else None, previous)
    order = [nb.name for nb in registry]
    layout = paths.RunPaths(out_dir)
    say(f"medclf: dataset {params['dataset']}, profile {params['profile']}, params {p_hash}, outputs {out_dir}")

    failed: set[str] = set()  # failed, or skipped because a dependency failed
    width = max(len(s.notebook.stem) for s in steps)
    current: Notebook | None = None  # the notebook executing: its staging is discarded on an interruption

    def record(name: str, new: dict) -> None:  # the publish journal's way of writing run.json
        provenance.write_run_info(out_dir, run_info)

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
            outputs = layout.notebook_outputs(nb.stem)
            if bad_deps and step.run:
                failed.add(nb.name)
                entry.update(status="skipped", reason=f"depends on failed {', '.join(bad_deps)}")
                text = f"skipped (depends on failed {', '.join(bad_deps)})"
            elif not step.run:
                entry.update(status="up to date", params_hash=p_hash)
                for stale in (outputs["failed"], outputs["failed_html"]):
                    stale.unlink(missing_ok=True)
                text = "skipped (up to date)"
            entry["executed"] = os.path.relpath(outputs["executed"], out_dir)
            entry["html"] = os.path.relpath(outputs["html"], out_dir)
            if step.run and not bad_deps:  # outputs are staged and published only on success
                run_info["notebooks"][nb.name] = {**entry, "status": "running", "started": provenance.now()}
                provenance.write_run_info(out_dir, run_info)
                current = nb
                stage = staging.open_stage(out_dir, nb.stem)
                result = execute.execute_notebook(step, out_dir, params, notebooks_dir,
                                                  hide_code=settings.report.report_hide_code, stage=stage)
                entry.update(status=result["status"], wall_s=result["wall_s"], steal_s=result["steal_s"],
                             error=result["error"], cell=result["cell"], finished=provenance.now())
                if result["status"] == "ok":
                    entry.update(ok_fingerprint=step.fingerprint, ok_inputs=step.inputs,
                                 ok_wall_s=result["wall_s"], ok_finished=entry["finished"], params_hash=p_hash,
                                 ok_cpu=run_info["machine"]["cpu"])
                    stolen = f" (CPU steal {result['steal_s']:.0f} s)" if (result["steal_s"] or 0) >= 0.5 else ""
                    text = f"ok  {result['wall_s']:.1f} s{stolen}"
                else:
                    failed.add(nb.name)
                    entry["kept"] = result.get("kept")
                    where = f"at cell {result['cell']}: " if result["cell"] else ""
                    text = f"FAILED  {where}{result['error']}"
            run_info["notebooks"][nb.name] = entry
            if current is not None and entry["status"] == "ok":
                staging.publish(out_dir, stage, nb.name, entry, record)
            else:
                if current is not None:
                    staging.discard(out_dir, current.stem)
                provenance.write_run_info(out_dir, run_info)
            current = None
            say(f"{_label(i, len(steps), nb, width)} {text}")
    except KeyboardInterrupt as exc:
        if current is not None:  # a publish under way is finished (its journal says what), else discarded
            if not staging.settle(out_dir, current.stem, record, journal_check(registry)):
                run_info["notebooks"][current.name]["status"] = "running"  # marked interrupted below
        for entry in run_info["notebooks"].values():
            if entry.get("status") == "running":
                entry["status"] = "interrupted"
        run_info.update(status="interrupted", interrupted_by=execute.stop_signal(exc),
                        ended=provenance.now())
        provenance.write_run_info(out_dir, run_info)
        provenance.write_index(out_dir, run_info, order)
        return _stopped(exc, "finished notebooks are recorded in run.json; the unfinished one's outputs were "
                             "discarded and it reruns next time")

    run_info.update(status="failed" if failed else "ok", ended=provenance.now())
    provenance.write_run_info(out_dir, run_info)
    index = provenance.write_index(out_dir, run_info, order)
    counts: dict[str, int] = {}
    for step in steps:
        status = run_info["notebooks"][step.notebook.name]["status"]
        counts[status] = counts.get(status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    say(f"done in {time.monotonic() - started_wall:.1f} s: {summary}")
    for step in steps:
        entry = run_info["notebooks"][step.notebook.name]
        if entry["status"] == "failed":
            say(f"  {step.notebook.stem} failed; " + (f"executed notebook kept at {entry['kept']}" if entry.get("kept")
                                                     else "the kernel stopped before any cell ran: no executed copy"))
    if index:
        say(f"report: {index}")
    return 1 if failed else 0


def _list(args: argparse.Namespace, params: dict[str, Any], p_hash: str, out_dir: Path,
          selected: list[Notebook], available: list[Notebook], notebooks_dir: Path,
          summary: data.DataSummary | None) -> int:
    """``--list``: print the plan and run nothing: every planned notebook, whether it would run or is up to
    date and why, and its last successful wall time (a damaged cache file is reported, not deleted)."""
    try:
        data_hash, data_note = data.manifest_fingerprint(params), None
    except USER_ERRORS as exc:
        data_hash, data_note = None, execute.one_line(exc)
    previous = provenance.read_run_info(out_dir)
    steps = plan.make_plan(selected, available, notebooks_dir, out_dir, p_hash, data_hash, previous,
                           force=args.force)
    say(f"plan: dataset {params['dataset']}, profile {params['profile']}, params {p_hash}, outputs {out_dir}")
    if data_note:
        say(f"data not available yet ({data_note}); run_all.py prepares it before running")
    if summary is None and not data_note:
        say("data: made before the notebooks run (generated or downloaded), then checked")
    for line in summary.lines() if summary else []:
        say(line.replace("it is deleted and the images are decoded again", "a run deletes it and decodes again"))
    width = max(len(s.notebook.stem) for s in steps)
    for i, step in enumerate(steps, 1):
        deps = ", ".join(step.notebook.deps) or "-"
        # every notebook, skipped ones too, shows its last wall time: what --force or an edit would cost
        took = provenance.last_took(previous, step.notebook.name)
        verdict = f"{'would run' if step.run else 'skip'} ({step.reason}{took})"
        say(f"{_label(i, len(steps), step.notebook, width)} {verdict}   [deps: {deps}]")
    return 0


def _argv_of(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    for flag, value in (("--dataset", args.dataset), ("--data-root", args.data_root), ("--profile", args.profile)):
        if value is not None:
            out += [flag, str(value)]
    for text in args.param:
        out += ["-p", text]
    for name in args.only:
        out += ["--only", name]
    out += [flag for flag, on in (("--force", args.force), ("--download", args.download),
                                  ("--verbose", args.verbose)) if on]
    return out
