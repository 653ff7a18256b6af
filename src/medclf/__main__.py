"""Command line: ``python -m medclf COMMAND`` (``python run_all.py`` runs the notebooks).

The help texts are plain text: ``--help`` prints them as they are, so they carry no reST markup, and
the top-level help lists every command's usage line as the parser builds it (so it never omits an option).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap

from medclf.cli import predict, results
from medclf.config import datasets
from medclf.config.params import ParamError, load_params, markdown_table, parse_override, path_too_long
from medclf.core import quiet

DESCRIPTION = ("medclf's commands besides the runner: the parameter reference, a data set's counts, scoring new "
               "images with a saved model, and the numbers of finished runs. The notebooks run with "
               "'python run_all.py' (see 'python run_all.py --help').")

#: Width of the help text argparse does not wrap itself (the description and the list of commands).
WIDTH = 79
#: ``(name, one-line help, description)`` of each command, in the order the help lists them.
COMMANDS = (
    ("params", "print the parameter reference",
     "Print every parameter with its type, default and meaning (plain text; --markdown: the table of "
     "docs/parameters.md)."),
    ("data", "load a data set and print its counts",
     "Load a data set as the notebooks do (decode, cache, split) and print its images per split and class, "
     "its groups and the files it skipped. Runs no notebook."),
    ("predict", "score images with a saved model",
     "Score images with a saved model, using the preprocessing, classes and threshold of its model card "
     "(models/<id>.json beside the model file), and write a CSV. Model file safety, checks, skipped files and "
     "exit codes: docs/predict.md."),
    ("results", "the latest numbers of finished runs as Markdown",
     "Print the latest numbers of finished runs as Markdown (date, commit, CPU, per-notebook wall times, the "
     "validation-best model of each family); --update replaces the generated block of docs/results.md."),
)


def _usage_lines(commands: dict[str, argparse.ArgumentParser]) -> str:
    """Each command's usage as argparse writes it, indented: every option of every command, never out of date."""
    blocks = []
    for sub in commands.values():
        usage = " ".join(sub.format_usage().removeprefix("usage:").split())
        # an option and its value ("[--out OUT]") stay on one line: their spaces are held until wrapped
        usage = re.sub(r"\[[^\[\]]*\]", lambda m: m.group().replace(" ", "\0"), usage)
        wrapped = textwrap.fill(usage, width=WIDTH, initial_indent="  ", subsequent_indent="      ",
                                break_on_hyphens=False, break_long_words=False)
        blocks.append(wrapped.replace("\0", " "))
    return "\n".join(blocks)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m medclf`` parser, its commands and their options."""
    parser = argparse.ArgumentParser(prog="python -m medclf", description=textwrap.fill(DESCRIPTION, WIDTH),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subs = {name: commands.add_parser(name, help=help_text, description=description)
            for name, help_text, description in COMMANDS}
    subs["params"].add_argument("--markdown", action="store_true",
                                help="print the Markdown table of docs/parameters.md instead of plain text")
    subs["data"].add_argument("dataset", help=f"data set: {', '.join(datasets.names())}")
    subs["data"].add_argument("--data-root", help="folder (or .npz) holding the data; overrides the data set's default")
    subs["data"].add_argument("--profile", help="demo | quick | full (default: demo for synthetic, else quick)")
    subs["data"].add_argument("-p", action="append", default=[], metavar="KEY=VALUE",
                              help="override one parameter (repeatable), e.g. -p image_size=224")
    predict.add_arguments(subs["predict"])
    results.add_arguments(subs["results"])
    parser.epilog = (f"commands and their options:\n{_usage_lines(subs)}\n\n"
                     "'python -m medclf COMMAND --help' explains a command's options.")
    return parser


def plain_reference() -> str:
    """:func:`medclf.config.params.markdown_table` as plain text: one block per parameter, no Markdown."""
    blocks = []
    for line in markdown_table().splitlines()[2:]:  # past the header and its |---| rule
        cells = [cell.strip().replace("\\|", "|").replace("`", "") for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        key, kind, default, meaning = cells
        blocks.append(f"{key}  ({kind}; default {default})\n"
                      + textwrap.fill(meaning, width=WIDTH, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(blocks)


def _data_summary(args: argparse.Namespace) -> int:
    from medclf.data import DataError, load_dataset

    try:
        params = load_params(args.dataset, args.profile, args.data_root, dict(map(parse_override, args.p)))
        ds = load_dataset(params)
    except (ParamError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(ds.frame.groupby(["split", "class_name"]).size().unstack(fill_value=0).to_string())
    print(f"{len(ds.frame)} images, {ds.frame['group'].nunique()} groups, {len(ds.skipped)} skipped files")
    if len(ds.skipped):
        print(ds.skipped.to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "params":
        print(markdown_table() if args.markdown else plain_reference())
        return 0
    if args.command in ("predict", "data") and (problem := quiet.keras_backend_problem()):
        print(f"error: {problem}", file=sys.stderr)  # before Keras loads and blames the model
        return 2
    if args.command == "predict":
        for flag, value in (("--model", args.model), ("--out", args.out), ("--gradcam", args.gradcam),
                            *(("IMAGE_OR_FOLDER", item) for item in args.inputs)):
            if value and (why := path_too_long(os.path.abspath(value))):  # else OSError deep in the checks
                print(f"error: {flag} {why}: give a shorter path", file=sys.stderr)
                return 2
        return predict.run(args)
    if args.command == "results":
        return results.run(args)
    return _data_summary(args)


if __name__ == "__main__":
    sys.exit(main())
