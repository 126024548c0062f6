"""Noisy scripted expert for Two-Room data collection."""

from __future__ import annotations

from typing import Any

import numpy as np

from lewm_mpc.envs.two_room_geometry import TwoRoomConfig, room_of, sample_free_position


class TwoRoomExpert:
    """Goes to random targets anywhere in the arena, through the door when needed, noisily.

    With probability ``edge_target_prob`` a target is moved against the walls of its room (one
    coordinate, or both: a corner), so the data also covers the states along walls and in corners
    that goal-directed motion through the interior rarely visits (an encoder never shown them
    misplaces them, which breaks probes and guardrails there). For each target it samples a speed
    scale in [0.5, 1]. If the target is in the other room it
    heads for a waypoint just before the door until it is level with the door gap, then for a
    waypoint just after the door, then for the target. Actions are proportional control toward
    the current waypoint plus Gaussian noise; with probability ``random_action_prob`` per step it
    starts a burst of 3-10 uniformly random actions. A new target is drawn within
    ``target_tolerance`` of the current one (wall targets: see ``edge_target_prob``). All
    randomness comes from the generator given to ``reset``.

    Args:
        config: Geometry of the environment being driven.
        noise_std: Standard deviation of the Gaussian action noise.
        random_action_prob: Per-step probability of starting a random-action burst.
        target_tolerance: Distance at which a target counts as reached.
        edge_target_prob: Probability that a target is pushed against its room's walls.
    """

    def __init__(
        self,
        config: TwoRoomConfig,
        noise_std: float = 0.3,
        random_action_prob: float = 0.1,
        target_tolerance: float = 0.05,
        edge_target_prob: float = 0.3,
    ) -> None:
        if not (np.isfinite(noise_std) and noise_std >= 0):
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
        for name, prob in (
            ("random_action_prob", random_action_prob),
            ("edge_target_prob", edge_target_prob),
        ):
            if not 0.0 <= prob <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {prob!r}")
        if not target_tolerance > 0:
            raise ValueError(f"target_tolerance must be > 0, got {target_tolerance!r}")
        self.config = config
        self.noise_std = float(noise_std)
        self.random_action_prob = float(random_action_prob)
        self.target_tolerance = float(target_tolerance)
        self.edge_target_prob = float(edge_target_prob)
        # Level with the door: the agent square fits in the gap with a margin.
        self._door_band = config.door_width / 2 - config.agent_radius - 0.25 * config.agent_radius
        self._door_offset = config.wall_thickness / 2 + config.agent_radius + 0.05
        self._rng: np.random.Generator | None = None
        self._target: np.ndarray | None = None
        self._tolerance = self.target_tolerance
        self._speed_scale = 1.0
        self._burst_left = 0

    @classmethod
    def from_env(cls, env: Any) -> TwoRoomExpert:
        """The policy with default settings for ``env`` (an unwrapped Two-Room env)."""
        return cls(env.config)

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
        if self._target is None or np.linalg.norm(self._target - pos) < self._tolerance:
            self._target, self._tolerance = self._sample_target(rng)
            self._speed_scale = float(rng.uniform(0.5, 1.0))
        delta = self._waypoint(pos) - pos
        distance = float(np.linalg.norm(delta))
        # Full speed when far, proportional within one step of the waypoint.
        action = self._speed_scale * delta / max(distance, self.config.speed)
        action = action + self.noise_std * rng.standard_normal(2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _sample_target(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """A target and its tolerance: a free position or, with ``edge_target_prob``, one moved
        against its room's walls and reached to within a third of a step (so the agent touches
        the wall instead of turning ``target_tolerance`` away from it)."""
        target = sample_free_position(self.config, rng)
        if rng.random() >= self.edge_target_prob:
            return target, self.target_tolerance
        c = self.config
        room_x = (
            (c.agent_radius, c.wall_left - c.agent_radius)
            if room_of(target) == 0
            else (c.wall_right + c.agent_radius, 1.0 - c.agent_radius)
        )
        limits = (room_x, (c.agent_radius, 1.0 - c.agent_radius))  # agent-centre range per axis
        axes = (0, 1) if rng.random() < 0.3 else (int(rng.integers(2)),)  # a corner or one wall
        for axis in axes:
            target[axis] = limits[axis][int(rng.integers(2))]
        return target, min(self.target_tolerance, self.config.speed / 3)

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
