"""Lowest layer: atomic file writes, progress reporting and version/provenance capture."""
