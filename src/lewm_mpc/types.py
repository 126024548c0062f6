"""Shared types: the plan result and the protocols a user's own model or energy satisfies.

Nothing here depends on a concrete model or planner, so a user can implement
:class:`LatentWorldModel` or :class:`Energy` without importing the rest of the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch

ObsMode = Literal["pixels", "state"]
"""What a model or an env observes: rendered frames (uint8 HxWx3) or state vectors."""
OBS_MODES: tuple[ObsMode, ...] = ("pixels", "state")


def check_obs_mode(obs_mode: object) -> ObsMode:
    """``obs_mode`` itself if it is ``"pixels"`` or ``"state"``; ValueError otherwise."""
    if obs_mode not in OBS_MODES:
        raise ValueError(f"obs_mode must be 'pixels' or 'state', got {obs_mode!r}")
    return obs_mode  # type: ignore[return-value]


@runtime_checkable
class LatentWorldModel(Protocol):
    """What a planner needs from a world model.

    Any object with these members plans with every planner; no subclassing is needed.
    Actions are in env space (within ``action_low``/``action_high``); a model that wants
    normalized actions normalizes them inside ``rollout``.
    """

    @property
    def latent_dim(self) -> int:
        """Size D of one latent state."""
        ...

    @property
    def action_dim(self) -> int:
        """Size A of one env action."""
        ...

    @property
    def action_block(self) -> int:
        """Number of env actions consumed by one model step (frameskip)."""
        ...

    @property
    def action_low(self) -> torch.Tensor:
        """Lower env-action bound, shape (A,)."""
        ...

    @property
    def action_high(self) -> torch.Tensor:
        """Upper env-action bound, shape (A,)."""
        ...

    @property
    def device(self) -> torch.device:
        """Device the model's tensors live on."""
        ...

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """Encode a batch of observations.

        Args:
            obs: (B, *obs_shape) observations, already validated and on ``device``
                (uint8 images or float states, as the model expects).

        Returns:
            (B, D) latents.
        """
        ...

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Predict a latent trajectory.

        Args:
            z0: (S, D) start latents.
            actions: (S, H, action_block * A) env-space action blocks.

        Returns:
            (S, H + 1, D) latents, index 0 being ``z0``.
        """
        ...


@runtime_checkable
class Energy(Protocol):
    """A cost over predicted latent trajectories (lower is better).

    Guardrails are energies too: they return a non-negative violation.
    """

    def __call__(
        self, latents: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
    ) -> torch.Tensor:
        """Score candidate plans.

        Args:
            latents: (S, H + 1, D) predicted latents.
            actions: (S, H, action_block * A) env-space action blocks.
            goal: (S, D) goal latent per candidate.

        Returns:
            (S,) energies.
        """
        ...


@runtime_checkable
class Policy(Protocol):
    """A data-collection policy acting on the env's low-dimensional state.

    ``reset`` is called once per episode with the episode's own generator; all randomness of
    the episode must come from it, so each episode is reproducible on its own.
    """

    def reset(self, rng: np.random.Generator) -> None:
        """Start an episode."""
        ...

    def act(self, state: np.ndarray) -> np.ndarray:
        """One action within the env's action bounds."""
        ...


@dataclass(frozen=True)
class PlanResult:
    """Outcome of one ``planner.plan(obs, goal)`` call.

    For an unbatched call every array has no batch dimension and scalars are Python
    floats/bools; for a batched call (B observations) each field gains a leading B.

    Attributes:
        actions: env-space actions of the chosen plan, (H * action_block, A), within bounds.
        energy: total energy of the chosen plan under the model.
        terms: energy of the chosen plan per named term (task and each guardrail).
        latents: predicted latent trajectory of the chosen plan, (H + 1, D).
        feasible: whether the chosen plan satisfies every hard guardrail under the model.
        iterations: optimizer iterations that ran (fewer than configured under a deadline).
        solve_s: wall-clock seconds spent in ``plan``.
        history: best energy after each iteration, (iterations,) (or (iterations, B)).
        energy_evals: number of candidate plans scored (rollout + energy evaluations).
    """

    actions: np.ndarray
    energy: float | np.ndarray
    terms: Mapping[str, float | np.ndarray]
    latents: np.ndarray
    feasible: bool | np.ndarray
    iterations: int
    solve_s: float
    history: np.ndarray
    energy_evals: int

    @property
    def batched(self) -> bool:
        """True when this result holds plans for several environments."""
        return self.actions.ndim == 3

    def __repr__(self) -> str:
        """One line: shapes of the arrays and the scalars, never the arrays themselves."""
        terms = ", ".join(f"{name}: {_brief(value)}" for name, value in self.terms.items())
        feasible = np.asarray(self.feasible)
        feasible_text = (
            str(bool(feasible)) if feasible.ndim == 0 else f"{int(feasible.sum())}/{feasible.size}"
        )
        return (
            f"PlanResult(actions={_shape(self.actions)}, latents={_shape(self.latents)}, "
            f"energy={_brief(self.energy)}, terms={{{terms}}}, feasible={feasible_text}, "
            f"iterations={self.iterations}, solve_s={self.solve_s:.3f}, "
            f"energy_evals={self.energy_evals})"
        )


def _shape(array: object) -> str:
    """``(25, 2)``-style shape of an array-like (its type name if it has none)."""
    shape = getattr(array, "shape", None)
    return type(array).__name__ if shape is None else str(tuple(int(n) for n in shape))


def _brief(value: object) -> str:
    """A scalar to 4 significant digits; a batch as up to 4 values, else its range."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return f"{float(array):.4g}"
    flat = array.ravel()
    if flat.size <= 4:
        return "[" + ", ".join(f"{float(v):.4g}" for v in flat) + "]"
    return f"[{flat.min():.4g} .. {flat.max():.4g}] x{flat.size}"
