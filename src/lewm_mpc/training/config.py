"""Optimization settings, what a finished run reports, and the data-dependent model fields."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lewm_mpc.data import EpisodeDataset
from lewm_mpc.models.config import WorldModelConfig
from lewm_mpc.types import ObsMode

PRECISIONS = ("float32", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    """Optimization settings (CPU defaults; LeWM used lr 5e-5, batch 128 on a GPU).

    Attributes:
        steps: optimizer steps.
        batch_size: windows per step (each window has ``num_frames`` frames); with N
            processes, the global batch (N must divide it).
        num_frames: frames per window T (T - 1 teacher-forced transitions).
        lr: peak AdamW learning rate (linear warm-up, cosine decay to 10%).
        warmup_steps: warm-up length.
        weight_decay: AdamW weight decay.
        grad_clip: max gradient norm.
        sigreg_weight: lambda.
        sigreg_projections: random directions per step.
        sigreg_knots: quadrature knots on [0, 3].
        state_loss_weight: weight of an auxiliary loss asking a linear head on every embedding
            to regress its frame's z-scored task features (:mod:`lewm_mpc.state_targets`);
            0 (default, LeWorldModel's objective) trains without it.
        rollout_weight: weight of an open-loop multi-step prediction term (the predictor fed
            its own predictions through each window, as in planning; longer windows,
            ``num_frames``, roll out further); 0 (default) trains LeWorldModel's objective.
        augment: train on windows turned and mirrored by the env's scene symmetries
            (``EnvDefinition.symmetries``, e.g. PushT's eight): each window drawn gets one of
            them at random, frames and action blocks alike, so the model sees every
            situation in each orientation (state-loss targets are transformed alike). Needs
            an env that declares them.
        val_fraction: share of episodes held out (split by episode).
        val_every: steps between validation passes (and the final step).
        val_batches: batches per validation pass.
        checkpoint_every: steps between checkpoints (and the final step).
        keep_checkpoints: committed checkpoints kept in the run folder (the newest).
        bn_calibration_batches: training batches over which every BatchNorm's running statistics
            are recomputed (a plain average, no momentum) before each validation pass and each
            checkpoint, so eval mode (planning) normalizes with the statistics of the current
            weights; 0 keeps the momentum averages.
        seed: seeds model init, window sampling and SIGReg directions.
        device: "auto" (CUDA if available), "cpu" or "cuda[:i]".
        precision: ``"float32"`` (default) or ``"bfloat16"``: the encoder and predictor run
            under ``torch.autocast`` in bfloat16 (weights, optimizer state, the losses and
            SIGReg stay float32), the mixed precision that makes the ``paper`` config fast on
            a GPU; on a CPU it is usually slower.
        compile: run the training step's forward pass (encoder, predictor, losses) through
            ``torch.compile`` (needs a C++ compiler on a CPU; the first steps compile). The
            weights and checkpoints are the same modules, so a run may be resumed with or
            without it.
        prefetch: draw the next batch in a background thread while a step runs (the same
            batches in the same order); None (default): on when training on a GPU.
    """

    steps: int = 3000
    batch_size: int = 64
    num_frames: int = 4
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 1e-3
    grad_clip: float = 1.0
    sigreg_weight: float = 0.09
    sigreg_projections: int = 256
    sigreg_knots: int = 17
    state_loss_weight: float = 0.0
    rollout_weight: float = 0.0
    augment: bool = False
    val_fraction: float = 0.1
    val_every: int = 500
    val_batches: int = 8
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    bn_calibration_batches: int = 32
    seed: int = 0
    device: str = "auto"
    precision: str = "float32"
    compile: bool = False
    prefetch: bool | None = None

    def __post_init__(self) -> None:
        for name in ("compile", "augment"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.prefetch is not None and not isinstance(self.prefetch, bool):
            raise ValueError(f"prefetch must be True, False or None, got {self.prefetch!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.bn_calibration_batches < 0:
            raise ValueError(
                f"bn_calibration_batches must be >= 0, got {self.bn_calibration_batches}"
            )
        for name in ("steps", "val_every", "val_batches", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError(
                f"batch_size must be >= 2 (SIGReg compares samples), got {self.batch_size}"
            )
        if self.num_frames < 2:
            raise ValueError(
                f"num_frames must be >= 2 (a frame and its successor), got {self.num_frames}"
            )
        if not self.lr > 0 or self.warmup_steps < 0 or self.weight_decay < 0:
            raise ValueError("need lr > 0, warmup_steps >= 0, weight_decay >= 0")
        if not self.grad_clip > 0 or min(self.sigreg_weight, self.state_loss_weight,
                                         self.rollout_weight) < 0:  # fmt: skip
            raise ValueError(
                "need grad_clip > 0 and sigreg_weight, state_loss_weight, rollout_weight >= 0"
            )
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

    def learning_rate(self, step: int) -> float:
        """Schedule: linear warm-up then cosine decay to 10% of ``lr``."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return self.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress))))


@dataclass(frozen=True)
class TrainSummary:
    """What a finished (or already complete) run reports; ``seconds`` is the total training
    time, summed over resumed sessions."""

    run_dir: Path
    steps: int
    train_loss: float
    val_loss: float
    val_prediction: float
    seconds: float
    num_parameters: int


def model_config_for(
    dataset: EpisodeDataset, base: WorldModelConfig, obs_mode: ObsMode
) -> WorldModelConfig:
    """Fill the data-dependent fields: observation kind and size, action dim and bounds (from
    the dataset's meta).

    Raises:
        ValueError: The dataset records no action bounds, or the model's ``action_block`` is not
            a multiple of the dataset's (rows recorded in blocks cannot be split).
    """
    low, high = dataset.meta.action_bounds()
    if base.action_block % dataset.action_block:
        raise ValueError(
            f"the model's action_block {base.action_block} must be a multiple of the dataset's "
            f"{dataset.action_block} (env actions per row)"
        )
    if obs_mode == "pixels":
        image = dataset.image_shape
        fields: dict[str, Any] = {"obs_mode": "pixels", "image_size": image[0]}
    else:
        fields = {"obs_mode": "state", "state_dim": dataset.state_dim}
    return dataclasses.replace(
        base, action_dim=len(low), action_low=low, action_high=high, **fields
    )
