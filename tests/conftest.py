"""Shared fixtures: a tiny Two-Room dataset and a tiny world-model config (fast on CPU)."""

from __future__ import annotations

import abc
import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
import torch

from lewm_mpc.data.collection import collect_dataset
from lewm_mpc.models import WorldModelConfig, named_config

os.environ.setdefault("MUJOCO_GL", "egl")
if "LEWM_MPC_CACHE" not in os.environ:  # regenerated datasets: a throwaway cache, never ~/.cache
    os.environ["LEWM_MPC_CACHE"] = tempfile.mkdtemp(prefix="lewm_mpc-cache-")
    atexit.register(shutil.rmtree, os.environ["LEWM_MPC_CACHE"], ignore_errors=True)
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
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


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


class Toy2DModel(abc.ABC):
    """A protocol-only 2-D world model (latent = observation): each step adds
    ``step(sum of the block's two actions)``; subclasses define ``step``."""

    latent_dim = 2
    action_dim = 2
    action_block = 2
    obs_shape = (2,)
    obs_dtype = torch.float32
    device = torch.device("cpu")
    action_low = torch.full((2,), -1.0)
    action_high = torch.full((2,), 1.0)

    @abc.abstractmethod
    def step(self, block_sums: torch.Tensor) -> torch.Tensor:
        """(S, H, 2) summed block actions -> (S, H, 2) latent increments."""

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float()

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        blocks = actions.view(*actions.shape[:2], self.action_block, 2).sum(2)  # (S, H, 2)
        steps = self.step(blocks)  # (S, H, 2)
        return torch.cat([z0[:, None], z0[:, None] + steps.cumsum(1)], dim=1)  # (S, H+1, 2)
