"""Goal-directed, noisy pusher for PushT data: pushes the T to random target poses.

In gym-pusht's world the block is quasi-static (the space's damping of 0 removes all velocity
every substep) and contacts are frictionless (the shapes' friction is 0), so a push at a point
of the T's outline applies an impulse along the inward normal there, and the block's twist per
unit of normal push is fixed in the block frame: with ``r`` the contact point from the centre of
gravity, ``k = r x n`` and ``rho^2 = I / m`` (3000 px^2), the centre of gravity moves
``j n`` and the angle ``j k / rho^2`` with ``j = 1 / (1 + k^2 / rho^2)``. The policy scores every
contact by how much of the remaining pose error (position and ``rho``-scaled angle) the best
push there removes under this linear model, minus the cost of walking there, and re-plans every
few steps from the current state.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lewm_mpc.envs.pusht_geometry import (
    AGENT_HIGH,
    AGENT_LOW,
    AGENT_RADIUS,
    TEE_BOXES,
    PushTConfig,
    block_to_world,
    rotate,
    tee_distance,
    world_to_block,
    wrap_angle,
)

_COG = np.array([0.0, 45.0])  # block frame, gym-pusht's centre of gravity
_RHO2 = 3000.0  # moment of inertia over mass of gym-pusht's T, px^2
_SAFE_RADIUS = 77.0 + AGENT_RADIUS + 12.0  # the T fits in a 77 px disk about its cog
_STANDOFF = 8.0  # gap between the agent and the outline before a push, px
_STEP_PX = 16.0  # agent travel per step at |action| = 1 with the default action scale, px
_TARGET_LOW, _TARGET_HIGH = 130.0, 382.0  # range of the target's cog, px: away from walls
# Edges the agent disk can touch (block frame): (start, end, outward normal). Near the concave
# corners under the bar the disk hits the other edge first, so those parts are left out.
_SEGMENTS = [
    ((-60, 0), (60, 0), (0, -1)), ((60, 0), (60, 30), (1, 0)), ((30, 30), (60, 30), (0, 1)),
    ((15, 45), (15, 120), (1, 0)), ((-15, 120), (15, 120), (0, 1)),
    ((-15, 45), (-15, 120), (-1, 0)), ((-60, 30), (-30, 30), (0, 1)),
    ((-60, 0), (-60, 30), (-1, 0)),
]  # fmt: skip


def _contact_table(spacing: float = 6.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contact points (K, 2), outward normals (K, 2) and twists per px of push (K, 3)."""
    points, normals = [], []
    for start, end, normal in _SEGMENTS:
        start, end = np.array(start, float), np.array(end, float)
        count = int(np.linalg.norm(end - start) // spacing) + 1
        for fraction in np.linspace(0.02, 0.98, count):
            points.append(start + fraction * (end - start))
            normals.append(np.array(normal, float))
    points, normals = np.stack(points), np.stack(normals)  # (K, 2) each
    arm = points - _COG  # (K, 2)
    torque = arm[:, 0] * -normals[:, 1] + arm[:, 1] * normals[:, 0]  # r x n_in, (K,)
    impulse = 1.0 / (1.0 + torque**2 / _RHO2)  # (K,)
    twists = np.concatenate([-normals * impulse[:, None], (impulse * torque / _RHO2)[:, None]], 1)
    return points, normals, twists  # twist: (cog dx, cog dy, dangle) per px of push


_POINTS, _NORMALS, _TWISTS = _contact_table()


def _escape_direction(local: np.ndarray) -> np.ndarray:
    """Unit vector (2,) from the T's nearest point to the block-frame point ``local`` (2,)."""
    delta = local - TEE_BOXES[:, :2]  # (2 boxes, 2)
    outside = np.sign(delta) * np.maximum(np.abs(delta) - TEE_BOXES[:, 2:], 0.0)  # (2, 2)
    nearest = outside[np.argmin(np.linalg.norm(outside, axis=1))]
    if not np.any(nearest):  # inside the T (penetrating): away from the cog
        nearest = local - _COG
    return nearest / (np.linalg.norm(nearest) + 1e-9)


class PushTGoalExpert:
    """Repeatedly draws a target pose for the T and pushes the T there, with noise.

    A target is a block pose with its cog uniform in [130, 382]^2 px and a uniform angle, at
    least ``min_travel`` px or ``min_rotation`` rad from the current pose. Every
    ``replan_every`` pushing steps each contact on the outline is scored by the fraction of the
    pose error (cog position and ``angle_weight * rho * angle``) its best push would remove,
    minus ``approach_cost`` per 100 px of walking round the block to it, plus ``switch_margin``
    for the contact being pushed; the choice is random among contacts within a fraction
    ``contact_slack`` of the best. The agent walks briskly to a stand-off point off the contact
    (round the block when the straight path cuts it), then pushes along the inward normal at
    the target's speed, tracking the contact. A target ends when the block origin is within
    ``reach_distance`` px and ``reach_angle`` rad of it, or after ``max_target_steps`` steps.
    Noise: a per-episode action noise std drawn in ``noise_std``, a per-target push speed drawn
    in ``speed``, and a burst of 2-5 uniform random actions starting with probability
    ``burst_prob`` per step. All randomness comes from the generator given to ``reset``.

    Args:
        config: Config of the env being driven (its ``action_scale``).
        noise_std: Range (low, high) of the per-episode Gaussian action noise std.
        burst_prob: Per-step probability of starting a random-action burst.
        speed: Range (low, high) of the per-target push speed (action norm), in (0, 1].
        max_target_steps: Steps allowed per target before the next one is drawn.
        reach_distance: Block position tolerance of a reached target, px.
        reach_angle: Block angle tolerance of a reached target, rad.
        min_travel: Least cog travel of a new target, px (unless it rotates enough) ...
        min_rotation: ... or least rotation, rad, in [0, pi/2].
        replan_every: Pushing steps between contact choices.
        angle_weight: Weight of the rho-scaled angle error against the position error.
        approach_cost: Score lost per 100 px of walking to a contact.
        contact_slack: Relative score slack of the contacts chosen among.
        switch_margin: Score bonus of the contact being pushed (hysteresis).
    """

    def __init__(
        self,
        config: PushTConfig,
        noise_std: tuple[float, float] = (0.05, 0.2),
        burst_prob: float = 0.02,
        speed: tuple[float, float] = (0.6, 1.0),
        max_target_steps: int = 150,
        reach_distance: float = 15.0,
        reach_angle: float = math.pi / 12,
        min_travel: float = 50.0,
        min_rotation: float = math.pi / 4,
        replan_every: int = 3,
        angle_weight: float = 1.3,
        approach_cost: float = 0.2,
        contact_slack: float = 0.05,
        switch_margin: float = 0.2,
    ) -> None:
        if not (np.all(np.isfinite(noise_std)) and 0.0 <= noise_std[0] <= noise_std[1]):
            raise ValueError(f"noise_std must be 0 <= low <= high, got {noise_std!r}")
        if not 0.0 <= burst_prob <= 1.0:
            raise ValueError(f"burst_prob must be in [0, 1], got {burst_prob!r}")
        if not 0.0 < speed[0] <= speed[1] <= 1.0:
            raise ValueError(f"speed must be 0 < low <= high <= 1, got {speed!r}")
        for name, count in {
            "max_target_steps": max_target_steps,
            "replan_every": replan_every,
        }.items():
            if not (isinstance(count, int) and count >= 1):
                raise ValueError(f"{name} must be an int >= 1, got {count!r}")
        positive = {
            "reach_distance": reach_distance,
            "reach_angle": reach_angle,
            "angle_weight": angle_weight,
        }
        nonnegative = {
            "min_travel": min_travel,
            "approach_cost": approach_cost,
            "contact_slack": contact_slack,
            "switch_margin": switch_margin,
        }
        for name, value in {**positive, **nonnegative}.items():
            if not (np.isfinite(value) and (value > 0 or (name in nonnegative and value == 0))):
                bound = ">= 0" if name in nonnegative else "> 0"
                raise ValueError(f"{name} must be {bound}, got {value!r}")
        if not 0.0 <= min_rotation <= math.pi / 2:
            raise ValueError(f"min_rotation must be in [0, pi/2], got {min_rotation!r}")
        self.config = config
        self.noise_std = (float(noise_std[0]), float(noise_std[1]))
        self.burst_prob = float(burst_prob)
        self.speed = (float(speed[0]), float(speed[1]))
        self.max_target_steps = max_target_steps
        self.reach_distance = float(reach_distance)
        self.reach_angle = float(reach_angle)
        self.min_travel = float(min_travel)
        self.min_rotation = float(min_rotation)
        self.replan_every = replan_every
        self.angle_weight = float(angle_weight)
        self.approach_cost = float(approach_cost)
        self.contact_slack = float(contact_slack)
        self.switch_margin = float(switch_margin)
        self._rng: np.random.Generator | None = None
        self._target: np.ndarray | None = None

    @classmethod
    def from_env(cls, env: Any) -> PushTGoalExpert:
        """The policy with default settings for ``env`` (an unwrapped PushT env)."""
        return cls(env.config)

    @property
    def target(self) -> np.ndarray | None:
        """The current target block pose (x, y, angle) of the block origin, a (3,) copy, or
        None before the first ``act`` of an episode."""
        return None if self._target is None else self._target.copy()

    def reached(self, state: np.ndarray) -> bool:
        """Whether the block of ``state`` (10,) is within the tolerances of the current target."""
        if self._target is None:
            return False
        distance = float(np.linalg.norm(state[2:4] - self._target[:2]))
        angle_error = abs(float(wrap_angle(state[4] - self._target[2])))
        return distance < self.reach_distance and angle_error < self.reach_angle

    def reset(self, rng: np.random.Generator) -> None:
        """Starts an episode: takes ownership of ``rng``, draws its noise std, drops the target."""
        self._rng = rng
        self._target = None
        self._noise = float(rng.uniform(*self.noise_std))
        self._burst_left = 0
        self._contact: int | None = None  # index into the contact table
        self._pushing = False  # False: walking to the contact's stand-off point

    def act(self, state: np.ndarray) -> np.ndarray:
        """Returns the action for the env state (10,), float32 (2,) in [-1, 1]."""
        if self._rng is None:
            raise RuntimeError("call reset(rng) before act()")
        rng = self._rng
        state = np.asarray(state, dtype=np.float64)
        if self._target is None or self.reached(state) or self._steps >= self.max_target_steps:
            self._new_target(state)
        self._steps += 1
        if self._burst_left > 0 or rng.random() < self.burst_prob:
            if self._burst_left == 0:
                self._burst_left = int(rng.integers(2, 6))
            self._burst_left -= 1
            self._contact = None  # the agent has moved off plan: choose again afterwards
            return rng.uniform(-1.0, 1.0, size=2).astype(np.float32)
        action = self._push_action(state)
        action = action + self._noise * rng.standard_normal(2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    # ------------------------------------------------------------------------ planning
    def _new_target(self, state: np.ndarray) -> None:
        rng = self._rng
        assert rng is not None
        cog = block_to_world(state, _COG[None])[0]
        for _ in range(100):
            target_cog = rng.uniform(_TARGET_LOW, _TARGET_HIGH, size=2)
            angle = float(rng.uniform(-math.pi, math.pi))
            travel = np.linalg.norm(target_cog - cog)
            if travel >= self.min_travel or abs(wrap_angle(angle - state[4])) >= self.min_rotation:
                break
        origin = target_cog - rotate(_COG, angle)  # the cog sits at rotate(_COG) from the origin
        self._target = np.array([origin[0], origin[1], angle])
        self._steps = 0
        self._speed = float(rng.uniform(*self.speed))
        self._contact = None

    def _pose_error(self, state: np.ndarray) -> np.ndarray:
        """Target minus current (cog dx, cog dy, weighted rho * dangle), px, (3,)."""
        assert self._target is not None
        target_cog = rotate(_COG, self._target[2]) + self._target[:2]
        cog = block_to_world(state, _COG[None])[0]
        angle = float(wrap_angle(self._target[2] - state[4]))
        return np.array([*(target_cog - cog), self.angle_weight * math.sqrt(_RHO2) * angle])

    def _choose_contact(self, state: np.ndarray) -> None:
        """Scores every contact for the current state and picks one (and its push length)."""
        rng = self._rng
        assert rng is not None
        error = self._pose_error(state)  # (3,)
        twists = np.concatenate([rotate(_TWISTS[:, :2], state[4]), _TWISTS[:, 2:]], 1)  # (K, 3)
        twists[:, 2] *= self.angle_weight * math.sqrt(_RHO2)
        along = twists @ error  # (K,)
        length = np.clip(along / (twists**2).sum(1), 0.0, 80.0)  # best push per contact, px
        gain = (2 * length * along - length**2 * (twists**2).sum(1)) / (error @ error + 1e-9)
        standoffs = block_to_world(state, _POINTS + (AGENT_RADIUS + _STANDOFF) * _NORMALS)
        # Walking distance, going round the cog: radial change plus arc at the smaller radius.
        cog = block_to_world(state, _COG[None])[0]
        agent_polar = state[:2] - cog
        standoff_polar = standoffs - cog  # (K, 2)
        radii = np.linalg.norm(standoff_polar, axis=1)  # (K,)
        agent_radius = float(np.linalg.norm(agent_polar))
        turn = np.abs(wrap_angle(np.arctan2(standoff_polar[:, 1], standoff_polar[:, 0])
                                 - math.atan2(agent_polar[1], agent_polar[0])))  # fmt: skip
        walk = np.abs(radii - agent_radius) + np.minimum(radii, agent_radius) * turn  # (K,)
        score = gain - self.approach_cost * walk / 100.0
        if self._pushing and self._contact is not None:
            score[self._contact] += self.switch_margin  # hysteresis: finish the push
        inside = np.all((standoffs > AGENT_LOW + 2.0) & (standoffs < AGENT_HIGH - 2.0), axis=1)
        score[~inside] = -np.inf
        best = score.max()
        if not np.isfinite(best) or gain[np.argmax(score)] <= 0.01:
            self._contact = None  # nothing helps (e.g. pinned at a wall): wander
            return
        choices = np.flatnonzero(score >= best - self.contact_slack * abs(best))
        self._contact = int(rng.choice(choices))
        self._length = float(length[self._contact])
        straight = np.linalg.norm(standoffs[self._contact] - state[:2])
        self._pushing = bool(straight < _STANDOFF + 6.0)  # already touching it
        self._since_plan = 0

    def _push_action(self, state: np.ndarray) -> np.ndarray:
        """The noise-free action of the current phase (walk to the stand-off, or push)."""
        replan = self._contact is None or (self._pushing and self._since_plan >= self.replan_every)
        if replan:
            self._choose_contact(state)
        if self._contact is None:
            rng = self._rng
            assert rng is not None
            return rng.uniform(-1.0, 1.0, size=2)
        self._since_plan += 1
        agent = state[:2]
        point = block_to_world(state, _POINTS[self._contact][None])[0]
        normal = rotate(_NORMALS[self._contact], state[4])  # outward, world
        if not self._pushing:
            standoff = point + (AGENT_RADIUS + _STANDOFF) * normal
            if np.linalg.norm(standoff - agent) < 5.0:
                self._pushing, self._since_plan = True, 0
            elif self._since_plan > 40:
                self._contact = None  # could not get there: choose again next step
                return np.zeros(2)
            else:
                return self._toward(agent, self._waypoint(state, agent, standoff))
        if tee_distance(world_to_block(state, agent[None]))[0] > AGENT_RADIUS + 20.0:
            self._contact = None  # lost the block
            return np.zeros(2)
        # Track the contact point across the normal; push inward at the planned pace.
        offset = point + AGENT_RADIUS * normal - agent
        lateral = offset - (offset @ normal) * normal
        pace = float(np.clip(self._length / _STEP_PX, 0.15, self._speed))
        action = 2.0 * lateral / self.config.action_scale - pace * normal
        norm = float(np.linalg.norm(action))
        return action if norm <= 1.0 else action / norm

    def _waypoint(self, state: np.ndarray, agent: np.ndarray, standoff: np.ndarray) -> np.ndarray:
        """The stand-off point, or a detour around the block if the straight path cuts it."""
        count = int(np.linalg.norm(standoff - agent) // 5.0) + 2
        path = agent + np.linspace(0.0, 1.0, count)[1:, None] * (standoff - agent)  # (count-1, 2)
        if tee_distance(world_to_block(state, path)).min() > AGENT_RADIUS - 1.0:
            return standoff
        cog = block_to_world(state, _COG[None])[0]
        here = math.atan2(agent[1] - cog[1], agent[0] - cog[0])
        there = math.atan2(standoff[1] - cog[1], standoff[0] - cog[0])
        turn = float(wrap_angle(there - here))
        local = world_to_block(state, agent[None])[0]
        if tee_distance(local[None])[0] < AGENT_RADIUS + 10.0:  # too close to go round: back off
            away = rotate(_escape_direction(local), state[4])
            along = np.array([-math.sin(here), math.cos(here)]) * math.copysign(1.0, turn)
            return agent + 20.0 * away + 10.0 * along
        arc = here + np.linspace(0.0, turn, 12)  # (12,) the short way round, then the long way
        ring = cog + _SAFE_RADIUS * np.stack([np.cos(arc), np.sin(arc)], 1)  # (12, 2)
        if np.any((ring < AGENT_LOW) | (ring > AGENT_HIGH)):
            turn -= math.copysign(2 * math.pi, turn)
        # Beyond the tangent point from the agent the chord would cut the safe circle.
        distance = float(np.linalg.norm(agent - cog))
        reach = math.acos(min(1.0, _SAFE_RADIUS / distance)) + 0.4
        angle = here + math.copysign(min(abs(turn), reach), turn)
        return cog + _SAFE_RADIUS * np.array([math.cos(angle), math.sin(angle)])

    def _toward(self, agent: np.ndarray, waypoint: np.ndarray) -> np.ndarray:
        """Proportional action toward ``waypoint``, its norm capped at 1 (walking is brisk)."""
        action = 2.0 * (waypoint - agent) / self.config.action_scale
        norm = float(np.linalg.norm(action))
        return action if norm <= 1.0 else action / norm
