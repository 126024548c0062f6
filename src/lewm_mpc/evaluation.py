"""The evaluation protocol (LeWorldModel's, with its known flaws fixed).

Start/goal pairs come from held-out validation episodes: the start is a random step, the goal
the state ``goal_offset`` env steps later in the same episode. Pairs whose start already
satisfies the success test are skipped (and counted). Each pair gets ``budget`` env steps of
MPC; success means the env's success test held at some step.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.control import Episode, run_episode
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.envs import EnvSpec
from lewm_mpc.planners.base import Planner


@dataclass(frozen=True)
class EvalConfig:
    """Protocol settings.

    Attributes:
        num_pairs: evaluated (non-trivial) start/goal pairs.
        goal_offset: env steps between start and goal in the source episode.
        budget: env steps of MPC per pair.
        seed: seeds pair sampling.
        val_fraction: validation share used to split episodes (must match training).
        split_seed: seed of that split (must match training).
        deadline_s: optional per-plan deadline.
    """

    num_pairs: int = 50
    goal_offset: int = 25
    budget: int = 50
    seed: int = 0
    val_fraction: float = 0.1
    split_seed: int = 0
    deadline_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("num_pairs", "goal_offset", "budget"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Pair:
    """A start/goal pair taken from a validation episode."""

    episode: int
    start_step: int
    start_state: np.ndarray
    goal_state: np.ndarray


@dataclass(frozen=True)
class PairResult:
    """Outcome of MPC on one pair."""

    episode: int
    start_step: int
    success: bool
    steps_to_success: int | None
    plan_seconds: tuple[float, ...]
    energy_evals: int


@dataclass(frozen=True)
class EvalReport:
    """Aggregate results; ``save`` writes them as JSON."""

    env_id: str
    num_pairs: int
    successes: int
    success_rate: float
    ci95: tuple[float, float]
    skipped_solved: int
    steps_to_success_mean: float | None
    steps_to_success_median: float | None
    latency_p50_s: float
    latency_p95_s: float
    energy_evals_per_plan: float
    seconds: float
    config: dict[str, Any]
    planner: dict[str, Any]
    pairs: tuple[PairResult, ...]

    def summary(self) -> str:
        """One human-readable line."""
        low, high = self.ci95
        steps = "n/a" if self.steps_to_success_mean is None else f"{self.steps_to_success_mean:.1f}"
        return (
            f"{self.env_id}: success {self.successes}/{self.num_pairs} = "
            f"{100 * self.success_rate:.1f}% (95% CI {100 * low:.1f}-{100 * high:.1f}), "
            f"steps-to-success {steps}, plan latency p50 {1000 * self.latency_p50_s:.0f} ms "
            f"p95 {1000 * self.latency_p95_s:.0f} ms, skipped {self.skipped_solved} solved starts"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically."""
        path = Path(path)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1))
        return path


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denom = 1 + z**2 / trials
    center = (p + z**2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denom
    return (max(0.0, center - half), min(1.0, center + half))


def sample_pairs(
    dataset: EpisodeDataset,
    episode_ids: np.ndarray,
    spec: EnvSpec,
    config: EvalConfig,
    accept: Callable[[np.ndarray, np.ndarray], bool] | None = None,
) -> tuple[list[Pair], int]:
    """Draw distinct non-trivial pairs; returns them and the number of solved starts skipped.

    Args:
        dataset: source of episodes.
        episode_ids: episodes to draw from (the validation split).
        spec: the environment (its success test decides which starts are already solved).
        config: protocol settings.
        accept: optional extra filter on (start_state, goal_state), e.g. for a benchmark that
            needs pairs of a certain geometry; rejected pairs are not counted as skipped.
    """
    rng = np.random.default_rng(config.seed)
    # Every (episode, start) whose goal lies inside the episode, visited in a seeded order.
    candidates = [
        (int(e), t)
        for e in episode_ids
        for t in range(dataset.episode_length(int(e)) - config.goal_offset)
    ]
    pairs: list[Pair] = []
    skipped = 0
    for index in rng.permutation(len(candidates)):
        if len(pairs) == config.num_pairs:
            break
        episode, start = candidates[index]
        row = dataset.episode_slice(episode).start + start
        start_state = dataset.state[row].astype(np.float64)
        goal_state = dataset.state[row + config.goal_offset].astype(np.float64)
        if spec.is_success(start_state, goal_state):
            skipped += 1
            continue
        if accept is not None and not accept(start_state, goal_state):
            continue
        pairs.append(Pair(episode, start, start_state, goal_state))
    if len(pairs) < config.num_pairs:
        raise ValueError(
            f"could only draw {len(pairs)} non-trivial pairs of the {config.num_pairs} asked "
            f"from {len(episode_ids)} validation episodes; collect more data or ask for fewer"
        )
    return pairs, skipped


def goal_observation(env: Any, goal_state: np.ndarray) -> np.ndarray:
    """The observation the env shows when its state is ``goal_state``."""
    obs, _ = env.reset(options={"state": goal_state, "goal": goal_state})
    return np.asarray(obs).copy()


def run_pair(env: Any, planner: Planner, pair: Pair, config: EvalConfig) -> Episode:
    """MPC on one pair (the env is reset to the pair's start with its goal set)."""
    goal = goal_observation(env, pair.goal_state)
    obs, info = env.reset(options={"state": pair.start_state, "goal": pair.goal_state})
    return run_episode(env, planner, obs, info, goal, config.budget, deadline_s=config.deadline_s)


def evaluate(
    planner: Planner,
    dataset: EpisodeDataset,
    spec: EnvSpec,
    config: EvalConfig | None = None,
    obs_mode: str = "pixels",
    progress: bool = True,
    on_episode: Callable[[int, Pair, Episode], None] | None = None,
    episode_ids: np.ndarray | None = None,
) -> EvalReport:
    """Run the protocol and aggregate the results.

    Args:
        planner: any planner (its model decides the observation kind).
        dataset: the dataset the model was trained on; pairs come from its validation split.
        spec: the environment.
        config: protocol settings.
        obs_mode: "pixels" or "state", matching the model.
        progress: show a progress bar over pairs.
        on_episode: called as ``on_episode(index, pair, episode)`` after each pair (e.g. to
            render a video), so callers need not re-run episodes.
        episode_ids: the held-out episodes to draw pairs from (e.g. ``load_run(...).val_ids``);
            default: the validation split of ``config.val_fraction`` and ``config.split_seed``.
    """
    config = config or EvalConfig()
    started = time.perf_counter()
    if episode_ids is None:
        _, episode_ids = dataset.split(config.val_fraction, seed=config.split_seed)
    val_ids = np.asarray(episode_ids, dtype=np.int64)
    pairs, skipped = sample_pairs(dataset, val_ids, spec, config)
    env = spec.make(obs_mode=obs_mode, env_config=dataset.meta.env_config)
    results: list[PairResult] = []
    try:
        bar = tqdm(pairs, desc="eval", disable=not progress, dynamic_ncols=True)
        for index, pair in enumerate(bar):
            episode = run_pair(env, planner, pair, config)
            if on_episode is not None:
                on_episode(index, pair, episode)
            results.append(PairResult(
                episode=pair.episode, start_step=pair.start_step, success=episode.succeeded,
                steps_to_success=episode.steps_to_success,
                plan_seconds=tuple(float(s) for s in episode.plan_seconds),
                energy_evals=sum(plan.energy_evals for plan in episode.plans),
            ))  # fmt: skip
    finally:
        env.close()
    return _aggregate(spec.gym_id, results, skipped, config, planner, started)


def _aggregate(
    env_id: str, results: list[PairResult], skipped: int, config: EvalConfig,
    planner: Planner, started: float,
) -> EvalReport:  # fmt: skip
    successes = sum(r.success for r in results)
    steps = [r.steps_to_success for r in results if r.steps_to_success is not None]
    latencies = np.array([s for r in results for s in r.plan_seconds])
    num_plans = max(1, latencies.size)
    return EvalReport(
        env_id=env_id,
        num_pairs=len(results),
        successes=successes,
        success_rate=successes / max(1, len(results)),
        ci95=wilson_interval(successes, len(results)),
        skipped_solved=skipped,
        steps_to_success_mean=float(np.mean(steps)) if steps else None,
        steps_to_success_median=float(np.median(steps)) if steps else None,
        latency_p50_s=float(np.percentile(latencies, 50)) if latencies.size else 0.0,
        latency_p95_s=float(np.percentile(latencies, 95)) if latencies.size else 0.0,
        energy_evals_per_plan=sum(r.energy_evals for r in results) / num_plans,
        seconds=time.perf_counter() - started,
        config=dataclasses.asdict(config),
        planner={"class": type(planner).__name__, **dataclasses.asdict(planner.config)},
        pairs=tuple(results),
    )
