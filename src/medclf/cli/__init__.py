"""Command-line entry points: run_all and predict."""
