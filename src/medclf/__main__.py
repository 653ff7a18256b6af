"""Command line: ``python -m medclf <command>``.

Commands:
    params [--markdown]   print the parameter reference (Markdown table for docs/parameters.md)
    data DATASET [--data-root PATH] [-p key=value ...]
                          load (decode + cache) a data set and print its counts and data report
    predict --model PATH IMAGE_OR_FOLDER... [--out CSV] [--threshold T] [--gradcam DIR]
            [--max-image-pixels N] [--allow-pickle]
                          score images with a saved model and the preprocessing and threshold
                          of its model card (models/<id>.json beside it); writes a CSV
                          (docs/predict.md: model file safety, checks, skipped files, exit codes)
    results [OUTPUT_ROOT] [--update docs/results.md] [--include-synthetic]
                          the latest numbers of finished runs as Markdown (date, commit, CPU, headline)
"""

from __future__ import annotations

import argparse
import sys

from medclf.cli import predict, results
from medclf.config.params import ParamError, load_params, markdown_table, parse_override


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
    parser = argparse.ArgumentParser(prog="python -m medclf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    params_cmd = commands.add_parser("params", help="print the parameter reference")
    params_cmd.add_argument("--markdown", action="store_true", help="as the Markdown table of docs/parameters.md")
    data_cmd = commands.add_parser("data", help="load a data set and print its counts and data report")
    data_cmd.add_argument("dataset")
    data_cmd.add_argument("--data-root")
    data_cmd.add_argument("--profile")
    data_cmd.add_argument("-p", action="append", default=[], metavar="KEY=VALUE")
    predict.add_arguments(commands.add_parser("predict", help="score images with a saved model"))
    results.add_arguments(commands.add_parser("results", help="the latest numbers of finished runs as Markdown"))
    args = parser.parse_args(argv)
    if args.command == "params":
        print(markdown_table())
        return 0
    if args.command == "predict":
        return predict.run(args)
    if args.command == "results":
        return results.run(args)
    return _data_summary(args)


if __name__ == "__main__":
    sys.exit(main())
