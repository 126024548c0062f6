"""argparse types shared by every command: counts, seeds, durations (a bad value is a
two-line usage error, not a traceback)."""

from __future__ import annotations

import argparse
import json


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number >= {minimum}, got {text!r}"
        ) from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type of every count flag: an int >= 1 (0 or less is a usage error)."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type of seeds: an int >= 0."""
    return _whole_number(text, 0)


def positive_float(text: str) -> float:
    """argparse type of durations and rates: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type of weights: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def config_field(text: str) -> tuple[str, object]:
    """argparse type of ``KEY=VALUE`` config overrides: the value read as JSON (``0.005``,
    ``true``, ``[1, 2]``), else kept as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. mesh_cell=0.005), got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value
