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
from lewm_mpc.data.windows import WindowSampler
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
    for name, value in (("steps", steps), ("max_windows", max_windows), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    pixels = getattr(world_model, "obs_dtype", torch.uint8) == torch.uint8
    block, data_block = world_model.action_block, dataset.action_block
    if block % data_block:
        raise ValueError(
            f"the model's action_block {block} must be a multiple of the dataset's {data_block}"
        )
    per_step = block // data_block  # R: dataset rows per model step (K with per-step data)
    sampler = WindowSampler(
        dataset, np.asarray(episode_ids, dtype=np.int64), num_frames=steps + 1,
        frameskip=per_step, batch_size=batch_size, obs_mode="pixels" if pixels else "state",
    )  # fmt: skip
    rows = sampler.window_rows
    if len(rows) > max_windows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_windows, replace=False))
    offsets = np.arange(1, steps * per_step + 1)  # rows after the encoded frame
    fractions = torch.arange(1, per_step + 1, dtype=torch.float64) / per_step  # (R,)
    errors = []
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = sampler.gather(rows[start : start + batch_size])
            obs = torch.from_numpy(batch.obs[:, 0]).to(world_model.device)  # (B, *obs)
            if not pixels:
                obs = obs.to(torch.float32)
            actions = torch.from_numpy(batch.actions[:, :steps]).to(world_model.device)
            latents = world_model.rollout(world_model.encode(obs), actions)  # (B, steps+1, D)
            nodes = probe(latents.flatten(0, 1)).unflatten(0, latents.shape[:2])  # (B, steps+1, P)
            nodes = nodes.detach().to("cpu", torch.float64)
            delta = (nodes[:, 1:] - nodes[:, :-1])[:, :, None]  # (B, steps, 1, P)
            points = nodes[:, :-1, None] + fractions[:, None] * delta  # (B, steps, R, P)
            points = points.flatten(1, 2).numpy()  # (B, steps*R, P)
            true_rows = batch.rows[:, None] + offsets  # (B, steps*R)
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
