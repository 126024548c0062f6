"""Shared fixtures: a tiny Two-Room dataset and a tiny world-model config (fast on CPU)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lewm_mpc.collection import collect_dataset
from lewm_mpc.models import WorldModelConfig, named_config

os.environ.setdefault("MUJOCO_GL", "egl")
torch.set_num_threads(2)


def tiny_config(**overrides) -> WorldModelConfig:
    """A few-thousand-parameter pixel model with the default architecture's structure."""
    fields = dict(
        cnn_channels=(8, 8, 8, 8),
        feature_dim=32,
        latent_dim=16,
        projector_hidden=32,
        action_embed_dim=16,
        predictor_hidden=32,
    )
    return named_config("cpu", **{**fields, **overrides})


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """12 Two-Room episodes of 40 steps (pixels + states)."""
    path = tmp_path_factory.mktemp("data") / "tworoom.h5"
    return collect_dataset("tworoom", path, 12, 40, seed=0, progress=False)
