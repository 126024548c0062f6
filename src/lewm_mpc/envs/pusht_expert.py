"""Scripted, noisy pusher for PushT data collection (random actions almost never move the T)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lewm_mpc.envs.pusht_geometry import (
    AGENT_HIGH,
    AGENT_LOW,
    AGENT_RADIUS,
    TEE_OUTLINE,
    PushTConfig,
    block_to_world,
    rotate,
    tee_distance,
    world_to_block,
)

_TEE_COG = np.array([[0.0, 45.0]])  # block frame, gym-pusht's centre of gravity
_SAFE_RADIUS = 77.0 + AGENT_RADIUS + 12.0  # the T fits in a 77 px disk about its cog
_EDGES = np.roll(TEE_OUTLINE, -1, axis=0) - TEE_OUTLINE  # (8, 2)
_EDGE_LENGTHS = np.linalg.norm(_EDGES, axis=1)  # (8,)
_TASK_DRAWS = 10  # fresh tasks tried in one step before falling back to a random action


class PushTExpert:
    """Repeatedly picks a push on the T and carries it out, with noise.

    A push is a contact point drawn uniformly on the T's outline, a direction within
    ``max_push_angle`` of the inward normal there, and a length in ``push_length`` px (pushes
    that would drive the block's centre near a wall are redrawn). The agent goes to a stand-off
    point behind the contact (tracking the block; around it along a circle when the straight
    path would hit it), then moves along the push direction until it has travelled the length,
    lost the block, or run out of steps. With probability ``free_move_prob`` a task is instead a
    move of the agent alone to a random point. Each task has a speed in [0.5, 1]; actions get
    Gaussian noise (``noise_std``), and with probability ``random_action_prob`` per step a burst
    of 2-6 uniform random actions starts. All randomness comes from the generator given to
    ``reset``.

    Args:
        config: Config of the env being driven (its ``action_scale``).
        noise_std: Standard deviation of the Gaussian action noise.
        random_action_prob: Per-step probability of starting a random-action burst.
        free_move_prob: Probability that a new task is an agent-only move.
        max_push_angle: Largest angle between the push and the inward normal, rad.
        push_length: Range of push lengths, px.
        gain: Proportional gain from waypoint offset (in units of ``action_scale``) to action.
    """

    def __init__(
        self,
        config: PushTConfig,
        noise_std: float = 0.15,
        random_action_prob: float = 0.03,
        free_move_prob: float = 0.15,
        max_push_angle: float = math.radians(35.0),
        push_length: tuple[float, float] = (30.0, 150.0),
        gain: float = 2.0,
    ) -> None:
        if not (np.isfinite(noise_std) and noise_std >= 0):
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
        for name, prob in (("random_action_prob", random_action_prob),
                           ("free_move_prob", free_move_prob)):  # fmt: skip
            if not 0.0 <= prob <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {prob!r}")
        if not 0.0 <= max_push_angle < math.pi / 2:
            raise ValueError(f"max_push_angle must be in [0, pi/2), got {max_push_angle!r}")
        if not 0 < push_length[0] <= push_length[1]:
            raise ValueError(f"push_length must be 0 < low <= high, got {push_length!r}")
        if not gain > 0:
            raise ValueError(f"gain must be > 0, got {gain!r}")
        self.config = config
        self.noise_std = float(noise_std)
        self.random_action_prob = float(random_action_prob)
        self.free_move_prob = float(free_move_prob)
        self.max_push_angle = float(max_push_angle)
        self.push_length = (float(push_length[0]), float(push_length[1]))
        self.gain = float(gain)
        self._rng: np.random.Generator | None = None
        self._mode: str | None = None  # "move", "approach" or "push"

    @classmethod
    def from_env(cls, env: Any) -> PushTExpert:
        """The policy with default settings for ``env`` (an unwrapped PushT env)."""
        return cls(env.config)

    def reset(self, rng: np.random.Generator) -> None:
        """Starts an episode: takes ownership of ``rng`` and forgets the current task."""
        self._rng = rng
        self._mode = None
        self._burst_left = 0

    def act(self, state: np.ndarray) -> np.ndarray:
        """Returns the action for the env state (10,), float32 (2,) in [-1, 1]."""
        if self._rng is None:
            raise RuntimeError("call reset(rng) before act()")
        rng = self._rng
        state = np.asarray(state, dtype=np.float64)
        if self._burst_left > 0 or rng.random() < self.random_action_prob:
            if self._burst_left == 0:
                self._burst_left = int(rng.integers(2, 7))
            self._burst_left -= 1
            return rng.uniform(-1.0, 1.0, size=2).astype(np.float32)
        action = self._task_action(state) if self._mode is not None else None
        for _ in range(_TASK_DRAWS):
            if action is not None:
                break
            # No task, or the task just ended; a fresh task can also end at once (a move
            # target next to the agent, a push from a stand-off it cannot hold).
            self._new_task(state)
            action = self._task_action(state)
        if action is None:
            action = rng.uniform(-1.0, 1.0, size=2)
        action = action + self.noise_std * rng.standard_normal(2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    # ------------------------------------------------------------------------------ tasks
    def _new_task(self, state: np.ndarray) -> None:
        rng = self._rng
        assert rng is not None
        self._steps = 0
        self._speed = float(rng.uniform(0.5, 1.0))
        if rng.random() < self.free_move_prob:
            self._mode = "move"
            self._target = rng.uniform(AGENT_LOW + 20.0, AGENT_HIGH - 20.0, size=2)
            return
        self._mode = "approach"
        center = np.array([256.0, 256.0])
        best, best_miss = None, np.inf
        for _ in range(20):
            contact, normal = self._sample_contact()
            direction = rotate(-normal, rng.uniform(-self.max_push_angle, self.max_push_angle))
            standoff = contact - (AGENT_RADIUS + 6.0) * direction
            if tee_distance(standoff[None])[0] < AGENT_RADIUS + 2.0:
                continue  # behind a concave corner: the agent would not fit there
            length = rng.uniform(*self.push_length)
            end = block_to_world(state, _TEE_COG)[0] + length * rotate(direction, state[4])
            miss = np.abs(end - center).max() - 146.0  # > 0: the cog would end near a wall
            if miss < best_miss:
                best, best_miss = (standoff, direction, length), miss
            if miss <= 0.0:
                break
        if best is None:  # every draw was behind a corner: push on the bar's top edge
            best = (np.array([0.0, -AGENT_RADIUS - 6.0]), np.array([0.0, 1.0]), 50.0)
        self._standoff, self._direction_local, self._length = best

    def _sample_contact(self) -> tuple[np.ndarray, np.ndarray]:
        """A point uniform on the T's outline and the outward normal there (block frame)."""
        rng = self._rng
        assert rng is not None
        edge = int(rng.choice(len(_EDGES), p=_EDGE_LENGTHS / _EDGE_LENGTHS.sum()))
        point = TEE_OUTLINE[edge] + rng.random() * _EDGES[edge]
        tangent = _EDGES[edge] / _EDGE_LENGTHS[edge]
        normal = np.array([tangent[1], -tangent[0]])  # outward for this (y-down) winding
        return point, normal

    def _task_action(self, state: np.ndarray) -> np.ndarray | None:
        """The action for the current task, or None when the task is over."""
        self._steps += 1
        agent = state[:2]
        if self._mode == "move":
            if np.linalg.norm(self._target - agent) < 8.0 or self._steps > 40:
                return None
            return self._toward(agent, self._target)
        if self._mode == "approach":
            standoff = block_to_world(state, self._standoff[None])[0]
            if self._steps > 60:
                return None
            if np.linalg.norm(standoff - agent) < 8.0:  # in place: start pushing
                self._mode, self._steps = "push", 0
                self._push_start = agent.copy()
                self._push_direction = rotate(self._direction_local, state[4])
            else:
                return self._toward(agent, self._approach_waypoint(state, agent, standoff))
        travelled = float(np.dot(agent - self._push_start, self._push_direction))
        lost = tee_distance(world_to_block(state, agent[None]))[0] > AGENT_RADIUS + 30.0
        if travelled >= self._length or lost or self._steps > 40:
            return None
        return self._speed * self._push_direction

    def _approach_waypoint(
        self, state: np.ndarray, agent: np.ndarray, standoff: np.ndarray
    ) -> np.ndarray:
        """The stand-off point, or a detour around the block if the straight path hits it."""
        path = agent + np.linspace(0.0, 1.0, 12)[:-1, None] * (standoff - agent)  # (11, 2)
        if tee_distance(world_to_block(state, path)).min() > AGENT_RADIUS + 1.0:
            return standoff
        cog = block_to_world(state, _TEE_COG)[0]
        here = math.atan2(agent[1] - cog[1], agent[0] - cog[0])
        there = math.atan2(standoff[1] - cog[1], standoff[0] - cog[0])
        turn = (there - here + math.pi) % (2 * math.pi) - math.pi
        angle = here + math.copysign(min(abs(turn), 0.9), turn)
        return cog + _SAFE_RADIUS * np.array([math.cos(angle), math.sin(angle)])

    def _toward(self, agent: np.ndarray, waypoint: np.ndarray) -> np.ndarray:
        """Proportional action toward ``waypoint``, its norm capped at the task's speed."""
        action = self.gain * (waypoint - agent) / self.config.action_scale
        norm = float(np.linalg.norm(action))
        return action if norm <= self._speed else action * (self._speed / norm)
