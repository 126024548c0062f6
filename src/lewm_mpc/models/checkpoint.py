"""World-model checkpoints: ``model.safetensors`` + ``config.json``, never pickle.

A training run folder holds several (``checkpoints/step-<N>/``, :mod:`lewm_mpc.models.run_dir`);
reading one gives its newest.

``config.json`` holds a format version, the architecture, the SHA-256 of the weights file and
the typed run metadata (:class:`~lewm_mpc.models.run_meta.RunMeta`: env, dataset, split,
training summary). Version-1 checkpoints, whose free-form ``extra`` held that metadata, still
load: it is converted to a ``RunMeta``. Loading refuses, with one clear ``CheckpointError`` line,
a missing file, a truncated or corrupted file, an unknown format version, invalid run metadata,
or weights that do not match the config.

Weights may be stored in a smaller floating dtype (``WorldModel.save(path, dtype=torch.float16)``:
parameters only, buffers stay exact); they load back as float32.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lewm_mpc.atomic import atomic_write, default_permissions, defer_interrupts
from lewm_mpc.models.config import WorldModelConfig
from lewm_mpc.models.run_dir import CHECKPOINTS, checkpoint_dir
from lewm_mpc.models.run_meta import RunMeta

if TYPE_CHECKING:
    from lewm_mpc.models.jepa import WorldModel

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
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
        default_permissions(tmp)  # safetensors creates its file 0600
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


def _cast_parameters(model: WorldModel, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` with its parameters cast to ``dtype`` (buffers, such as action
    statistics and bounds, stay exact).

    Raises:
        ValueError: ``dtype`` is not a floating dtype, or a parameter overflows it.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"checkpoint weights need a floating dtype, got {dtype!r}")
    names = {name for name, _ in model.named_parameters()}
    tensors = model.state_dict()
    for name in names:
        cast = tensors[name].detach().to(dtype)
        if not torch.isfinite(cast).all():
            raise ValueError(f"parameter {name} overflows {dtype}; save it in a wider dtype")
        tensors[name] = cast
    return tensors


def save_world_model(model: WorldModel, directory: Path, dtype: torch.dtype | None = None) -> Path:
    """Write weights then config (with ``model.run_meta``), each atomically, with Ctrl-C held
    until both are written. ``dtype`` (e.g. ``torch.float16``) stores the parameters smaller."""
    tensors = model.state_dict() if dtype is None else _cast_parameters(model, dtype)
    directory.mkdir(parents=True, exist_ok=True)
    with defer_interrupts():
        sha = save_tensors_atomic(tensors, directory / WEIGHTS_FILE)
        payload = {
            "format_version": FORMAT_VERSION,
            "kind": "lewm_mpc.WorldModel",
            "config": model.config.to_dict(),
            "weights_sha256": sha,
            "run_meta": model.run_meta.to_dict(),
        }
        if dtype is not None:
            payload["weights_dtype"] = str(dtype).removeprefix("torch.")
        with atomic_write(directory / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    return directory


def resolve_checkpoint(directory: str | Path) -> Path:
    """The checkpoint folder of ``directory``: itself when it holds ``config.json``, or the
    newest committed checkpoint of a training run folder (:mod:`lewm_mpc.models.run_dir`)."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    found = checkpoint_dir(directory) if directory.is_dir() else None
    if found is None:
        raise CheckpointError(
            f"{directory} is not a checkpoint directory (expected a folder holding "
            f"{CONFIG_FILE} and {WEIGHTS_FILE}, or a training run folder with "
            f"{CHECKPOINTS}/step-<N>/)"
        )
    return found


def read_checkpoint_config(directory: Path) -> tuple[WorldModelConfig, RunMeta, str]:
    """Parse and validate ``config.json`` of :func:`resolve_checkpoint` (``directory``):
    (architecture, run metadata, weights hash)."""
    path = resolve_checkpoint(directory) / CONFIG_FILE
    payload = read_json(path, "checkpoint config")
    version = payload.get("format_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise CheckpointError(
            f"{path} has format_version {version!r}; this lewm_mpc reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    try:
        config = WorldModelConfig.from_dict(payload["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path} holds an invalid model config: {error}") from None
    sha = payload.get("weights_sha256")
    if not isinstance(sha, str):
        raise CheckpointError(f"{path} lacks the weights_sha256 entry")
    return config, _run_meta(payload, version, config, path), sha


def _run_meta(
    payload: dict[str, Any], version: int, config: WorldModelConfig, path: Path
) -> RunMeta:
    """The run metadata of a parsed ``config.json`` (converted from ``extra`` in version 1)."""
    try:
        if version == 1:
            extra = payload.get("extra", {})
            if not isinstance(extra, dict):
                raise ValueError(f"extra must be a JSON object, got {extra!r}")
            return RunMeta.from_legacy(extra, config.obs_mode)  # type: ignore[arg-type]
        if "run_meta" not in payload:
            raise ValueError("the run_meta entry is missing")
        meta = RunMeta.from_dict(payload["run_meta"])
    except ValueError as error:
        raise CheckpointError(f"{path} holds invalid run metadata: {error}") from None
    if meta.obs_mode != config.obs_mode:
        raise CheckpointError(
            f"{path} holds invalid run metadata: obs_mode {meta.obs_mode!r} but the model "
            f"encodes {config.obs_mode!r}"
        )
    return meta


def read_checkpoint(directory: Path) -> tuple[WorldModelConfig, RunMeta, dict[str, torch.Tensor]]:
    """A checkpoint's architecture, run metadata and verified weights (float32: weights stored
    smaller, e.g. float16, are widened); a run folder gives its newest checkpoint."""
    directory = resolve_checkpoint(directory)
    config, run_meta, sha = read_checkpoint_config(directory)
    tensors = load_tensors_checked(directory / WEIGHTS_FILE, sha)
    return (
        config,
        run_meta,
        {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()},
    )


def restore_weights(
    module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path
) -> None:
    """Load ``tensors`` into ``module``; one CheckpointError naming ``source`` if they do not
    match its parameters and buffers."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))
        unexpected = sorted(set(found) - set(expected))
        reshaped = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
        raise CheckpointError(
            f"weights in {source} do not match its config: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shape {reshaped[:5]}"
        )
    module.load_state_dict(tensors)
