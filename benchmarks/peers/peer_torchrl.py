"""torchrl 0.14.1's ``CEMPlanner`` on our model and energy.

The planner needs an env it can roll out with any batch size: :class:`LatentPlanningEnv` is that
env. Its state holds the trajectory so far (latents, action blocks), the goal latent and the step
index, and the reward is zero except at the last planned step, where it is minus our energy of the
whole trajectory, so the planner's return is exactly minus our energy. The planner steps the env
once per action block; two ways to put our model there:

* ``rollout="fused"`` (default): a step only records its action block (the state's latents are
  just the start latent); the last step rolls the whole plan out in one ``model.rollout`` call
  (the fused rollout ours and stable-worldmodel's adapter use). Same objective, torchrl's
  per-step env loop intact.
* ``rollout="stepped"``: a step is our predictor's one-block step
  (:meth:`adapters.BlockDynamics.step_trajectory`) on the latents so far.

``CEMPlanner`` returns only the first action of its final mean. The env records the candidates
and energies of the last rollout, and :class:`TorchRLCEMPlanner` recovers the whole final mean
from them (the mean of the ``top_k`` best, the planner's own update), checking that its first
block is the action the planner returned.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from adapters import ROLLOUTS, BlockDynamics, PlanScorer, TrajectoryEnergy
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs import EnvBase
from torchrl.modules.planners import CEMPlanner

import lewm_mpc as lm
from lewm_mpc.types import Energy


def version() -> str:
    """Installed torchrl version."""
    from importlib.metadata import version as dist_version

    return dist_version("torchrl")


class LatentPlanningEnv(EnvBase):
    """Our model as a batch-unlocked torchrl env over latent trajectories.

    Args:
        dynamics: the one-block step.
        energy: our energy over trajectories.
        horizon: planned blocks H (the reward comes at step H).
        low: (block * A,) lower action bound.
        high: (block * A,) upper action bound.
        fused: roll the plan out in one ``model.rollout`` at the last step (its latents are
            then (1, D), the start only) instead of one predictor step per env step.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> LatentPlanningEnv:
        return super().__new__(cls, *args, _batch_locked=False, **kwargs)

    def __init__(
        self,
        dynamics: BlockDynamics,
        energy: TrajectoryEnergy,
        horizon: int,
        low: torch.Tensor,
        high: torch.Tensor,
        fused: bool = True,
    ) -> None:
        super().__init__(device=low.device)
        self.dynamics, self.energy, self.horizon, self.fused = dynamics, energy, horizon, fused
        dim, block_dim = dynamics.latent_dim, dynamics.block_dim
        self.observation_spec = Composite(
            latents=Unbounded((1 if fused else horizon + 1, dim)),
            blocks=Unbounded((horizon, block_dim)),
            goal=Unbounded((dim,)),
            step=Unbounded((1,), dtype=torch.int64),
        )
        self.action_spec = Bounded(low=low, high=high, shape=(block_dim,))
        self.reward_spec = Unbounded((1,))
        self.last_blocks: torch.Tensor | None = None  # (*batch, H, bA) of the last rollout
        self.last_energy: torch.Tensor | None = None  # (*batch,)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        if tensordict is None:
            raise ValueError("LatentPlanningEnv starts from a given state; pass a tensordict")
        return tensordict.select(*self.observation_spec.keys()).clone()

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        batch = tensordict.batch_size
        step = tensordict["step"]  # (*batch, 1), equal everywhere
        t = int(step.reshape(-1)[0])
        latents = tensordict["latents"].reshape(-1, *tensordict["latents"].shape[-2:])
        blocks = tensordict["blocks"].reshape(-1, *tensordict["blocks"].shape[-2:])
        action = tensordict["action"].reshape(-1, self.dynamics.block_dim)  # (N, bA)
        goal = tensordict["goal"]
        flat_goal = goal.reshape(-1, goal.shape[-1])  # (N, D)
        last = t + 1 == self.horizon
        if self.fused:  # latents: (N, 1, D), the start only
            blocks = blocks.clone()
            blocks[:, t] = action
            energy = self.energy.of_plans(latents[:, 0], blocks, flat_goal) if last else None
        else:
            latents, blocks = self.dynamics.step_trajectory(latents, blocks, action, t)
            energy = self.energy.of_latents(latents, blocks, flat_goal) if last else None
        reward = latents.new_zeros(latents.shape[0])  # (N,)
        if energy is not None:
            reward = -energy
            self.last_blocks = blocks.reshape(*batch, *blocks.shape[1:])
            self.last_energy = energy.reshape(batch)
        done = torch.zeros((*batch, 1), dtype=torch.bool, device=latents.device)
        return TensorDict(
            {
                "latents": latents.reshape(*batch, *latents.shape[1:]),
                "blocks": blocks.reshape(*batch, *blocks.shape[1:]),
                "goal": goal,
                "step": step + 1,
                "reward": reward.reshape(*batch, 1),
                "done": done,
                "terminated": done.clone(),
            },
            batch_size=batch,
        )

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            torch.manual_seed(seed)


class TorchRLCEMPlanner:
    """torchrl's CEMPlanner, planning from raw observations like ``planner.plan``.

    Args:
        model: our world model.
        kwargs: ``planning_horizon``, ``optim_steps``, ``num_candidates``, ``top_k``,
            ``rollout`` ("fused" or "stepped"; from ``adapters.peer_budgets``).
        energy: task energy.
    """

    def __init__(
        self, model: lm.WorldModel, kwargs: dict[str, Any], energy: Energy | None = None
    ) -> None:
        kwargs = dict(kwargs)
        rollout = kwargs.pop("rollout", "fused")
        if rollout not in ROLLOUTS:
            raise ValueError(f"rollout must be one of {ROLLOUTS}, got {rollout!r}")
        self.scorer = PlanScorer(model, energy)
        dynamics = BlockDynamics(model)
        self.horizon = int(kwargs["planning_horizon"])
        self.top_k = int(kwargs["top_k"])
        self.fused = rollout == "fused"
        self.env = LatentPlanningEnv(
            dynamics, TrajectoryEnergy(dynamics, energy), self.horizon,
            self.scorer.low, self.scorer.high, fused=self.fused,
        )  # fmt: skip
        self.planner = CEMPlanner(self.env, **kwargs)
        self._dim, self._block_dim = dynamics.latent_dim, dynamics.block_dim

    def reset(self, seed: int) -> None:
        """Seed torch's global RNG (the planner samples from it)."""
        torch.manual_seed(seed)

    def plan(self, obs: np.ndarray, goal: np.ndarray) -> torch.Tensor:
        """Raw observations -> (H, block * A) plan (the planner's final mean)."""
        z0, z_goal = self.scorer.encode(obs, goal)  # (1, D) each
        latents = z0.new_zeros(1, 1 if self.fused else self.horizon + 1, self._dim)
        latents[:, 0] = z0
        state = TensorDict(
            {
                "latents": latents,
                "blocks": z0.new_zeros(1, self.horizon, self._block_dim),
                "goal": z_goal,
                "step": torch.zeros(1, 1, dtype=torch.int64, device=z0.device),
            },
            batch_size=[1],
        )
        with torch.inference_mode():
            first = self.planner(state)["action"][0]  # (bA,)
        return self._final_mean(first)

    def _final_mean(self, first: torch.Tensor) -> torch.Tensor:
        """Mean of the last iteration's top-k candidates: (H, bA)."""
        assert self.env.last_blocks is not None and self.env.last_energy is not None
        blocks, energy = self.env.last_blocks[0], self.env.last_energy[0]  # (S, H, bA), (S,)
        elite = torch.topk(-energy, self.top_k).indices  # highest return = lowest energy
        mean = blocks[elite].mean(dim=0)  # (H, bA)
        projected = self.env.action_spec.project(mean[0])
        if not torch.allclose(projected, first, atol=1e-5):
            raise RuntimeError(
                "recovered CEM mean disagrees with torchrl's returned action: "
                f"{projected.tolist()} vs {first.tolist()}"
            )
        return mean
