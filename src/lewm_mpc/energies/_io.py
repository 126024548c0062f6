"""Saving fitted heads (probes, constraint heads): a folder with ``model.safetensors`` and
``config.json``, written atomically like a world-model checkpoint; never pickle."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from lewm_mpc.atomic import atomic_write, defer_interrupts
from lewm_mpc.models.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    load_tensors_checked,
    read_json,
    save_tensors_atomic,
)

FORMAT_VERSION = 1


def save_head(
    directory: str | os.PathLike[str],
    kind: str,
    tensors: dict[str, torch.Tensor],
    config: dict[str, Any],
) -> Path:
    """Write ``tensors`` and a JSON ``config`` (tagged with ``kind``) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with defer_interrupts():
        sha = save_tensors_atomic(tensors, directory / WEIGHTS_FILE)
        payload = {
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "config": config,
            "weights_sha256": sha,
        }
        with atomic_write(directory / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False))
    return directory


def load_head(
    directory: str | os.PathLike[str], kind: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read what :func:`save_head` wrote, checking the kind, version and weights hash.

    Raises:
        CheckpointError: missing or corrupted files, another kind of artifact, a wrong version.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(
            f"{directory} is not a saved {kind} (expected a folder holding {CONFIG_FILE} and "
            f"{WEIGHTS_FILE})"
        )
    path = directory / CONFIG_FILE
    payload = read_json(path, f"{kind} config")
    if payload.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {payload.get('kind')!r}, not a {kind!r}")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {payload.get('format_version')!r}; this lewm_mpc reads "
            f"version {FORMAT_VERSION}"
        )
    sha = payload.get("weights_sha256")
    config = payload.get("config")
    if not isinstance(sha, str) or not isinstance(config, dict):
        raise CheckpointError(f"{path} lacks the weights_sha256 or config entry")
    return load_tensors_checked(directory / WEIGHTS_FILE, sha), config


def finite_or_none(values: tuple[float, ...]) -> list[float | None]:
    """JSON-safe floats: NaN (an undefined score) becomes null."""
    return [value if math.isfinite(value) else None for value in values]


def none_to_nan(values: list[float | None]) -> tuple[float, ...]:
    """Inverse of :func:`finite_or_none`."""
    return tuple(math.nan if value is None else float(value) for value in values)
