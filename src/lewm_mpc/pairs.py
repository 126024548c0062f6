"""Where start/goal pairs come from.

:func:`sample_pairs` draws them from a dataset's episodes (:func:`pair_episode_ids` picks the
held-out or the training ones), :func:`heldout_pairs` from freshly generated held-out episodes,
and :func:`random_goal_pairs` from the env's own random start and goal. :mod:`lewm_mpc.evaluation`
runs MPC on them (and re-exports these names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lewm_mpc.data import EpisodeDataset, episode_seed
from lewm_mpc.data.regenerated import HELDOUT_SEED_BASE
from lewm_mpc.envs import EnvSpec

if TYPE_CHECKING:  # annotations only: evaluation imports this module
    from lewm_mpc.evaluation import EvalConfig

RANDOM_GOAL_SEED_BASE = 2 * HELDOUT_SEED_BASE  # random-goal resets: apart from every other seed


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
    """Draw distinct pairs; returns them and the number of solved starts skipped.

    Starts that already satisfy the success test are skipped and counted, unless
    ``config.solved_starts == "keep"`` (LeWorldModel's sampling: every pair kept).

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
        if config.solved_starts == "skip" and spec.is_success(start_state, goal_state):
            skipped += 1
            continue
        if accept is not None and not accept(start_state, goal_state):
            continue
        pairs.append(Pair(episode, start * block, start_state, goal_state))
    if len(pairs) < config.num_pairs:
        kind = "" if config.solved_starts == "keep" else "non-trivial "
        raise ValueError(
            f"could only draw {len(pairs)} {kind}pairs of the {config.num_pairs} asked "
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
    keep_solved: bool = False,
) -> tuple[list[Pair], int]:
    """The protocol's pairs from freshly generated held-out episodes (no dataset needed).

    Episode ``i`` is rolled out as collection would with base seed ``HELDOUT_SEED_BASE + seed``
    (env reset with ``episode_seed(base, i)``, the data policy with ``default_rng([base, i])``),
    in state mode (no rendering). Its start step is drawn uniformly over those a collected
    episode of the env's recipe length offers, and it runs just until the goal, ``goal_offset``
    steps later. Starts that already satisfy the success test are skipped (and counted) unless
    ``keep_solved`` (LeWorldModel's sampling). The pairs depend only on the arguments.
    ``lewm_mpc.data.regenerated`` collects the same episodes whole, as a dataset.

    Args:
        spec: The environment.
        num_pairs: Non-trivial pairs to return.
        seed: Seeds the episodes (offset from ``HELDOUT_SEED_BASE``).
        policy: Data policy name (the one that generated the model's training data; ``None``:
            the env's default).
        env_config: The env's config fields (the model's ``run_meta.env_config``).
        goal_offset: Env steps between start and goal.
        keep_solved: Keep starts that already satisfy the success test.

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
    base = HELDOUT_SEED_BASE + seed
    # Goals beyond the registered time limit: the episode runs past it (the expert's stream,
    # and so every shorter pair, is unchanged).
    env = spec.make_for_budget(max(length, goal_offset), "state", env_config)
    expert = spec.make_expert(env, policy)

    def draw(episode: int) -> tuple[int, np.ndarray, np.ndarray] | None:
        # Goals farther than a recipe episode: starts in its first steps, the episode longer.
        starts = max(length - goal_offset, 1)
        start = int(np.random.default_rng([base, episode, 1]).integers(starts))
        env.reset(seed=episode_seed(base, episode))
        expert.reset(np.random.default_rng([base, episode]))
        states = [_state(env)]
        for _ in range(start + goal_offset):
            action = np.asarray(expert.act(states[-1]), dtype=np.float32).reshape(-1)
            _, _, terminated, truncated, _ = env.step(action)
            states.append(_state(env))
            if terminated or truncated:
                break
        if len(states) <= start + goal_offset:  # ended before the goal
            return None
        return start, states[start], states[start + goal_offset]

    return _draw_pairs(spec, env, num_pairs, draw, keep_solved)


def random_goal_pairs(
    spec: EnvSpec,
    num_pairs: int,
    seed: int = 0,
    env_config: Mapping[str, Any] | None = None,
    keep_solved: bool = False,
) -> tuple[list[Pair], int]:
    """Pairs whose goal is anywhere: the env's own random start and goal (``env.reset``).

    Two-Room: any point of either room; Reacher: any joint configuration; PushT: any block
    pose; Cube: any target. Episode ``i`` is reset with ``episode_seed(RANDOM_GOAL_SEED_BASE +
    seed, i)``; starts that already satisfy the success test are skipped (and counted) unless
    ``keep_solved``.
    ``Pair.start_step`` is 0 and ``Pair.episode`` the reset index.
    """
    if num_pairs < 1 or seed < 0:
        raise ValueError(f"num_pairs must be >= 1 and seed >= 0, got {num_pairs}, {seed}")
    env = spec.make(obs_mode="state", env_config=env_config)

    def draw(episode: int) -> tuple[int, np.ndarray, np.ndarray]:
        env.reset(seed=episode_seed(RANDOM_GOAL_SEED_BASE + seed, episode))
        goal_state = np.array(env.unwrapped.goal_state, dtype=np.float64).reshape(-1)
        return 0, _state(env), goal_state

    return _draw_pairs(spec, env, num_pairs, draw, keep_solved)


def _state(env: Any) -> np.ndarray:
    return np.array(env.unwrapped.get_state(), dtype=np.float64).reshape(-1)


def _draw_pairs(
    spec: EnvSpec,
    env: Any,
    num_pairs: int,
    draw: Callable[[int], tuple[int, np.ndarray, np.ndarray] | None],
    keep_solved: bool = False,
) -> tuple[list[Pair], int]:
    """Up to ``20 * num_pairs`` episodes of ``draw(episode) -> (start step, start, goal)``
    (None: no pair), solved starts skipped and counted unless ``keep_solved``; closes ``env``.

    Raises:
        ValueError: fewer than ``num_pairs`` non-trivial pairs.
    """
    pairs: list[Pair] = []
    skipped = 0
    try:
        for episode in range(20 * num_pairs):
            if len(pairs) == num_pairs:
                break
            drawn = draw(episode)
            if drawn is None:
                continue
            start, start_state, goal_state = drawn
            if not keep_solved and spec.is_success(start_state, goal_state):
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
