"""Bring your own model: a hand-written Two-Room world model planned with CEM, MPPI and Adam.

The planners accept any object with the members of ``lewm_mpc.types.LatentWorldModel``
(``latent_dim``, ``action_dim``, ``action_block``, ``action_low``, ``action_high``, ``device``,
``encode`` and ``rollout``); nothing has to subclass a lewm_mpc class. Here the model is known
physics: the latent is the agent's position, and the rollout integrates the actions against the
arena's walls in torch ops, so gradients flow to the actions for the gradient planner. The task
energy is our own too (any callable with the ``Energy`` signature): the distance through the door.

python examples/04_bring_your_own_model.py            # 10 episodes per planner
python examples/04_bring_your_own_model.py --smoke    # 2 episodes per planner, seconds
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

import lewm_mpc as lm
from lewm_mpc.control import run_episode
from lewm_mpc.envs import get_env_spec
from lewm_mpc.recipes import SMOKE_NOTICE


@dataclass(frozen=True)
class Args:
    episodes: int = 10  # control episodes per planner
    budget: int = 60  # env steps per episode
    seed: int = 0
    smoke: bool = False  # 2 short episodes per planner


class PointMassModel:
    """Two-Room as a point mass: latent = agent (x, y); one model step = ``action_block``
    env steps of ``pos += speed * clip(action)``, stopped by the arena's walls.

    It mirrors ``lewm_mpc.envs.two_room.move`` (collision as an axis-aligned square, x moved
    before y) with ``torch.where``/``clamp``, so a batch of S plans rolls out at once and the
    result is differentiable in the actions (zero gradient along a blocked direction).

    Args:
        config: the env's geometry and speed (``env.unwrapped.config``).
        action_block: env actions per model step.
    """

    def __init__(self, config: lm.envs.TwoRoomConfig, action_block: int = 5) -> None:
        self.config = config
        self._action_block = action_block

    # --- what the planners read: sizes, bounds, device ---------------------------------------
    @property
    def latent_dim(self) -> int:
        return 2  # (x, y)

    @property
    def action_dim(self) -> int:
        return 2  # (dx, dy) in [-1, 1]

    @property
    def action_block(self) -> int:
        return self._action_block

    @property
    def action_low(self) -> torch.Tensor:
        return torch.full((2,), -1.0)

    @property
    def action_high(self) -> torch.Tensor:
        return torch.full((2,), 1.0)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Optional: lets the planner reject observations of the wrong shape."""
        return (2,)

    # --- the model itself -----------------------------------------------------------------------
    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """State observations (B, 2) are already the latent (B, 2)."""
        return obs.float()

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(S, 2) start positions, (S, H, block * 2) action blocks -> (S, H + 1, 2) positions."""
        num, horizon = actions.shape[:2]
        steps = actions.reshape(num, horizon, self.action_block, 2)  # (S, H, block, 2)
        pos, latents = z0, [z0]
        for block in range(horizon):
            for step in range(self.action_block):
                pos = self._move(pos, steps[:, block, step])  # (S, 2)
            latents.append(pos)
        return torch.stack(latents, dim=1)  # (S, H + 1, 2)

    def _move(self, pos: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """One env step for S agents: (S, 2), (S, 2) -> (S, 2)."""
        c, r = self.config, self.config.agent_radius
        x, y = pos.unbind(dim=-1)  # (S,) each
        dx, dy = (c.speed * action.clamp(-1.0, 1.0)).unbind(dim=-1)
        new_x = (x + dx).clamp(r, 1.0 - r)
        outside_door = (y - r < c.door_low) | (y + r > c.door_high)  # the wall blocks x motion
        new_x = torch.where(outside_door & (x < 0.5), new_x.clamp(max=c.wall_left - r), new_x)
        new_x = torch.where(outside_door & (x >= 0.5), new_x.clamp(min=c.wall_right + r), new_x)
        new_y = (y + dy).clamp(r, 1.0 - r)
        in_doorway = (new_x - r < c.wall_right) & (new_x + r > c.wall_left)
        door_y = new_y.clamp(c.door_low + r, c.door_high - r)  # between the door posts
        new_y = torch.where(in_doorway, door_y, new_y)
        return torch.stack([new_x, new_y], dim=-1)


@dataclass(frozen=True)
class DoorwayDistance:
    """Task energy (the ``lewm_mpc.types.Energy`` protocol): squared path length to the goal,
    through the door when the goal is in the other room.

    A straight-line distance pulls an agent in the wrong room into the wall, a local minimum no
    short plan escapes; the path through the door has none. Like ``lm.GoalDistance``, the
    final step counts fully and the mean over the earlier steps is added (arrive early).

    Attributes:
        door: centre of the door gap (x, y).
    """

    door: tuple[float, float] = (0.5, 0.5)

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        """(S, H + 1, 2) positions, (S, H, block * 2) actions, (S, 2) goals -> (S,)."""
        door, goal = latents.new_tensor(self.door), goal[:, None]  # (2,), (S, 1, 2)
        straight = (latents - goal).norm(dim=-1)  # (S, H + 1)
        via_door = (latents - door).norm(dim=-1) + (goal - door).norm(dim=-1)
        other_room = (latents[..., 0] < 0.5) != (goal[..., 0] < 0.5)
        distance = torch.where(other_room, via_door, straight)[:, 1:] ** 2  # (S, H)
        return distance[:, -1] + distance[:, :-1].mean(dim=1)


def main(args: Args) -> None:
    if args.smoke:
        print(SMOKE_NOTICE)
    env = get_env_spec("tworoom").make(obs_mode="state")  # observations: agent (x, y)
    model = PointMassModel(env.unwrapped.config)
    assert isinstance(model, lm.LatentWorldModel)  # structural typing: no lewm_mpc base class
    energy = DoorwayDistance()
    samples, iterations = (64, 5) if args.smoke else (200, 10)
    planners = {
        "CEM": lm.CEM(model, num_samples=samples, iterations=iterations, topk=samples // 10,
                      energy=energy, seed=args.seed),
        "MPPI": lm.MPPI(model, num_samples=samples, iterations=iterations, energy=energy,
                        seed=args.seed),
        "Gradient": lm.GradientPlanner(model, restarts=4, iterations=3 * iterations,
                                       energy=energy, seed=args.seed),
    }  # fmt: skip
    episodes, budget = (2, 40) if args.smoke else (args.episodes, args.budget)
    for name, planner in planners.items():
        successes, steps, latencies = 0, 0, []
        for episode in range(episodes):
            obs, info = env.reset(seed=args.seed + episode)  # random start and goal
            goal = env.unwrapped.goal_state  # the goal as a state observation
            played = run_episode(env, planner, obs, info, goal, max_steps=budget)
            successes += played.succeeded
            steps += len(played.actions)
            latencies.extend(played.plan_seconds)
        print(
            f"{name}: success {successes}/{episodes}, {steps / episodes:.0f} steps per episode, "
            f"plan latency {1000 * sum(latencies) / len(latencies):.0f} ms"
        )
    env.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=Args.episodes)
    parser.add_argument("--budget", type=int, default=Args.budget)
    parser.add_argument("--seed", type=int, default=Args.seed)
    parser.add_argument("--smoke", action="store_true")
    main(Args(**vars(parser.parse_args())))
