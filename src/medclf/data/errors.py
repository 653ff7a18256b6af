"""Errors of the data layer."""


class DataError(ValueError):
    """The data cannot be used as given; the message names the path and what to do (one line)."""
