"""Surprise: how far the world moved from what the model predicted, per executed block.

After each block of ``action_block`` env actions, the model's prediction of the latent (the
previous block's observation encoded and rolled forward through the executed actions) is
compared with the latent encoded from the new observation. A threshold calibrated
split-conformally on held-out windows bounds the false-alarm rate on unperturbed motion; a
surprise above it means the world stopped matching the model (a push, a slip, a teleport).
That rate holds on average over calibration sets; a given set can land above it, the more so as
an episode's blocks are correlated. ``confidence`` (e.g. 0.95) asks for a threshold that keeps
the rate in that share of calibration sets, bootstrapped over whole episodes
(:meth:`SurpriseThreshold.from_scores`).

The model errs more on a fast block than on a still one, so a raw distance threshold set for a
1% rate over whole episodes alarms far more often in the motions of an episode's first blocks
and rarely at rest. A *relative* threshold (the default of :func:`calibrate_surprise`) compares
``surprise / (offset + motion)``, where ``motion`` is how far the model predicted the block
to move in latent space and ``offset`` the median motion of the calibration blocks. The score
spreads about as much in motion as at rest, so one threshold keeps close to its rate in every
phase of an episode (``benchmarks/surprise.py``: 0-0.8% false alarms per block in the first
20 steps of an episode for 1% asked, against 4-7% with a raw distance threshold). It misses a
push that lands during a fast block, which the raw distance sees; a *combined* threshold
(``calibrate_surprise(..., combine=True)``) alarms on the larger of the two scores, each in
units of its calibration median, at one conformal quantile of that maximum (the same guarantee
as either score alone). In closed loop it detects as the raw distance does (Reacher: 96% of
teleports within one block, against 80% relative) but also alarms as often in an episode's first
blocks (Two-Room: 3.6% false alarms per block, against 0.4% relative), so the relative score
stays the default. ``offset_scale`` and ``motion_power`` shape the relative score,
``surprise / (offset_scale * offset + motion) ** motion_power``: at 0.25 and 0.5, held at
``confidence=0.95``, it detected every teleport on Two-Room, the point mass and Reacher at
0.2-0.5% false alarms per block, on pairs it was not chosen on (``benchmarks/surprise.py
--seed 2``; the default score: 96%, 98% and 74%).

Where the latent distance is dominated by what the robot itself does (an arm, an agent) and the
perturbations that matter move something else (a cube, a block), a *readout* measures the
surprise in the units of that thing: a map from latents to task quantities, e.g. a linear
:class:`~lewm_mpc.energies.Probe` of the cube position fitted on training episodes. Calibrate
with it (``calibrate_surprise(..., readout=probe)``, or closed-loop scores of a monitor that has
it) and monitor with it (``SurpriseMonitor(threshold, readout=probe)``); a threshold remembers
whether it was calibrated with a readout, and a monitor refuses one of the other kind. Measured
(``benchmarks/surprise.py --readout probe``), linear probes of the shipped models detected fewer
pushes than the latent distance (PushT 68% against 90%, Cube 28% against 68%): those probes are
noisy on closed-loop frames. Latents that hold the pushed object do better: a PushT model trained
with the auxiliary state loss detected 96% of the shoves at 0.4% false alarms per block with the
plain relative score (a Cube model trained so detected 68% of the moves, as the shipped one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lewm_mpc.conformal import SurpriseThreshold
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.planners.inputs import check_past
from lewm_mpc.surprise_windows import block_windows
from lewm_mpc.types import LatentWorldModel

POLICIES = ("replan", "hold")
Readout = Callable[[torch.Tensor], torch.Tensor]  # (B, D) latents -> (B, F) task quantities
ALARMS = ("every", "onset")


@dataclass(frozen=True)
class BlockSurprise:
    """What the monitor measured after one executed block.

    Attributes:
        step: env step (actions executed since ``reset``) of the block's last observation.
        surprise: latent distance between the predicted and the observed latent (with a
            readout: the distance between what it reads from them).
        motion: latent distance the model predicted the block to move (predicted - start;
            likewise through a readout).
        score: what the threshold is compared with: ``surprise``, or for a relative
            threshold ``surprise / (offset + motion)``.
    """

    step: int
    surprise: float
    motion: float
    score: float


@dataclass(frozen=True)
class SurpriseEvent:
    """A block whose surprise score exceeded the threshold.

    Attributes:
        step: env step (actions executed since ``reset``) of the surprising observation.
        surprise: its surprise (latent distance).
        threshold: the threshold its score exceeded.
        score: its score (the surprise itself for a threshold given as a number).
    """

    step: int
    surprise: float
    threshold: float
    score: float


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
        readout: None (default): surprise is a latent distance; a callable from (B, D)
            latents to (B, F) task quantities (e.g. a fitted :class:`~lewm_mpc.energies.Probe`):
            surprise and motion are distances between those quantities. A
            :class:`SurpriseThreshold` must have been calibrated the same way.
    """

    threshold: float | SurpriseThreshold
    on_surprise: str | Callable[[SurpriseEvent], None] = "replan"
    alarm: str = "every"
    readout: Readout | None = None

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
        if self.readout is not None and not callable(self.readout):
            raise ValueError(f"readout must be None or a callable on latents, got "
                             f"{type(self.readout).__name__}")  # fmt: skip
        threshold = self.threshold
        if isinstance(threshold, SurpriseThreshold) and threshold.readout != (
            self.readout is not None
        ):
            calibrated = "through a readout" if threshold.readout else "on latent distances"
            given = "one" if self.readout is not None else "none"
            raise ValueError(f"the threshold was calibrated {calibrated}, but the monitor has "
                             f"{given}: pass the readout used to calibrate it")  # fmt: skip

    def score(self, surprise: float, motion: float) -> float:
        """A block's score (see :meth:`SurpriseThreshold.score`; a number: the surprise)."""
        threshold = self.threshold
        if isinstance(threshold, SurpriseThreshold):
            return float(threshold.score(surprise, motion))
        return float(surprise)

    def alarms(self, scores: Sequence[float]) -> np.ndarray:
        """Indices of the blocks of one episode's ``scores`` (:attr:`BlockSurprise.score`) that
        raise an event."""
        above = np.asarray(scores, dtype=np.float64) > self.value
        if self.alarm == "onset":
            above[1:] &= ~above[:-1]
        return np.flatnonzero(above)

    @property
    def value(self) -> float:
        """The threshold as a number."""
        threshold = self.threshold
        return float(threshold.value if isinstance(threshold, SurpriseThreshold) else threshold)


def surprise_and_motion(
    model: LatentWorldModel,
    before: torch.Tensor,
    actions: torch.Tensor,
    after: torch.Tensor,
    readout: Readout | None = None,
    past: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) surprise, the latent distance between the predicted and the observed next latent,
    and (B,) predicted motion, the latent distance from the block's start to the prediction.

    Args:
        model: the world model.
        before: (B, *obs_shape) observations at the start of a block.
        actions: (B, action_block * A) the block's executed actions.
        after: (B, *obs_shape) observations after it.
        readout: None, or a map from (B, D) latents to (B, F) task quantities: the distances
            are then measured between those.
        past: for a model with ``history`` > 1, ``(past_obs (B, C, *obs_shape), past_actions
            (B, C, action_block * A))``: the observations at the C block starts before
            ``before``, oldest first, and the block executed after each (the last one led to
            ``before``). The prediction then conditions on them, as the planner's does. None,
            or a model without history: the prediction starts from ``before`` alone.
    """
    start, observed, predicted = predict_block(model, before, actions, after, past)
    if readout is not None:
        with torch.inference_mode():
            start, observed, predicted = (_read(readout, z) for z in (start, observed, predicted))
    return (predicted - observed).norm(dim=-1), (predicted - start).norm(dim=-1)


def predict_block(
    model: LatentWorldModel,
    before: torch.Tensor,
    actions: torch.Tensor,
    after: torch.Tensor,
    past: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, D) latents of a block's start and of the observation after it, and the model's
    prediction of the latter from the former and the block's actions (arguments as
    :func:`surprise_and_motion`'s).

    Raises:
        ValueError: ``past`` for a history model whose ``rollout`` takes none, or of the wrong
            shape.
    """
    if getattr(model, "history", 1) <= 1 or past is None or past[0].shape[1] == 0:
        past = None
    with torch.inference_mode():
        frames = [before, after] if past is None else [past[0].flatten(0, 1), before, after]
        latents = model.encode(torch.cat(frames))  # ((C + 2) B, D)
        context = None
        if past is not None:
            num, count = past[0].shape[:2]
            past_latents = latents[: num * count].unflatten(0, (num, count))  # (B, C, D)
            latents = latents[num * count :]
            context = check_past(model, (past_latents, past[1]), latents[:num])
        start, observed = latents.chunk(2)
        if context is None:
            predicted = model.rollout(start, actions[:, None])
        else:
            predicted = model.rollout(start, actions[:, None], *context)
        return start, observed, predicted[:, -1]


def _read(readout: Readout, latents: torch.Tensor) -> torch.Tensor:
    """(B, F) task quantities read from (B, D) latents, checked."""
    values = readout(latents)
    if not isinstance(values, torch.Tensor) or values.ndim != 2 or len(values) != len(latents):
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"the surprise readout must map ({len(latents)}, D) latents to a "
                         f"({len(latents)}, F) tensor, got {shape}")  # fmt: skip
    return values


def calibrate_surprise(
    model: LatentWorldModel,
    dataset: EpisodeDataset,
    episode_ids: np.ndarray | Sequence[int],
    false_alarm: float = 0.01,
    *,
    relative: bool = True,
    combine: bool = False,
    readout: Readout | None = None,
    max_windows: int = 2000,
    batch_size: int = 256,
    seed: int = 0,
    confidence: float | None = None,
    offset_scale: float = 1.0,
    motion_power: float = 1.0,
) -> SurpriseThreshold:
    """The surprise threshold exceeded by a fraction ``false_alarm`` of unperturbed blocks.

    Split-conformal: the ``ceil((n + 1)(1 - false_alarm)) / n`` quantile of the scores of
    ``n`` held-out one-block windows, so a new unperturbed block exceeds it with probability at
    most ``false_alarm``. Use episodes the model was not trained on. ``relative`` (default):
    the score is the surprise relative to the block's predicted motion (module docstring);
    False: the raw latent distance. ``combine`` (with ``relative``): the larger of both, each in
    units of its median. ``readout``: measure the distances between task quantities read from
    the latents (module docstring); monitor with the same readout. ``confidence``: the rate
    stays at or under ``false_alarm`` with this probability over calibration sets, not only
    on average, bootstrapped over the windows' episodes; ``offset_scale`` and ``motion_power``
    shape the relative score (:meth:`SurpriseThreshold.from_scores`).

    Raises:
        ValueError: bad arguments, a model block that is not a multiple of the data's, no
            window in the episodes, or (with ``confidence``) fewer than 10 episodes.
    """
    if not 0 < false_alarm < 1:
        raise ValueError(f"false_alarm must lie in (0, 1), got {false_alarm}")
    if confidence is not None and not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1) or be None, got {confidence}")
    if combine and not relative:
        raise ValueError("combine=True combines the relative score with the raw one: it needs "
                         "relative=True")  # fmt: skip
    scores, motions, episodes = [], [], []
    for window in block_windows(model, dataset, episode_ids, max_windows, batch_size, seed):
        value, motion = surprise_and_motion(model, window.before, window.actions, window.after,
                                            readout, window.past)  # fmt: skip
        scores.append(value.cpu().numpy())
        motions.append(motion.cpu().numpy())
        episodes.append(window.episodes)
    return SurpriseThreshold.from_scores(np.concatenate(scores), false_alarm,
                                         np.concatenate(motions) if relative else None,
                                         combine=combine, readout=readout is not None,
                                         confidence=confidence, groups=np.concatenate(episodes),
                                         seed=seed, offset_scale=offset_scale,
                                         motion_power=motion_power)  # fmt: skip
