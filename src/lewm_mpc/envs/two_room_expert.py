"""Noisy scripted expert for Two-Room data collection."""

from __future__ import annotations

import numpy as np

from lewm_mpc.envs.two_room import TwoRoomConfig, room_of, sample_free_position


class TwoRoomExpert:
    """Goes to random targets anywhere in the arena, through the door when needed, noisily.

    For each target it samples a speed scale in [0.5, 1]. If the target is in the other room it
    heads for a waypoint just before the door until it is level with the door gap, then for a
    waypoint just after the door, then for the target. Actions are proportional control toward
    the current waypoint plus Gaussian noise; with probability ``random_action_prob`` per step it
    starts a burst of 3-10 uniformly random actions. A new target is drawn within
    ``target_tolerance`` of the current one. All randomness comes from the generator given to
    ``reset``.

    Args:
        config: Geometry of the environment being driven.
        noise_std: Standard deviation of the Gaussian action noise.
        random_action_prob: Per-step probability of starting a random-action burst.
        target_tolerance: Distance at which a target counts as reached.
    """

    def __init__(
        self,
        config: TwoRoomConfig,
        noise_std: float = 0.3,
        random_action_prob: float = 0.1,
        target_tolerance: float = 0.05,
    ) -> None:
        if not (np.isfinite(noise_std) and noise_std >= 0):
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
        if not 0.0 <= random_action_prob <= 1.0:
            raise ValueError(f"random_action_prob must be in [0, 1], got {random_action_prob!r}")
        if not target_tolerance > 0:
            raise ValueError(f"target_tolerance must be > 0, got {target_tolerance!r}")
        self.config = config
        self.noise_std = float(noise_std)
        self.random_action_prob = float(random_action_prob)
        self.target_tolerance = float(target_tolerance)
        # Level with the door: the agent square fits in the gap with a margin.
        self._door_band = config.door_width / 2 - config.agent_radius - 0.25 * config.agent_radius
        self._door_offset = config.wall_thickness / 2 + config.agent_radius + 0.05
        self._rng: np.random.Generator | None = None
        self._target: np.ndarray | None = None
        self._speed_scale = 1.0
        self._burst_left = 0

    def reset(self, rng: np.random.Generator) -> None:
        """Starts an episode: takes ownership of ``rng`` and forgets the current target."""
        self._rng = rng
        self._target = None
        self._burst_left = 0

    def act(self, state: np.ndarray) -> np.ndarray:
        """Returns the action for agent position ``state`` (2,), float32 (2,) in [-1, 1]."""
        if self._rng is None:
            raise RuntimeError("call reset(rng) before act()")
        rng = self._rng
        pos = np.asarray(state, dtype=np.float64)
        if self._burst_left > 0 or rng.random() < self.random_action_prob:
            if self._burst_left == 0:
                self._burst_left = int(rng.integers(3, 11))
            self._burst_left -= 1
            return rng.uniform(-1.0, 1.0, size=2).astype(np.float32)
        if self._target is None or np.linalg.norm(self._target - pos) < self.target_tolerance:
            self._target = sample_free_position(self.config, rng)
            self._speed_scale = float(rng.uniform(0.5, 1.0))
        delta = self._waypoint(pos) - pos
        distance = float(np.linalg.norm(delta))
        # Full speed when far, proportional within one step of the waypoint.
        action = self._speed_scale * delta / max(distance, self.config.speed)
        action = action + self.noise_std * rng.standard_normal(2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _waypoint(self, pos: np.ndarray) -> np.ndarray:
        """The point to head for now: the target, or a door waypoint if it is in the other room."""
        assert self._target is not None
        target_room = room_of(self._target)
        if room_of(pos) == target_room:
            return self._target
        level_with_door = abs(pos[1] - self.config.door_center) <= self._door_band
        side = 1.0 if target_room == 1 else -1.0  # +1: after the door is to the right
        x = 0.5 + (side if level_with_door else -side) * self._door_offset
        return np.array([x, self.config.door_center])
