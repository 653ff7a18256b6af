"""The command lines explain themselves: every ``--help`` is plain text naming every option its parser
knows, ``params`` prints plain text unless asked for Markdown, and ``run_all.py --list`` shows every
planned notebook's verdict and last wall time."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

import pytest

from medclf.__main__ import build_parser, main
from medclf.cli import run_all
from medclf.config.params import markdown_table
from medclf.config.paths import PROJECT_ROOT
from test_orchestrate import fake_papermill, make_notebook, ws  # noqa: F401  (fixtures)

#: reST that docstrings use and a terminal prints verbatim.
REST_MARKUP = re.compile(r"``|:(func|mod|class|meth|data|attr|obj):`")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next((action.choices for action in parser._actions if isinstance(action, argparse._SubParsersAction)), {})


def _options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string (``--out``, ``-p``) and positional name a parser knows, its commands' included."""
    known = {text for action in parser._actions for text in action.option_strings}
    known |= {action.metavar or action.dest for action in parser._actions
              if not action.option_strings and not isinstance(action, argparse._SubParsersAction)}
    for name, sub in _subcommands(parser).items():
        known |= {name} | _options(sub)
    return known


def help_problems(text: str, parser: argparse.ArgumentParser) -> list[str]:
    """What is wrong with one ``--help`` text: reST markup, options the parser knows but the text omits, and
    arguments the parser declares without a help text (shown bare, they explain nothing)."""
    problems = [f"reST markup {m.group()!r}" for m in REST_MARKUP.finditer(text)]
    problems += [f"omits {option}" for option in sorted(_options(parser))
                 if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text)]
    problems += [f"no help text for {action.option_strings or action.dest}" for action in parser._actions
                 if action.help is None and not isinstance(action, argparse._SubParsersAction)]
    return problems


MEDCLF = build_parser()
CASES = {"python -m medclf": (["-m", "medclf"], MEDCLF),
         **{f"python -m medclf {name}": (["-m", "medclf", name], sub) for name, sub in _subcommands(MEDCLF).items()},
         "python run_all.py": (["run_all.py"], run_all.build_parser())}


@pytest.fixture(scope="module")
def helps() -> dict[str, subprocess.Popen]:
    """Every command's ``--help``, each in a fresh process as a user's terminal runs it (started together)."""
    env = {**os.environ, "COLUMNS": "80"}
    return {command: subprocess.Popen([sys.executable, *argv, "--help"], cwd=PROJECT_ROOT, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for command, (argv, _) in CASES.items()}


@pytest.mark.parametrize("command", list(CASES))
def test_every_help_is_plain_text_and_names_every_option(command, helps):
    out, err = helps[command].communicate(timeout=120)
    assert helps[command].returncode == 0 and not err, err
    assert help_problems(out, CASES[command][1]) == []


def test_the_help_checker_catches_markup_and_a_missing_option():
    parser = argparse.ArgumentParser(prog="x", add_help=False)
    parser.add_argument("--workers", help="threads")
    parser.add_argument("--work")
    assert help_problems("usage: x [--work W]  see :func:`f` and ``g", parser) == [
        "reST markup ':func:`'", "reST markup '``'", "omits --workers", "no help text for ['--work']"]
    parser._actions[-1].help = "what to do"
    assert help_problems("usage: x [--work W] [--workers N]", parser) == []


def test_the_top_level_help_lists_every_commands_options():
    """The list of commands is built from the commands' parsers (it once omitted ``predict --workers``)."""
    text = MEDCLF.format_help()
    for name, sub in _subcommands(MEDCLF).items():
        assert f"python -m medclf {name}" in text
        assert help_problems(text, sub) == [], name


def test_params_prints_plain_text_unless_markdown_is_asked_for(capsys):
    assert main(["params"]) == 0
    plain = capsys.readouterr().out
    assert "`" not in plain and "|---" not in plain
    assert re.search(r"^seed  \(an integer.*; default 42\)$", plain, re.M), plain[:500]
    assert main(["params", "--markdown"]) == 0
    assert capsys.readouterr().out.strip() == markdown_table()


def test_list_shows_every_notebooks_verdict_and_last_wall_time(ws, fake_papermill):
    make_notebook(ws.nb_dir / "01_b.ipynb")
    make_notebook(ws.nb_dir / "02_c.ipynb")
    make_notebook(ws.nb_dir / "03_a.ipynb")
    code, out, _ = ws.run("--list")
    assert code == 0 and out.count("would run (never run successfully)   [deps:") == 3, out  # no time yet
    assert ws.run()[0] == 0
    walls = {name: entry["ok_wall_s"] for name, entry in ws.run_json()["notebooks"].items()}
    cpu = ws.run_json()["machine"]["cpu"]
    make_notebook(ws.nb_dir / "03_a.ipynb", "changed = True")
    code, out, _ = ws.run("--list")
    assert code == 0 and len(fake_papermill) == 3
    for stem, name in (("01_b", "b"), ("02_c", "c")):
        assert f"{stem} ... skip (up to date; last ok run {walls[name]:.0f} s on {cpu})" in out, out
    assert f"03_a ... would run (notebook changed; last ok run {walls['a']:.0f} s on {cpu})" in out, out
