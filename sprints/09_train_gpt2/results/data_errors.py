"""The one error type of sprint 9's data modules, in a module of its own so that the data
preparation tools (and their worker processes) can raise it without importing torch."""

from __future__ import annotations


class DataError(ValueError):
    """Input data that cannot be used, with a message saying what to do instead."""
