"""Scoring candidate plans: roll every candidate out through the model and evaluate the
objective on the predicted latents (the step every planner's update rule is built on)."""

from __future__ import annotations

import torch

from lewm_mpc.energies import Objective, ObjectiveValue
from lewm_mpc.types import LatentWorldModel
from lewm_mpc.validation import check_rollout_output


def score_candidates(
    model: LatentWorldModel,
    objective: Objective,
    z0: torch.Tensor,
    z_goal: torch.Tensor,
    candidates: torch.Tensor,
    past: tuple[torch.Tensor, torch.Tensor] | None = None,
    dtype: torch.dtype | None = None,
    check_as: str | None = None,
) -> tuple[torch.Tensor, ObjectiveValue]:
    """Roll out and score ``candidates`` for every env.

    Args:
        model: the world model.
        objective: the planner's task energy plus guardrails.
        z0: (B, D) start latents.
        z_goal: (B, D) goal latents.
        candidates: (B, S, H, block*A) plans inside the bounds.
        past: the envs' history ((B, C, D) latents, (B, C, block*A) blocks), or None.
        dtype: reduced precision for the rollout under ``torch.autocast`` (None: float32);
            energies are float32 either way.
        check_as: a planner name: check the rollout's output against the protocol (shape,
            type, device, gradients when the candidates require them), naming that planner.

    Returns:
        latents (B, S, H+1, D) and the objective with (B, S) tensors.

    Raises:
        ValueError: an energy is NaN for some candidate; with ``check_as``, a rollout output
            that breaks the protocol.
    """
    num_envs, num = candidates.shape[:2]
    flat = candidates.reshape(num_envs * num, *candidates.shape[2:])  # (B*S, H, block*A)
    start = z0.unsqueeze(1).expand(-1, num, -1).reshape(num_envs * num, -1)  # (B*S, D)
    goal = z_goal.unsqueeze(1).expand(-1, num, -1).reshape(num_envs * num, -1)  # (B*S, D)
    extra: dict[str, torch.Tensor] = {}
    if past is not None:  # the same history for every candidate of an env
        extra = {name: value.repeat_interleave(num, dim=0)  # (B*S, C, ...)
                 for name, value in zip(("past_latents", "past_actions"), past,
                                        strict=True)}  # fmt: skip
    if dtype is None:
        latents = model.rollout(start, flat, **extra)  # (B*S, H+1, D)
    else:  # reduced-precision rollout; energies and ranking in float32
        with torch.autocast(torch.device(model.device).type, dtype=dtype):
            latents = model.rollout(start, flat, **extra)  # (B*S, H+1, D)
    if check_as is not None:
        check_rollout_output(model, latents, start, flat, planner=check_as)
    if dtype is not None:
        latents = latents.float()
    value = objective(latents, flat, goal)
    if torch.isnan(value.total).any():
        bad = [name for name, term in value.terms.items() if torch.isnan(term).any()]
        raise ValueError(
            f"energy is NaN for some candidate plans (terms {bad}); check the world model "
            "and energies for non-finite outputs"
        )
    unflat = ObjectiveValue(
        value.total.view(num_envs, num),
        value.violation.view(num_envs, num),
        {name: term.view(num_envs, num) for name, term in value.terms.items()},
    )
    return latents.view(num_envs, num, *latents.shape[1:]), unflat  # (B, S, H+1, D)
