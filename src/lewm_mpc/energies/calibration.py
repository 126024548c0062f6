"""Calibrated safety margins: how far a probed prediction can be from where the system really is.

A region guardrail (:class:`~lewm_mpc.energies.KeepOutBox`, ...) checks the probe's reading of
*predicted* latents, so it protects the true system only up to the error of encoder, predictor
and probe together. :func:`calibrate_probe_margin` measures that error on held-out episodes the
way the guardrail sees it: encode a recorded frame, roll the model out with the recorded
actions, probe each predicted step, interpolate between steps as the guardrail does, and compare
with the recorded quantity at every env step in between. The margin is an upper quantile (with
the split-conformal finite-sample correction) of each window's worst error, so growing a region
by it covers the true trajectory in that share of held-out windows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lewm_mpc.data import EpisodeDataset
from lewm_mpc.data.windows import model_windows
from lewm_mpc.energies.probes import _targets
from lewm_mpc.types import LatentWorldModel

LatentMap = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ProbeMargin:
    """A measured bound on the probed-prediction error.

    Attributes:
        margin: the ``quantile`` (finite-sample corrected) of the per-window worst error, in
            the probed quantity's units: the safety margin to grow regions by.
        quantile: the coverage asked for, in (0, 1).
        steps: model steps rolled out per window.
        windows: held-out windows measured.
        per_step: the ``quantile`` of the error at each env step ``1 .. steps * action_block``
            after the encoded frame (how the error grows along the plan).
    """

    margin: float
    quantile: float
    steps: int
    windows: int
    per_step: tuple[float, ...]


def calibrate_probe_margin(
    world_model: LatentWorldModel,
    probe: LatentMap,
    dataset: EpisodeDataset,
    episode_ids: np.ndarray | Sequence[int],
    target: str | Sequence[int] | Callable[[np.ndarray], np.ndarray] = "state",
    *,
    steps: int = 1,
    quantile: float = 0.99,
    max_windows: int = 2000,
    batch_size: int = 256,
    seed: int = 0,
) -> ProbeMargin:
    """Measure the probed-prediction error on held-out episodes and return a safety margin.

    For each window: encode its first frame, roll out ``steps`` model steps with the recorded
    action blocks, probe the predicted latents, and linearly interpolate between consecutive
    predicted points at every env step of a block (``KeepOutBox(substeps=action_block)``
    checks those points; data collected in blocks of ``k`` env steps is measured at its rows,
    every ``k`` steps). The error at an env step is the Euclidean distance between that point
    and the recorded quantity (``target`` of the recorded state); a window's error is its worst
    step. Use episodes the model and the probe were not fitted on.

    Args:
        world_model: the model the planner uses (pixel models encode ``dataset.pixels``, state
            models ``dataset.state``).
        probe: latent -> quantity map, (N, D) -> (N, P).
        dataset: the episodes.
        episode_ids: held-out episodes to measure on.
        target: the probe's target (as for :func:`fit_probe_from_dataset`): ``"state"``, state
            columns, or a function of (M, Ds) states returning (M, P).
        steps: model steps per window (the steps executed between two replans; 1 for MPC
            that replans every block).
        quantile: coverage of the margin, in (0, 1).
        max_windows: at most this many windows, drawn uniformly without replacement.
        batch_size: windows per forward pass.
        seed: seed of the window subsample.

    Returns:
        The margin and the error profile.

    Raises:
        ValueError: bad arguments, or no window fits in the episodes.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    windows = model_windows(world_model, dataset, episode_ids, steps + 1, max_windows,
                            batch_size, seed)  # fmt: skip
    per_step = world_model.action_block // dataset.action_block  # R: dataset rows per step
    offsets = np.arange(1, steps * per_step + 1)  # rows after the encoded frame
    fractions = torch.arange(1, per_step + 1, dtype=torch.float64) / per_step  # (R,)
    errors = []
    with torch.inference_mode():
        for frames, blocks, starts in windows:  # (B, steps+1, *obs), (B, steps+1, block*A)
            obs, actions = frames[:, 0], blocks[:, :steps]
            latents = world_model.rollout(world_model.encode(obs), actions)  # (B, steps+1, D)
            nodes = probe(latents.flatten(0, 1)).unflatten(0, latents.shape[:2])  # (B, steps+1, P)
            nodes = nodes.detach().to("cpu", torch.float64)
            delta = (nodes[:, 1:] - nodes[:, :-1])[:, :, None]  # (B, steps, 1, P)
            points = nodes[:, :-1, None] + fractions[:, None] * delta  # (B, steps, R, P)
            points = points.flatten(1, 2).numpy()  # (B, steps*R, P)
            true_rows = starts[:, None] + offsets  # (B, steps*R)
            truth = _targets(dataset.state[true_rows.reshape(-1)], target)
            truth = truth.reshape(*true_rows.shape, -1)  # (B, steps*R, P)
            if truth.shape != points.shape:
                raise ValueError(
                    f"probe outputs {points.shape[-1]} values but the target has "
                    f"{truth.shape[-1]}; pass the target the probe was fitted on"
                )
            errors.append(np.linalg.norm(points - truth, axis=-1))  # (B, steps*R)
    error = np.concatenate(errors)  # (W, steps*R)
    count = len(error)
    level = min(1.0, math.ceil((count + 1) * quantile) / count)  # split-conformal correction
    return ProbeMargin(
        margin=float(np.quantile(error.max(axis=1), level, method="higher")),
        quantile=quantile,
        steps=steps,
        windows=count,
        per_step=tuple(float(v) for v in np.quantile(error, level, axis=0, method="higher")),
    )
