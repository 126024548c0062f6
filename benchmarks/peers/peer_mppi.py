"""pytorch_mppi 0.9.1's MPPI on our model and energy.

Its state is :class:`adapters.BlockDynamics`'s flat state (our latent, plus the predictor's
history window when the model has one) and its action one block of ``action_block`` env actions,
flattened; the dynamics is our predictor's one-block step (``step_dependent_dynamics=True`` so the
step index reaches it). The running cost is zero and the terminal cost is our whole energy over the
stored trajectory (pytorch_mppi hands the terminal cost every state and action of the rollout),
so it optimizes exactly our objective, plus its own perturbation cost.

One ``command()`` call is one sampling round; the adapter refines one nominal plan with
``iterations`` calls (``shift_nominal_trajectory=False``) and returns the whole nominal plan
(``u_per_command = horizon``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from adapters import BlockDynamics, PlanScorer, TrajectoryEnergy
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
            ``lambda_``) from ``adapters.peer_budgets``.
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
        block_dim = self.dynamics.block_dim
        low, high = self.scorer.low, self.scorer.high  # (bA,)
        self.center = (low + high) / 2
        sigma = float(kwargs["noise_sigma"]) * (high - low) / 2  # std in units of half range
        self._z0 = self._goal = torch.zeros(model.latent_dim)
        self.controller = MPPI(
            self.dynamics,
            self._running_cost,
            nx=self.dynamics.state_dim,
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

    def _running_cost(self, state: torch.Tensor, action: torch.Tensor, t: int) -> torch.Tensor:
        return state.new_zeros(state.shape[0])  # (K,): everything is in the terminal cost

    def _terminal_cost(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        # states (M=1, K, T, nx), actions (1, K, T, bA) -> (K,)
        return self.energy.of_states(self._z0, states[0], actions[0], self._goal)

    def reset(self, seed: int) -> None:
        """Seed torch's global RNG (pytorch_mppi samples from it)."""
        torch.manual_seed(seed)

    def plan(self, obs: np.ndarray, goal: np.ndarray) -> torch.Tensor:
        """Raw observations -> (H, block * A) plan."""
        z0, z_goal = self.scorer.encode(obs, goal)  # (1, D) each
        self._z0, self._goal = z0, z_goal
        state = self.dynamics.initial_state(z0)[0]  # (nx,)
        self.controller.U = self.center.expand(self.horizon, -1).clone()  # cold start
        with torch.inference_mode():
            for _ in range(self.commands):
                plan = self.controller.command(state, shift_nominal_trajectory=False)
        return plan  # (H, bA)
