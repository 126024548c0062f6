"""Run identities: the settings a checkpoint records, compared before a run resumes."""

from __future__ import annotations

import json
from typing import Any

from lewm_mpc.models.config import WorldModelConfig

# TrainConfig fields a resumed run may change: they do not alter the steps already taken.
RESUMABLE_CHANGES = ("steps", "keep_checkpoints", "compile", "prefetch")


def _normalized_identity(identity: Any) -> Any:
    """A stored run identity with its model config in the current spelling (``obs_kind`` of
    earlier runs read as ``obs_mode``), so runs started before the rename still resume."""
    if isinstance(identity, dict) and isinstance(identity.get("model_config"), dict):
        config = WorldModelConfig.from_dict(identity["model_config"]).to_dict()
        identity = {**identity, "model_config": json.loads(json.dumps(config))}
    if isinstance(identity, dict) and isinstance(identity.get("train_config"), dict):
        # fields added since: their value in older runs
        added = {
            "bn_calibration_batches": 0,
            "state_loss_weight": 0.0,
            "rollout_weight": 0.0,
            "precision": "float32",
            "augment": False,
        }
        train_config = {**added, **identity["train_config"]}
        for name in RESUMABLE_CHANGES:
            train_config.pop(name, None)
        identity = {**identity, "train_config": train_config}
    return identity


def identity_differences(stored: Any, current: Any, prefix: str = "") -> list[str]:
    """``"field: run has A, now B"`` for each leaf where two run identities differ."""
    if isinstance(stored, dict) and isinstance(current, dict):
        lines = []
        for key in sorted(set(stored) | set(current), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored or key not in current:
                lines.append(f"{name}: only in the {'run' if key in stored else 'new settings'}")
            else:
                lines.extend(identity_differences(stored[key], current[key], name))
        return lines
    return [] if stored == current else [f"{prefix}: run has {stored!r}, now {current!r}"]
