"""World-model checkpoints: ``model.safetensors`` + ``config.json``, never pickle.

``config.json`` holds a format version, the architecture, the SHA-256 of the weights file and
free-form ``extra`` metadata (env id, training summary). Loading refuses, with one clear
``CheckpointError`` line, a missing file, a truncated or corrupted file, an unknown format
version, or weights that do not match the config.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lewm_mpc.atomic import atomic_write, defer_interrupts
from lewm_mpc.models.config import WorldModelConfig

if TYPE_CHECKING:
    from lewm_mpc.models.jepa import WorldModel

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(ValueError):
    """A checkpoint could not be loaded; the message says which file and why."""


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_tensors_atomic(tensors: dict[str, torch.Tensor], path: Path) -> str:
    """Write tensors as safetensors atomically; returns the file's SHA-256."""
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_write(path) as tmp:
        save_file(contiguous, str(tmp))
        sha = file_sha256(tmp)
    return sha


def load_tensors_checked(path: Path, expected_sha: str | None) -> dict[str, torch.Tensor]:
    """Load a safetensors file, verifying its hash when one is recorded."""
    if not path.is_file():
        raise CheckpointError(f"missing weights file {path}")
    if expected_sha is not None and file_sha256(path) != expected_sha:
        raise CheckpointError(
            f"{path} does not match the SHA-256 recorded in its config: the file is truncated, "
            "corrupted or from another checkpoint"
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors file: {error}") from None


def read_json(path: Path, what: str) -> dict[str, Any]:
    """Read a JSON object, turning every failure into one CheckpointError line."""
    if not path.is_file():
        raise CheckpointError(f"missing {what} {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"{path} is not valid JSON ({error}); the file is corrupted"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def save_world_model(model: WorldModel, directory: Path, extra: dict[str, Any]) -> Path:
    """Write weights then config, each atomically, with Ctrl-C held until both are written."""
    directory.mkdir(parents=True, exist_ok=True)
    with defer_interrupts():
        sha = save_tensors_atomic(model.state_dict(), directory / WEIGHTS_FILE)
        payload = {
            "format_version": FORMAT_VERSION,
            "kind": "lewm_mpc.WorldModel",
            "config": model.config.to_dict(),
            "weights_sha256": sha,
            "extra": extra,
        }
        with atomic_write(directory / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    return directory


def read_checkpoint_config(directory: Path) -> tuple[WorldModelConfig, dict[str, Any], str]:
    """Parse and validate ``config.json``: (architecture, extra metadata, weights hash)."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    if not directory.is_dir():
        raise CheckpointError(
            f"{directory} is not a checkpoint directory (expected a folder "
            f"holding {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    path = directory / CONFIG_FILE
    payload = read_json(path, "checkpoint config")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {version!r}; this lewm_mpc reads version {FORMAT_VERSION}"
        )
    try:
        config = WorldModelConfig.from_dict(payload["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path} holds an invalid model config: {error}") from None
    sha = payload.get("weights_sha256")
    if not isinstance(sha, str):
        raise CheckpointError(f"{path} lacks the weights_sha256 entry")
    return config, dict(payload.get("extra", {})), sha


def load_world_model(directory: Path, device: str | torch.device = "cpu") -> WorldModel:
    """Rebuild a :class:`WorldModel` from a checkpoint directory, in eval mode."""
    from lewm_mpc.models.jepa import WorldModel

    config, extra, sha = read_checkpoint_config(directory)
    tensors = load_tensors_checked(Path(directory) / WEIGHTS_FILE, sha)
    model = WorldModel(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))
        unexpected = sorted(set(found) - set(expected))
        reshaped = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
        raise CheckpointError(
            f"weights in {directory} do not match its config: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shape {reshaped[:5]}"
        )
    model.load_state_dict(tensors)
    model.metadata = extra
    return model.to(device).eval()
