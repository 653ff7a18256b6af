"""Scores and what they mean: metrics, statistics, scoring, records and the selection rule."""
