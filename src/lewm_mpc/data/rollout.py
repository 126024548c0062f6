"""One deterministic env rollout, recorded as an :class:`~lewm_mpc.data.format.Episode`:
:func:`collect_episode` (with :func:`episode_seed`, the env seed of episode ``i``), the helpers
that read a frame and a state from an env (pixel observations, or ``render_state`` for state
observations), and the action bounds and control rate a dataset records
(:func:`env_action_bounds`, :func:`env_control_hz`). :mod:`lewm_mpc.data.collect` runs it over
chunks of episodes into a dataset file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from lewm_mpc.data.format import PIXELS_KEY, Episode
from lewm_mpc.types import Policy

__all__ = ["collect_episode", "env_action_bounds", "env_control_hz", "episode_seed"]


def episode_seed(seed: int, episode: int) -> int:
    """Seed passed to ``env.reset`` for episode ``episode`` of a collection seeded with ``seed``.

    Args:
        seed: Base seed (>= 0).
        episode: Episode index (>= 0).

    Returns:
        A 32-bit seed derived from ``(seed, episode)`` through ``np.random.SeedSequence``.
    """
    return int(np.random.SeedSequence([seed, episode]).generate_state(1, np.uint32)[0])


def _is_pixels(observation: Any) -> bool:
    """Whether an observation carries a frame (a dict with ``"pixels"``, or a uint8 image)."""
    if isinstance(observation, Mapping):
        return PIXELS_KEY in observation
    array = np.asarray(observation)
    return array.dtype == np.uint8 and array.ndim == 3


def _pixels_of(observation: Any) -> np.ndarray:
    """The uint8 (H, W, 3) frame of an observation (an array or a dict with ``"pixels"``)."""
    if isinstance(observation, Mapping):
        if PIXELS_KEY not in observation:
            raise ValueError(
                f"dict observations must have a {PIXELS_KEY!r} entry, got {list(observation)}"
            )
        observation = observation[PIXELS_KEY]
    pixels = np.asarray(observation)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise ValueError(
            "collection needs pixel observations, uint8 (H, W, 3); "
            f"got {pixels.dtype} {pixels.shape}"
        )
    return pixels.copy()


def env_action_bounds(env: gym.Env) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(low, high)`` of an env's Box action space, as tuples of floats.

    Raises:
        ValueError: The action space is not a 1-D box with finite bounds.
    """
    space = env.action_space
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    if low is None or high is None or np.ndim(low) != 1:
        raise ValueError(f"collection needs a 1-D Box action space, got {space}")
    return tuple(map(float, low)), tuple(map(float, high))


def env_control_hz(env: gym.Env) -> float | None:
    """An env's control rate: its ``render_fps`` (one frame per step), if it declares one."""
    rate = env.unwrapped.metadata.get("render_fps")
    return float(rate) if isinstance(rate, (int, float)) and rate > 0 else None


def _state_of(env: gym.Env) -> np.ndarray:
    return np.array(env.unwrapped.get_state(), dtype=np.float64).reshape(-1)  # (Ds,)


def _frame_of(env: gym.Env, observation: Any, state: np.ndarray) -> np.ndarray:
    """The stored frame: the pixel observation, else ``env.unwrapped.render_state(state)``."""
    if _is_pixels(observation):
        return _pixels_of(observation)
    render_state = getattr(env.unwrapped, "render_state", None)
    if render_state is None:
        return _pixels_of(observation)  # raises: no pixels and no way to draw the state
    return _pixels_of(render_state(state))


def collect_episode(
    env: gym.Env,
    policy: Policy,
    episode_steps: int,
    seed: int,
    episode: int,
    action_block: int = 1,
) -> Episode:
    """Roll out one deterministic episode.

    The env is reset with ``episode_seed(seed, episode)``, the policy with
    ``np.random.default_rng([seed, episode])``; then ``episode_steps`` actions are taken
    (fewer if the env terminates or truncates first). A row is stored every ``action_block``
    actions: its frame and state, and the next ``action_block`` actions concatenated (an
    incomplete last block is dropped). The episode has one more row than blocks; its last row's
    action is NaN. The policy sees the state after every env step, so the trajectory does not
    depend on ``action_block``.

    Args:
        env: Env with ``env.unwrapped.get_state()`` and pixel observations (uint8 (H, W, 3), or
            a dict with a ``"pixels"`` entry) or ``env.unwrapped.render_state(state)``, which
            then draws the stored frames only.
        policy: The acting policy.
        episode_steps: Number of actions (a multiple of ``action_block``).
        seed: Base seed of the collection.
        episode: Episode index.
        action_block: Env actions per stored row.

    Returns:
        The recorded episode.
    """
    observation, _ = env.reset(seed=episode_seed(seed, episode))
    policy.reset(np.random.default_rng([seed, episode]))
    state = _state_of(env)
    frames, states, actions = [_frame_of(env, observation, state)], [state], []
    ended = False
    for _ in range(episode_steps // action_block):
        block = []
        for _ in range(action_block):
            action = np.array(policy.act(state), dtype=np.float32).reshape(-1)  # (A,)
            observation, _, terminated, truncated, _ = env.step(action)
            state = _state_of(env)
            block.append(action)
            ended = terminated or truncated
            if ended:
                break
        if len(block) < action_block:
            break  # the env ended inside a block: the incomplete block is not stored
        actions.append(np.concatenate(block))  # (K * A,)
        frames.append(_frame_of(env, observation, state))
        states.append(state)
        if ended:
            break
    width = actions[0].size if actions else action_block * int(env.action_space.shape[0])
    actions.append(np.full(width, np.nan, dtype=np.float32))  # the last row has no action
    return Episode(pixels=np.stack(frames), state=np.stack(states), action=np.stack(actions))
