"""Errors raised by the data layer; every message names the file, instrument, field and date."""

from __future__ import annotations


class DataError(ValueError):
    """Malformed, missing or inconsistent market data."""
