#!/usr/bin/env python
"""Run every notebook in order and write the reports: ``python run_all.py --help``.

Thin wrapper: the logic lives in :mod:`medclf.pipeline.orchestrate`.
"""

import sys

from medclf.pipeline.orchestrate import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
