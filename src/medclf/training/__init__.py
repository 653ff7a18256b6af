"""Fitting models: seeds, callbacks, the feature cache, staged transfer fits, one-model runs."""
