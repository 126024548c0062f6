"""pytorch_mppi 0.9.1's MPPI on our model and energy.

Its action is one block of ``action_block`` env actions, flattened. The running cost is zero and
the terminal cost is our whole energy (pytorch_mppi hands the terminal cost every state and
action of its rollout), so it optimizes exactly our objective, plus its own perturbation cost.
pytorch_mppi calls its dynamics once per step, with that step's action only; two ways to put our
model there:

* ``rollout="fused"`` (default): the state is the start latent and the dynamics leaves it as is;
  the terminal cost rolls the stored action blocks out in one ``model.rollout`` call (the fused
  rollout ours and stable-worldmodel's adapter use). Same objective, its per-step loop intact.
* ``rollout="stepped"``: the state is :class:`adapters.BlockDynamics`'s flat state (our latent,
  plus the predictor's history window when the model has one) and the dynamics our predictor's
  one-block step (``step_dependent_dynamics=True`` so the step index reaches it); the terminal
  cost reads the latents out of the stored states.

One ``command()`` call is one sampling round; the adapter refines one nominal plan with
``iterations`` calls (``shift_nominal_trajectory=False``) and returns the whole nominal plan
(``u_per_command = horizon``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from adapters import ROLLOUTS, BlockDynamics, PlanScorer, TrajectoryEnergy
from pytorch_mppi import MPPI

import lewm_mpc as lm
from lewm_mpc.types import Energy


def version() -> str:
    """Installed pytorch_mppi version."""
    from importlib.metadata import version as dist_version

    return dist_version("pytorch_mppi")


class PytorchMppiPlanner:
    """pytorch_mppi's MPPI, planning from raw observations like ``planner.plan``.

    Args:
        model: our world model.
        kwargs: budget (``num_samples``, ``horizon``, ``commands``, ``noise_sigma``,
            ``lambda_``, ``rollout``: "fused" or "stepped") from ``adapters.peer_budgets``.
        energy: task energy.
    """

    def __init__(
        self, model: lm.WorldModel, kwargs: dict[str, Any], energy: Energy | None = None
    ) -> None:
        self.model = model
        self.scorer = PlanScorer(model, energy)
        self.dynamics = BlockDynamics(model)
        self.energy = TrajectoryEnergy(self.dynamics, energy)
        self.commands = int(kwargs["commands"])
        self.horizon = int(kwargs["horizon"])
        rollout = kwargs.get("rollout", "fused")
        if rollout not in ROLLOUTS:
            raise ValueError(f"rollout must be one of {ROLLOUTS}, got {rollout!r}")
        self.fused = rollout == "fused"
        block_dim = self.dynamics.block_dim
        low, high = self.scorer.low, self.scorer.high  # (bA,)
        self.center = (low + high) / 2
        sigma = float(kwargs["noise_sigma"]) * (high - low) / 2  # std in units of half range
        self._z0 = self._goal = torch.zeros(model.latent_dim)
        self.controller = MPPI(
            self._keep_start if self.fused else self.dynamics,
            self._running_cost,
            nx=model.latent_dim if self.fused else self.dynamics.state_dim,
            noise_sigma=torch.diag(sigma.pow(2)),
            num_samples=int(kwargs["num_samples"]),
            horizon=self.horizon,
            device=model.device,
            terminal_state_cost=self._terminal_cost,
            lambda_=float(kwargs["lambda_"]),
            u_min=low,
            u_max=high,
            u_init=self.center.clone(),
            U_init=self.center.expand(self.horizon, block_dim).clone(),
            u_per_command=self.horizon,
            step_dependent_dynamics=True,
        )

    @staticmethod
    def _keep_start(state: torch.Tensor, action: torch.Tensor, t: int) -> torch.Tensor:
        return state  # (K, D) start latents: the terminal cost rolls the whole plan out

    def _running_cost(self, state: torch.Tensor, action: torch.Tensor, t: int) -> torch.Tensor:
        return state.new_zeros(state.shape[0])  # (K,): everything is in the terminal cost

    def _terminal_cost(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        # states (M=1, K, T, nx), actions (1, K, T, bA) -> (K,)
        if self.fused:
            return self.energy.of_plans(self._z0, actions[0], self._goal)
        return self.energy.of_states(self._z0, states[0], actions[0], self._goal)

    def reset(self, seed: int) -> None:
        """Seed torch's global RNG (pytorch_mppi samples from it)."""
        torch.manual_seed(seed)

    def plan(self, obs: np.ndarray, goal: np.ndarray) -> torch.Tensor:
        """Raw observations -> (H, block * A) plan."""
        z0, z_goal = self.scorer.encode(obs, goal)  # (1, D) each
        self._z0, self._goal = z0, z_goal
        state = z0[0] if self.fused else self.dynamics.initial_state(z0)[0]  # (nx,)
        self.controller.U = self.center.expand(self.horizon, -1).clone()  # cold start
        with torch.inference_mode():
            for _ in range(self.commands):
                plan = self.controller.command(state, shift_nominal_trajectory=False)
        return plan  # (H, bA)
