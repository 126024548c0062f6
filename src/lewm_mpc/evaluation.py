"""The evaluation protocol (LeWorldModel's, with its known flaws fixed).

Start/goal pairs come from held-out validation episodes: the start is a random step, the goal
the state ``goal_offset`` env steps later in the same episode. Pairs whose start already
satisfies the success test are skipped (and counted). Each pair gets ``budget`` env steps of
MPC; success means the env's success test held at some step.

LeWorldModel's evaluation keeps those solved starts (they count as successes): for Cube, where a
quarter of the 25-step pairs of the expert data leave the cube where it was, that is worth about
20 points. ``EvalConfig(solved_starts="keep")`` draws the pairs that way.

``EvalConfig(pairs_from="train")`` draws the pairs from the training episodes instead, as
LeWorldModel's evaluation does: for a like-for-like comparison with its published numbers, to be
reported apart from the held-out ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.control import Episode, run_episode
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.data.regenerated import HELDOUT_SEED_BASE as HELDOUT_SEED_BASE
from lewm_mpc.envs import EnvSpec
from lewm_mpc.pairs import RANDOM_GOAL_SEED_BASE as RANDOM_GOAL_SEED_BASE
from lewm_mpc.pairs import Pair as Pair
from lewm_mpc.pairs import heldout_pairs as heldout_pairs
from lewm_mpc.pairs import pair_episode_ids as pair_episode_ids
from lewm_mpc.pairs import random_goal_pairs as random_goal_pairs
from lewm_mpc.pairs import sample_pairs as sample_pairs
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
        pairs_from: the episodes pairs come from: ``"val"``, the held-out ones (default), or
            ``"train"``, the training ones (LeWorldModel's protocol).
        goals: ``"offset"``: the state ``goal_offset`` steps on in an episode (default);
            ``"random"``: anywhere the env draws a goal (:func:`random_goal_pairs`;
            ``goal_offset`` unused).
        solved_starts: ``"skip"``: pairs whose start already satisfies the success test are
            skipped and counted (default); ``"keep"``: they are kept and count as solved at
            step 0, as in LeWorldModel's evaluation (which counts them after its first step).
    """

    num_pairs: int = 50
    goal_offset: int = 25
    budget: int = 50
    seed: int = 0
    val_fraction: float = 0.1
    split_seed: int = 0
    deadline_s: float | None = None
    pairs_from: Literal["val", "train"] = "val"
    goals: Literal["offset", "random"] = "offset"
    solved_starts: Literal["skip", "keep"] = "skip"

    def __post_init__(self) -> None:
        for name in ("num_pairs", "goal_offset", "budget"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pairs_from not in ("val", "train"):
            raise ValueError(f"pairs_from must be 'val' or 'train', got {self.pairs_from!r}")
        if self.goals not in ("offset", "random"):
            raise ValueError(f"goals must be 'offset' or 'random', got {self.goals!r}")
        if self.solved_starts not in ("skip", "keep"):
            raise ValueError(f"solved_starts must be 'skip' or 'keep', got {self.solved_starts!r}")


@dataclass(frozen=True)
class PairResult:
    """Outcome of MPC on one pair."""

    episode: int
    start_step: int
    success: bool
    steps_to_success: int | None
    plan_seconds: tuple[float, ...]
    energy_evals: int

    @classmethod
    def from_episode(cls, pair: Pair, episode: Episode) -> PairResult:
        """The outcome of ``episode``, run on ``pair``."""
        return cls(
            episode=pair.episode, start_step=pair.start_step, success=episode.succeeded,
            steps_to_success=episode.steps_to_success,
            plan_seconds=tuple(float(s) for s in episode.plan_seconds),
            energy_evals=sum(plan.energy_evals for plan in episode.plans),
        )  # fmt: skip


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

    @property
    def pairs_from(self) -> str:
        """``"val"`` or ``"train"``: the episodes the pairs came from."""
        return str(self.config.get("pairs_from", "val"))

    def summary(self) -> str:
        """One human-readable line."""
        low, high = self.ci95
        steps = "n/a" if self.steps_to_success_mean is None else f"{self.steps_to_success_mean:.1f}"
        source = "" if self.pairs_from == "val" else " (pairs from training episodes, as LeWM)"
        if self.config.get("goals") == "random":
            source += " (random goals)"
        if self.config.get("solved_starts") == "keep":
            solved = sum(r.steps_to_success == 0 for r in self.pairs)
            starts = f"kept {solved} solved starts (counted as successes, as LeWM)"
        else:
            starts = f"skipped {self.skipped_solved} solved starts"
        return (
            f"{self.env_id}{source}: success {self.successes}/{self.num_pairs} = "
            f"{100 * self.success_rate:.1f}% (95% CI {100 * low:.1f}-{100 * high:.1f}), "
            f"steps-to-success {steps}, plan latency p50 {1000 * self.latency_p50_s:.0f} ms "
            f"p95 {1000 * self.latency_p95_s:.0f} ms, {starts}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``pairs_from`` at the top: which episodes the pairs came from)."""
        return {"pairs_from": self.pairs_from, **dataclasses.asdict(self)}

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


def goal_observation(env: Any, goal_state: np.ndarray) -> np.ndarray:
    """The observation the env shows when its state is ``goal_state``."""
    obs, _ = env.reset(options={"state": goal_state, "goal": goal_state})
    return np.asarray(obs).copy()


def run_pair(env: Any, planner: Planner, pair: Pair, config: EvalConfig) -> Episode:
    """MPC on one pair (the env is reset to the pair's start with its goal set).

    Raises:
        ValueError: the env's time limit is shorter than ``config.budget`` (it would end the
            episode early; make it with ``EnvSpec.make_for_budget``).
    """
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
        dataset: the dataset the model was trained on; pairs come from its validation split
            (or its training episodes, ``config.pairs_from="train"``).
        spec: the environment.
        config: protocol settings.
        obs_mode: "pixels" or "state", matching the model.
        progress: show a progress bar over pairs.
        on_episode: called as ``on_episode(index, pair, episode)`` after each pair (e.g. to
            render a video), so callers need not re-run episodes.
        episode_ids: the model's held-out episodes (e.g. ``load_run(...).val_ids``): pairs
            come from them, or with ``config.pairs_from="train"`` from all the other episodes;
            default: the validation split of ``config.val_fraction`` and ``config.split_seed``.
    """
    config = config or EvalConfig()
    source_ids = pair_episode_ids(dataset, config, episode_ids)
    pairs, skipped = sample_pairs(dataset, source_ids, spec, config)
    return evaluate_pairs(
        planner, pairs, spec, config, obs_mode, dataset.meta.env_config, skipped, progress,
        on_episode,
    )  # fmt: skip


def evaluate_pairs(
    planner: Planner,
    pairs: Sequence[Pair],
    spec: EnvSpec,
    config: EvalConfig | None = None,
    obs_mode: str = "pixels",
    env_config: Mapping[str, Any] | None = None,
    skipped_solved: int = 0,
    progress: bool = True,
    on_episode: Callable[[int, Pair, Episode], None] | None = None,
    done: Sequence[PairResult] = (),
) -> EvalReport:
    """Run the protocol on given pairs (e.g. from :func:`heldout_pairs`) and aggregate.

    Args:
        planner: Any planner (its model decides the observation kind).
        pairs: The start/goal pairs.
        spec: The environment.
        config: Protocol settings (``budget``, ``deadline_s``; recorded in the report).
        obs_mode: ``"pixels"`` or ``"state"``, matching the model.
        env_config: The env's config fields (the model's ``run_meta.env_config``).
        skipped_solved: Solved starts skipped while drawing ``pairs`` (reported).
        progress: Show a progress bar over pairs.
        on_episode: Called as ``on_episode(index, pair, episode)`` after each pair.
        done: Results of the first ``len(done)`` pairs from an interrupted run (resuming it):
            those pairs are not run again and count in the report as given. Restore the
            planner's RNG state as it was after them for a bit-identical resume.
    """
    config = config or EvalConfig()
    if len(done) > len(pairs):
        raise ValueError(f"done holds {len(done)} results but there are only {len(pairs)} pairs")
    for result, pair in zip(done, pairs[: len(done)], strict=True):
        if (result.episode, result.start_step) != (pair.episode, pair.start_step):
            raise ValueError(
                f"done does not match pairs: a result for episode {result.episode} step "
                f"{result.start_step}, expected episode {pair.episode} step {pair.start_step}"
            )
    started = time.perf_counter()
    env = spec.make_for_budget(config.budget, obs_mode, env_config)
    results: list[PairResult] = list(done)
    try:
        remaining = list(enumerate(pairs))[len(done) :]
        for index, pair in tqdm(remaining, desc="eval", disable=not progress, dynamic_ncols=True):
            episode = run_pair(env, planner, pair, config)
            if on_episode is not None:
                on_episode(index, pair, episode)
            results.append(PairResult.from_episode(pair, episode))
    finally:
        env.close()
    return _aggregate(spec.gym_id, results, skipped_solved, config, planner, started)


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
