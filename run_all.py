#!/usr/bin/env python
"""Run every notebook in order and write the reports: ``python run_all.py --help`` (see :mod:`medclf.cli.run_all`)."""
import sys

from medclf.cli.run_all import exit_process, main

if __name__ == "__main__":
    exit_process(main(sys.argv[1:]))
