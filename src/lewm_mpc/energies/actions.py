"""Soft guardrails on the planned env actions.

Action blocks ``(S, H, block*A)`` are read as the ``H*block`` env actions they contain,
``(S, H*block, A)``. Action *bounds* need no guardrail: every planner projects its plans onto
the model's ``action_low``/``action_high`` (they are hard by projection), so a bound can never
be violated. These energies shape plans inside the bounds instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lewm_mpc.energies.base import GuardrailEnergy


def _env_actions(actions: torch.Tensor, action_dim: int, name: str) -> torch.Tensor:
    """(S, H, block*A) blocks -> (S, H*block, A) env actions."""
    if actions.ndim != 3 or actions.shape[-1] % action_dim:
        raise ValueError(
            f"{name}(action_dim={action_dim}) needs actions of shape (S, H, block*{action_dim}), "
            f"got {tuple(actions.shape)}"
        )
    return actions.reshape(actions.shape[0], -1, action_dim)  # (S, H*block, A)


def _check_action_dim(action_dim: int) -> None:
    if not (isinstance(action_dim, int) and action_dim >= 1):
        raise ValueError(f"action_dim must be an int >= 1, got {action_dim!r}")


@dataclass(frozen=True)
class ActionMagnitude(GuardrailEnergy):
    """Mean squared env action: ``mean_t |a_t|^2`` over the plan's ``H*block`` env actions.

    Attributes:
        action_dim: size A of one env action (the model's ``action_dim``).
    """

    action_dim: int

    def __post_init__(self) -> None:
        _check_action_dim(self.action_dim)

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        env = _env_actions(actions, self.action_dim, "ActionMagnitude")  # (S, H*block, A)
        return env.pow(2).sum(dim=-1).mean(dim=1)  # (S,)


@dataclass(frozen=True)
class ActionSmoothness(GuardrailEnergy):
    """Mean squared difference of consecutive env actions: ``mean_t |a_{t+1} - a_t|^2``.

    Differences run across block boundaries too; a plan of a single env action scores 0.

    Attributes:
        action_dim: size A of one env action (the model's ``action_dim``).
    """

    action_dim: int

    def __post_init__(self) -> None:
        _check_action_dim(self.action_dim)

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        env = _env_actions(actions, self.action_dim, "ActionSmoothness")  # (S, H*block, A)
        if env.shape[1] < 2:
            return env.new_zeros(env.shape[0])
        return env.diff(dim=1).pow(2).sum(dim=-1).mean(dim=1)  # (S,)
