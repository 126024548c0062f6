"""Surprise: how far the world moved from what the model predicted, per executed block.

After each block of ``action_block`` env actions, the model's prediction of the latent (the
previous block's observation encoded and rolled forward through the executed actions) is
compared with the latent encoded from the new observation. A threshold calibrated
split-conformally on held-out windows bounds the false-alarm rate on unperturbed motion; a
surprise above it means the world stopped matching the model (a push, a slip, a teleport).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lewm_mpc.data import EpisodeDataset, WindowSampler
from lewm_mpc.types import LatentWorldModel

POLICIES = ("replan", "hold")
ALARMS = ("every", "onset")


@dataclass(frozen=True)
class SurpriseThreshold:
    """A calibrated surprise threshold.

    Attributes:
        value: the threshold (latent L2 distance).
        false_alarm: the requested false-alarm rate per block.
        windows: held-out windows it was calibrated on.
        median: the median surprise of those windows (for scale).
    """

    value: float
    false_alarm: float
    windows: int
    median: float

    @classmethod
    def from_scores(cls, scores: np.ndarray | Sequence[float], false_alarm: float = 0.01
                    ) -> SurpriseThreshold:  # fmt: skip
        """The split-conformal threshold of unperturbed surprise ``scores``.

        The ``ceil((n + 1)(1 - false_alarm)) / n`` empirical quantile of the ``n`` scores: a
        new score exchangeable with them exceeds it with probability at most ``false_alarm``.
        Scores from closed-loop episodes (``MPCController.surprises``) calibrate for the
        motion the planner produces, which data windows of another policy may not represent.
        Use many episodes: the blocks of one episode are correlated, so the promise holds on
        average over calibration sets and a small set gives a threshold far from its target
        (point mass, 1% asked: 30 episodes, 330 scores, gave 6.0% false alarms on other
        episodes; 100 episodes, 1100 scores, gave 1.3%; ``benchmarks/surprise.py``).
        """
        if not 0 < false_alarm < 1:
            raise ValueError(f"false_alarm must lie in (0, 1), got {false_alarm}")
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError("need at least one finite surprise score")
        count = values.size
        level = min(1.0, math.ceil((count + 1) * (1 - false_alarm)) / count)
        return cls(value=float(np.quantile(values, level, method="higher")),
                   false_alarm=false_alarm, windows=count,
                   median=float(np.median(values)))  # fmt: skip


@dataclass(frozen=True)
class SurpriseEvent:
    """A block whose surprise exceeded the threshold.

    Attributes:
        step: env step (actions executed since ``reset``) of the surprising observation.
        surprise: its surprise.
        threshold: the threshold it exceeded.
    """

    step: int
    surprise: float
    threshold: float


@dataclass(frozen=True)
class SurpriseMonitor:
    """What an :class:`~lewm_mpc.controller.MPCController` does about surprise.

    Attributes:
        threshold: a number or a :class:`SurpriseThreshold` (:func:`calibrate_surprise`).
        on_surprise: ``"replan"`` at once from the new observation (default), ``"hold"``
            (zero actions until that new plan takes effect), or a callable receiving the
            :class:`SurpriseEvent` (the controller then carries on).
        alarm: ``"every"`` block above the threshold is an event (default), or only the
            ``"onset"`` of a run of such blocks: the monitor re-arms once a block's surprise is
            back at or below the threshold. Surprise comes in runs where the model is
            steadily off (an agent pressed against a wall, a contact): ``"onset"`` answers
            each run once instead of at every block, and a run's later blocks are no new
            false alarm. A perturbation during a run is then not reported.
    """

    threshold: float | SurpriseThreshold
    on_surprise: str | Callable[[SurpriseEvent], None] = "replan"
    alarm: str = "every"

    def __post_init__(self) -> None:
        value = self.value
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"the surprise threshold must be finite and > 0, got {value}")
        if not callable(self.on_surprise) and self.on_surprise not in POLICIES:
            raise ValueError(
                f"on_surprise must be one of {POLICIES} or a callable, got {self.on_surprise!r}"
            )
        if self.alarm not in ALARMS:
            raise ValueError(f"alarm must be one of {ALARMS}, got {self.alarm!r}")

    def alarms(self, scores: Sequence[float]) -> np.ndarray:
        """Indices of the blocks of one episode's surprise ``scores`` that raise an event."""
        above = np.asarray(scores, dtype=np.float64) > self.value
        if self.alarm == "onset":
            above[1:] &= ~above[:-1]
        return np.flatnonzero(above)

    @property
    def value(self) -> float:
        """The threshold as a number."""
        threshold = self.threshold
        return float(threshold.value if isinstance(threshold, SurpriseThreshold) else threshold)


def surprise(
    model: LatentWorldModel, before: torch.Tensor, actions: torch.Tensor, after: torch.Tensor
) -> torch.Tensor:
    """(B,) latent distance between the predicted and the observed next latent.

    Args:
        model: the world model.
        before: (B, *obs_shape) observations at the start of a block.
        actions: (B, action_block * A) the block's executed actions.
        after: (B, *obs_shape) observations after it.
    """
    with torch.inference_mode():
        latents = model.encode(torch.cat([before, after]))  # (2B, D)
        start, observed = latents.chunk(2)
        predicted = model.rollout(start, actions[:, None])[:, -1]  # (B, D)
        return (predicted - observed).norm(dim=-1)


def calibrate_surprise(
    model: LatentWorldModel,
    dataset: EpisodeDataset,
    episode_ids: np.ndarray | Sequence[int],
    false_alarm: float = 0.01,
    *,
    max_windows: int = 2000,
    batch_size: int = 256,
    seed: int = 0,
) -> SurpriseThreshold:
    """The surprise threshold exceeded by a fraction ``false_alarm`` of unperturbed blocks.

    Split-conformal: the ``ceil((n + 1)(1 - false_alarm)) / n`` quantile of the surprise of
    ``n`` held-out one-block windows, so a new unperturbed block exceeds it with probability at
    most ``false_alarm``. Use episodes the model was not trained on.

    Raises:
        ValueError: bad arguments, a model block that is not a multiple of the data's, or no
            window in the episodes.
    """
    if not 0 < false_alarm < 1:
        raise ValueError(f"false_alarm must lie in (0, 1), got {false_alarm}")
    for name, value in (("max_windows", max_windows), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    pixels = getattr(model, "obs_dtype", torch.uint8) == torch.uint8
    block, data_block = model.action_block, dataset.action_block
    if block % data_block:
        raise ValueError(
            f"the model's action_block {block} must be a multiple of the dataset's {data_block}"
        )
    sampler = WindowSampler(
        dataset, np.asarray(episode_ids, dtype=np.int64), num_frames=2,
        frameskip=block // data_block, batch_size=batch_size,
        obs_mode="pixels" if pixels else "state",
    )  # fmt: skip
    rows = sampler.window_rows
    if len(rows) > max_windows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_windows, replace=False))
    scores = []
    for start in range(0, len(rows), batch_size):
        batch = sampler.gather(rows[start : start + batch_size])
        obs = torch.from_numpy(batch.obs).to(model.device)  # (B, 2, *obs)
        if not pixels:
            obs = obs.to(torch.float32)
        actions = torch.from_numpy(batch.actions[:, 0]).to(model.device)  # (B, block*A)
        scores.append(surprise(model, obs[:, 0], actions, obs[:, 1]).cpu().numpy())
    return SurpriseThreshold.from_scores(np.concatenate(scores), false_alarm)
