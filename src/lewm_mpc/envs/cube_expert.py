"""Noisy scripted pick-and-place for Cube data collection: OGBench's Markov cube oracle."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle

from lewm_mpc.envs.cube import CUBE_POS, CubeEnv


@contextlib.contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """Seeds NumPy's global generator inside the block and restores its state afterwards.

    OGBench's oracles draw from ``np.random``; this routes those draws through the policy's own
    generator without disturbing anyone else's use of the global one.
    """
    saved = np.random.get_state()  # noqa: NPY002 (OGBench draws from the global generator)
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(saved)  # noqa: NPY002


class CubeExpert:
    """Picks the cube up and places it at random targets, again and again, noisily.

    Wraps OGBench's closed-loop ``CubeMarkovOracle`` (move above the cube, descend, grasp, lift,
    carry, lower, release, retreat to a random pose). Each target is a random spot on the table
    (OGBench's target sampling area, at least ``min_travel`` from the cube) with a random yaw;
    a new one is drawn when the oracle is done (the cube placed and the arm retreated, or 200
    steps). Gaussian noise of a per-episode standard deviation drawn in ``[0, noise_std]``
    (times ``noise_scale`` per action entry) is added to the oracle's action, and with
    probability ``random_action_prob`` per step a burst of 2-5 uniformly random actions
    replaces it. All randomness comes from the generator given to ``reset`` (the oracle's own
    ``np.random`` draws are seeded from it).

    Two settings are registered as data policies: ``"ogbench"`` (the defaults: noise up to
    0.2 on every entry and random bursts, a wide spread of situations) and ``"ogbench-lewm"``
    (:meth:`lewm`: the settings stable-worldmodel collects LeWorldModel's Cube data with,
    OGBench's own: noise up to 0.1 scaled (1, 1, 1, 3, 10) for (x, y, z, yaw, gripper), no
    random actions).

    The oracle reads OGBench's info dict (effector pose, gripper contact, cube pose), which is
    not all in the env state, so the expert keeps a reference to the env it drives and
    ``act(state)`` must be given that env's current state (as data collection does).

    Args:
        env: The (unwrapped) Cube env being driven.
        noise_std: Upper bound of the per-episode action-noise standard deviation.
        random_action_prob: Per-step probability of starting a random-action burst.
        min_travel: Minimum distance (m) between the cube and a new target.
        noise_scale: Per-entry factors of the noise's standard deviation, 5 values >= 0.
    """

    def __init__(
        self,
        env: CubeEnv,
        noise_std: float = 0.2,
        random_action_prob: float = 0.02,
        min_travel: float = 0.1,
        noise_scale: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0),
    ) -> None:
        if not isinstance(env, CubeEnv):
            raise TypeError(f"CubeExpert drives a CubeEnv (unwrapped), got {type(env).__name__}")
        if not (np.isfinite(noise_std) and noise_std >= 0):
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
        if not 0.0 <= random_action_prob <= 1.0:
            raise ValueError(f"random_action_prob must be in [0, 1], got {random_action_prob!r}")
        if not (np.isfinite(min_travel) and 0 <= min_travel <= 0.3):
            raise ValueError(f"min_travel must be in [0, 0.3] m, got {min_travel!r}")
        scale = np.asarray(noise_scale, dtype=np.float64)
        if scale.shape != (5,) or not (np.all(np.isfinite(scale)) and np.all(scale >= 0)):
            raise ValueError(
                f"noise_scale must be 5 finite values >= 0 (x, y, z, yaw, gripper), got "
                f"{noise_scale!r}"
            )
        self.noise_scale = scale
        self.env = env
        self.noise_std = float(noise_std)
        self.random_action_prob = float(random_action_prob)
        self.min_travel = float(min_travel)
        self._oracle = CubeMarkovOracle(env=env.sim)
        self._rng: np.random.Generator | None = None
        self._episode_noise = 0.0
        self._target: tuple[np.ndarray, float] | None = None
        self._burst_left = 0

    @classmethod
    def from_env(cls, env: Any) -> CubeExpert:
        """The policy with default settings for ``env`` (the unwrapped Cube env it drives)."""
        return cls(env)

    @classmethod
    def lewm(cls, env: Any) -> CubeExpert:
        """OGBench's collection settings, which LeWorldModel's Cube data uses: per-episode noise
        up to 0.1, scaled (1, 1, 1, 3, 10) for (x, y, z, yaw, gripper), no random actions."""
        return cls(env, noise_std=0.1, random_action_prob=0.0, noise_scale=(1, 1, 1, 3, 10))

    def reset(self, rng: np.random.Generator) -> None:
        """Starts an episode: takes ``rng``, draws the noise level, forgets the target."""
        self._rng = rng
        self._episode_noise = float(rng.uniform(0.0, self.noise_std))
        self._target = None
        self._burst_left = 0

    def act(self, state: np.ndarray) -> np.ndarray:
        """Returns the action for the env's current ``state`` (69,), float32 (5,) in [-1, 1]."""
        if self._rng is None:
            raise RuntimeError("call reset(rng) before act()")
        state = np.asarray(state, dtype=np.float64)
        if not np.array_equal(state, self.env.get_state()):
            raise ValueError(
                "CubeExpert acts on the env it was made for: pass that env's current state "
                "(env.unwrapped.get_state())"
            )
        rng = self._rng
        if self._burst_left > 0 or rng.random() < self.random_action_prob:
            if self._burst_left == 0:
                self._burst_left = int(rng.integers(2, 6))
            self._burst_left -= 1
            return rng.uniform(-1.0, 1.0, size=5).astype(np.float32)
        info = self.env.ogbench_info()
        if self._target is None or self._oracle.done:
            self._target = self._sample_target(state[CUBE_POS], rng)
            self._with_target(info)
            with _global_numpy_seed(int(rng.integers(2**32))):
                self._oracle.reset(None, info)  # draws the retreat pose from np.random
        self._with_target(info)
        action = np.asarray(self._oracle.select_action(None, info), dtype=np.float64)
        action = action + self._episode_noise * self.noise_scale * rng.standard_normal(5)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _sample_target(
        self, cube: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, float]:
        low, high = self.env.sim._target_sampling_bounds
        for _ in range(100):
            xy = rng.uniform(low, high)
            if np.linalg.norm(xy - cube[:2]) >= self.min_travel:
                break
        return np.array([xy[0], xy[1], 0.02]), float(rng.uniform(-np.pi, np.pi))

    def _with_target(self, info: dict[str, Any]) -> None:
        """Points the oracle at the expert's own target instead of the env's goal."""
        assert self._target is not None
        position, yaw = self._target
        info["privileged/target_block"] = 0
        info["privileged/target_block_pos"] = position.copy()
        info["privileged/target_block_yaw"] = np.array([yaw])
