"""Offline evaluation: judge a world model on held-out episodes, with no simulator.

Two measures, both on the run's validation episodes:

- open-loop prediction error: from the first frame of a window, roll the model out with the
  recorded actions for ``k = 1 .. K`` model steps and compare with the encoded true frames. The
  squared error is divided by the total variance of the true latents, so 0 is perfect and 1 is no
  better than predicting the mean latent; the error of "nothing moves" (the first latent held) is
  reported beside it as a baseline.
- probe R²: a linear probe latent -> recorded ``state``, fitted on training episodes, scored on the
  held-out ones (how much of the physical state the latents keep).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.data import WindowSampler
from lewm_mpc.energies import fit_probe_from_dataset
from lewm_mpc.runs import Run


@dataclass(frozen=True)
class OfflineConfig:
    """Settings of :func:`evaluate_offline`.

    Attributes:
        horizon: Model steps ``K`` of the open-loop rollouts.
        max_windows: At most this many held-out windows (drawn uniformly without replacement).
        probe_samples: At most this many training frames to fit the probe on.
        batch_size: Windows encoded and rolled out per forward pass.
        seed: Seed of the window and frame draws.
    """

    horizon: int = 5
    max_windows: int = 512
    probe_samples: int = 4000
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("horizon", "max_windows", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.probe_samples < 4:
            raise ValueError(f"probe_samples must be >= 4, got {self.probe_samples}")


@dataclass(frozen=True)
class OfflineReport:
    """Results of :func:`evaluate_offline`.

    Attributes:
        env_id: The dataset's environment id (``None``: none).
        obs_mode: What the model encodes.
        num_val_episodes: Held-out episodes.
        num_windows: Held-out windows behind the prediction errors.
        env_steps_per_model_step: Env actions per model step (the model's ``action_block``).
        prediction_error: Normalized squared error at ``k = 1 .. K`` model steps.
        hold_baseline: The same error for holding the first latent (no prediction).
        probe_r2: Held-out R² of the linear probe, per state dimension (NaN: constant target).
        probe_r2_mean: Mean of the defined entries of ``probe_r2``.
        seconds: Wall-clock time of the evaluation.
    """

    env_id: str | None
    obs_mode: str
    num_val_episodes: int
    num_windows: int
    env_steps_per_model_step: int
    prediction_error: tuple[float, ...]
    hold_baseline: tuple[float, ...]
    probe_r2: tuple[float, ...]
    probe_r2_mean: float
    seconds: float

    def table(self) -> str:
        """A short human-readable table."""
        lines = [
            f"offline evaluation on {self.num_val_episodes} held-out episodes "
            f"({self.num_windows} windows, {self.obs_mode} model, "
            f"{self.env_steps_per_model_step} env steps per model step)",
            "  k   prediction error   hold-first-latent baseline   (normalized by latent variance)",
        ]
        for k, (error, baseline) in enumerate(
            zip(self.prediction_error, self.hold_baseline, strict=True), start=1
        ):
            lines.append(f"  {k:<3d} {error:>16.4f}   {baseline:>26.4f}")
        r2 = ", ".join(f"{value:.3f}" for value in self.probe_r2)
        lines.append(f"linear probe latent -> state, held-out R²: {self.probe_r2_mean:.3f} ({r2})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None)."""
        data = dataclasses.asdict(self)
        data["probe_r2"] = [None if math.isnan(v) else v for v in self.probe_r2]
        data["probe_r2_mean"] = None if math.isnan(self.probe_r2_mean) else self.probe_r2_mean
        return data

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically."""
        path = Path(path)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1))
        return path


def _windows(run: Run, config: OfflineConfig) -> tuple[np.ndarray, np.ndarray]:
    """Held-out windows of ``K + 1`` frames: obs (W, K+1, *obs) and action blocks (W, K, .)."""
    model = run.model
    frameskip = model.action_block // run.dataset.action_block  # rows per model step
    try:
        sampler = WindowSampler(
            run.dataset, run.val_ids, config.horizon + 1, frameskip, config.batch_size, run.obs_mode
        )
    except ValueError as error:
        raise ValueError(
            f"held-out episodes are too short for {config.horizon}-step rollouts ({error}); "
            "use a smaller --horizon"
        ) from None
    rows = sampler.window_rows
    if len(rows) > config.max_windows:
        rng = np.random.default_rng(config.seed)
        rows = np.sort(rng.choice(rows, config.max_windows, replace=False))
    batch = sampler.gather(rows)
    return batch.obs, batch.actions[:, : config.horizon]


@torch.inference_mode()
def _prediction_errors(
    run: Run, config: OfflineConfig
) -> tuple[tuple[float, ...], tuple[float, ...], int]:
    """(normalized error per k, hold baseline per k, number of windows)."""
    model = run.model
    obs, actions = _windows(run, config)  # (W, K+1, *obs), (W, K, block·A)
    dtype = torch.uint8 if run.obs_mode == "pixels" else torch.float32
    truths, predictions = [], []
    for start in range(0, obs.shape[0], config.batch_size):
        chunk = torch.as_tensor(obs[start : start + config.batch_size])  # (b, K+1, *obs)
        chunk = chunk.to(model.device, dtype)
        count, steps = chunk.shape[0], chunk.shape[1]
        z = model.encode(chunk.reshape(count * steps, *chunk.shape[2:]))  # (b·(K+1), D)
        z = z.reshape(count, steps, -1)  # (b, K+1, D)
        blocks = torch.as_tensor(actions[start : start + config.batch_size], device=model.device)
        predictions.append(model.rollout(z[:, 0], blocks.float()))  # (b, K+1, D)
        truths.append(z)
    truth = torch.cat(truths).double()  # (W, K+1, D)
    predicted = torch.cat(predictions).double()  # (W, K+1, D)
    variance = truth.reshape(-1, truth.shape[-1]).var(dim=0).sum().clamp_min(1e-12)  # scalar
    error = (predicted - truth).pow(2).sum(dim=-1).mean(dim=0) / variance  # (K+1,)
    hold = (truth[:, :1] - truth).pow(2).sum(dim=-1).mean(dim=0) / variance  # (K+1,)
    # index 0 is the start itself (error 0): report k = 1 .. K
    return tuple(error[1:].tolist()), tuple(hold[1:].tolist()), int(truth.shape[0])


@torch.inference_mode()
def _probe_r2(run: Run, config: OfflineConfig) -> tuple[float, ...]:
    """Held-out R² per state dimension of a linear probe fitted on training episodes."""
    model, dataset = run.model, run.dataset
    probe = fit_probe_from_dataset(
        model, dataset, run.train_ids, "state", kind="linear",
        max_samples=config.probe_samples, seed=config.seed,
    )  # fmt: skip
    slices = [dataset.episode_slice(int(episode)) for episode in run.val_ids]
    rows = np.concatenate([np.arange(part.start, part.stop) for part in slices])  # (M,)
    if len(rows) > config.probe_samples:
        rng = np.random.default_rng(config.seed + 1)
        rows = np.sort(rng.choice(rows, config.probe_samples, replace=False))
    source = dataset.pixels if run.obs_mode == "pixels" else dataset.state.astype(np.float32)
    chunks = []
    for start in range(0, len(rows), config.batch_size):
        obs = torch.as_tensor(source[rows[start : start + config.batch_size]])  # (b, *obs)
        chunks.append(model.encode(obs.to(model.device)))  # (b, D)
    latents = torch.cat(chunks)  # (M, D)
    prediction = probe(latents).double().cpu().numpy()  # (M, Ds)
    target = dataset.state[rows]  # (M, Ds)
    residual = ((prediction - target) ** 2).sum(axis=0)  # (Ds,)
    total = ((target - target.mean(axis=0)) ** 2).sum(axis=0)  # (Ds,)
    return tuple(
        1.0 - float(r) / float(t) if t > 0 else math.nan
        for r, t in zip(residual, total, strict=True)
    )


def evaluate_offline(run: Run, config: OfflineConfig | None = None) -> OfflineReport:
    """Prediction error and probe R² of a run's model on its held-out episodes.

    Args:
        run: The model and its data (:func:`lewm_mpc.runs.load_run`).
        config: Settings (default :class:`OfflineConfig`).

    Returns:
        The report; ``report.table()`` formats it.

    Raises:
        ValueError: Held-out episodes too short for ``horizon`` model steps.
    """
    config = config or OfflineConfig()
    started = time.perf_counter()
    training = run.model.training
    run.model.eval()
    try:
        error, hold, num_windows = _prediction_errors(run, config)
        r2 = _probe_r2(run, config)
    finally:
        run.model.train(training)
    defined = [value for value in r2 if not math.isnan(value)]
    return OfflineReport(
        env_id=run.dataset.meta.env_id,
        obs_mode=run.obs_mode,
        num_val_episodes=len(run.val_ids),
        num_windows=num_windows,
        env_steps_per_model_step=run.model.action_block,
        prediction_error=error,
        hold_baseline=hold,
        probe_r2=r2,
        probe_r2_mean=sum(defined) / len(defined) if defined else math.nan,
        seconds=time.perf_counter() - started,
    )
