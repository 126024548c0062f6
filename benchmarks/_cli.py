"""Benchmark command lines: one ``--flag`` per field of a frozen ``Args`` dataclass."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import TypeVar

ArgsT = TypeVar("ArgsT")


def parse_args(args_class: type[ArgsT], doc: str | None) -> ArgsT:
    """Parse ``--field-name VALUE`` for every field of ``args_class`` (typed by its default;
    booleans take ``true``/``false``), described by the first line of ``doc``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    for field, default in asdict(args_class()).items():
        kind = (lambda text: text.lower() == "true") if isinstance(default, bool) else type(default)
        parser.add_argument(f"--{field.replace('_', '-')}", type=kind, default=default)
    return args_class(**vars(parser.parse_args()))
