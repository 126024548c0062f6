"""The evaluation protocol (LeWorldModel's, with its known flaws fixed).

Start/goal pairs come from held-out validation episodes: the start is a random step, the goal
the state ``goal_offset`` env steps later in the same episode. Pairs whose start already
satisfies the success test are skipped (and counted). Each pair gets ``budget`` env steps of
MPC; success means the env's success test held at some step.

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
from lewm_mpc.data import EpisodeDataset, episode_seed
from lewm_mpc.data.regenerated import HELDOUT_SEED_BASE
from lewm_mpc.envs import EnvSpec
from lewm_mpc.planners.base import Planner

RANDOM_GOAL_SEED_BASE = 2 * HELDOUT_SEED_BASE  # random-goal resets: apart from every other seed


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

    def __post_init__(self) -> None:
        for name in ("num_pairs", "goal_offset", "budget"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pairs_from not in ("val", "train"):
            raise ValueError(f"pairs_from must be 'val' or 'train', got {self.pairs_from!r}")
        if self.goals not in ("offset", "random"):
            raise ValueError(f"goals must be 'offset' or 'random', got {self.goals!r}")


@dataclass(frozen=True)
class Pair:
    """A start/goal pair taken from a dataset episode.

    Attributes:
        episode: episode id.
        start_step: env step of the start in that episode (its row times the dataset's
            ``action_block``).
        start_state: the start state.
        goal_state: the state ``goal_offset`` env steps later.
    """

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
        return (
            f"{self.env_id}{source}: success {self.successes}/{self.num_pairs} = "
            f"{100 * self.success_rate:.1f}% (95% CI {100 * low:.1f}-{100 * high:.1f}), "
            f"steps-to-success {steps}, plan latency p50 {1000 * self.latency_p50_s:.0f} ms "
            f"p95 {1000 * self.latency_p95_s:.0f} ms, skipped {self.skipped_solved} solved starts"
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


def pair_episode_ids(
    dataset: EpisodeDataset, config: EvalConfig, held_out: np.ndarray | None = None
) -> np.ndarray:
    """The episodes ``config.pairs_from`` names: the held-out ones, or all the others.

    Args:
        dataset: the dataset the model was trained on.
        config: protocol settings.
        held_out: the model's held-out episodes (e.g. ``load_run(...).val_ids``); default: the
            validation split of ``config.val_fraction`` and ``config.split_seed``.

    Returns:
        Sorted int64 episode ids.
    """
    if held_out is None:
        _, held_out = dataset.split(config.val_fraction, seed=config.split_seed)
    held_out = np.asarray(held_out, dtype=np.int64)
    if config.pairs_from == "val":
        return np.sort(held_out)
    return np.setdiff1d(dataset.episode_ids, held_out)  # the training episodes


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
        episode_ids: episodes to draw from (see :func:`pair_episode_ids`).
        spec: the environment (its success test decides which starts are already solved).
        config: protocol settings (``goal_offset`` must be a multiple of the dataset's
            ``action_block``: its rows are that many env steps apart).
        accept: optional extra filter on (start_state, goal_state), e.g. for a benchmark that
            needs pairs of a certain geometry; rejected pairs are not counted as skipped.
    """
    block = dataset.action_block
    if config.goal_offset % block:
        raise ValueError(
            f"goal_offset {config.goal_offset} must be a multiple of the dataset's action_block "
            f"{block} (env steps between its rows)"
        )
    offset = config.goal_offset // block  # in rows
    rng = np.random.default_rng(config.seed)
    # Every (episode, start row) whose goal lies inside the episode, visited in a seeded order.
    candidates = [
        (int(e), t) for e in episode_ids for t in range(dataset.episode_length(int(e)) - offset)
    ]
    pairs: list[Pair] = []
    skipped = 0
    for index in rng.permutation(len(candidates)):
        if len(pairs) == config.num_pairs:
            break
        episode, start = candidates[index]
        row = dataset.episode_slice(episode).start + start
        start_state = dataset.state[row].astype(np.float64)
        goal_state = dataset.state[row + offset].astype(np.float64)
        if spec.is_success(start_state, goal_state):
            skipped += 1
            continue
        if accept is not None and not accept(start_state, goal_state):
            continue
        pairs.append(Pair(episode, start * block, start_state, goal_state))
    if len(pairs) < config.num_pairs:
        raise ValueError(
            f"could only draw {len(pairs)} non-trivial pairs of the {config.num_pairs} asked "
            f"from {len(episode_ids)} episodes; collect more data or ask for fewer"
        )
    return pairs, skipped


def heldout_pairs(
    spec: EnvSpec,
    num_pairs: int,
    seed: int = 0,
    policy: str | None = None,
    env_config: Mapping[str, Any] | None = None,
    goal_offset: int = 25,
) -> tuple[list[Pair], int]:
    """The protocol's pairs from freshly generated held-out episodes (no dataset needed).

    Episode ``i`` is rolled out as collection would with base seed ``HELDOUT_SEED_BASE + seed``
    (env reset with ``episode_seed(base, i)``, the data policy with ``default_rng([base, i])``),
    in state mode (no rendering). Its start step is drawn uniformly over those a collected
    episode of the env's recipe length offers, and it runs just until the goal, ``goal_offset``
    steps later. Starts that already satisfy the success test are skipped (and counted). The
    pairs depend only on the arguments. ``lewm_mpc.data.regenerated`` collects the same
    episodes whole, as a dataset.

    Args:
        spec: The environment.
        num_pairs: Non-trivial pairs to return.
        seed: Seeds the episodes (offset from ``HELDOUT_SEED_BASE``).
        policy: Data policy name (the one that generated the model's training data; ``None``:
            the env's default).
        env_config: The env's config fields (the model's ``run_meta.env_config``).
        goal_offset: Env steps between start and goal.

    Returns:
        The pairs (``Pair.episode`` is the regenerated episode's index) and the number of
        solved starts skipped.

    Raises:
        ValueError: Invalid arguments, or too few non-trivial pairs after ``20 * num_pairs``
            episodes.
    """
    if num_pairs < 1 or goal_offset < 1 or seed < 0:
        raise ValueError(
            f"num_pairs and goal_offset must be >= 1 and seed >= 0, got {num_pairs}, "
            f"{goal_offset}, {seed}"
        )
    length = min(spec.default_episode_steps, spec.max_episode_steps)
    if goal_offset >= spec.max_episode_steps:
        raise ValueError(
            f"goal_offset {goal_offset} must be below {spec.name}'s {spec.max_episode_steps} "
            "steps per episode"
        )
    base = HELDOUT_SEED_BASE + seed
    env = spec.make(obs_mode="state", env_config=env_config)
    expert = spec.make_expert(env, policy)
    pairs: list[Pair] = []
    skipped = 0
    try:
        for episode in range(20 * num_pairs):
            if len(pairs) == num_pairs:
                break
            # Goals farther than a recipe episode: starts in its first steps, the episode longer.
            starts = max(length - goal_offset, 1)
            start = int(np.random.default_rng([base, episode, 1]).integers(starts))
            env.reset(seed=episode_seed(base, episode))
            expert.reset(np.random.default_rng([base, episode]))
            states = [np.array(env.unwrapped.get_state(), dtype=np.float64).reshape(-1)]
            for _ in range(start + goal_offset):
                action = np.asarray(expert.act(states[-1]), dtype=np.float32).reshape(-1)
                _, _, terminated, truncated, _ = env.step(action)
                states.append(np.array(env.unwrapped.get_state(), dtype=np.float64).reshape(-1))
                if terminated or truncated:
                    break
            if len(states) <= start + goal_offset:  # ended before the goal
                continue
            start_state, goal_state = states[start], states[start + goal_offset]
            if spec.is_success(start_state, goal_state):
                skipped += 1
                continue
            pairs.append(Pair(episode, start, start_state, goal_state))
    finally:
        env.close()
    if len(pairs) < num_pairs:
        raise ValueError(
            f"only {len(pairs)} of {num_pairs} regenerated {spec.name} episodes gave a "
            f"non-trivial pair ({skipped} starts already solved); ask for fewer"
        )
    return pairs, skipped


def random_goal_pairs(
    spec: EnvSpec,
    num_pairs: int,
    seed: int = 0,
    env_config: Mapping[str, Any] | None = None,
) -> tuple[list[Pair], int]:
    """Pairs whose goal is anywhere: the env's own random start and goal (``env.reset``).

    Two-Room: any point of either room; Reacher: any joint configuration; PushT: any block
    pose; Cube: any target. Episode ``i`` is reset with ``episode_seed(RANDOM_GOAL_SEED_BASE +
    seed, i)``; starts that already satisfy the success test are skipped (and counted).
    ``Pair.start_step`` is 0 and ``Pair.episode`` the reset index.
    """
    if num_pairs < 1 or seed < 0:
        raise ValueError(f"num_pairs must be >= 1 and seed >= 0, got {num_pairs}, {seed}")
    env = spec.make(obs_mode="state", env_config=env_config)
    pairs: list[Pair] = []
    skipped = 0
    try:
        for episode in range(20 * num_pairs):
            if len(pairs) == num_pairs:
                break
            env.reset(seed=episode_seed(RANDOM_GOAL_SEED_BASE + seed, episode))
            start_state = np.array(env.unwrapped.get_state(), dtype=np.float64).reshape(-1)
            goal_state = np.array(env.unwrapped.goal_state, dtype=np.float64).reshape(-1)
            if spec.is_success(start_state, goal_state):
                skipped += 1
                continue
            pairs.append(Pair(episode, 0, start_state, goal_state))
    finally:
        env.close()
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
    """
    config = config or EvalConfig()
    started = time.perf_counter()
    env = spec.make(obs_mode=obs_mode, env_config=env_config)
    results: list[PairResult] = []
    try:
        for index, pair in enumerate(
            tqdm(pairs, desc="eval", disable=not progress, dynamic_ncols=True)
        ):
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
