"""stable-worldmodel 0.1.1's CEM, MPPI and gradient solvers on our model and energy.

Its package ``__init__`` imports torchvision (and its data stack), which fails next to the torch
2.13.0 CPU wheel; its ``solver`` subpackage needs only torch, numpy, gymnasium and loguru. So
:func:`load_solver_module` registers a bare parent package (no ``__init__`` run) and imports
``stable_worldmodel.solver`` under it. Where the real package imports fine (e.g. torch 2.14.1 +
torchvision 0.29.1) it is used as is.

The solvers call ``model.get_cost(info_dict, candidates)`` with every info tensor expanded to
(B, S, ...) and candidates (B, S, H, block * A), as stable-worldmodel's own LeWM does;
:class:`SwmCost` is that model: it encodes ``pixels``/``goal`` once per solve (cached in the
info dict, as LeWM does), rolls the candidates out with OUR model and scores them with OUR energy.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import lewm_mpc as lm
from lewm_mpc.energies import Objective
from lewm_mpc.types import Energy

PACKAGE = "stable_worldmodel"


def load_solver_module() -> ModuleType:
    """``stable_worldmodel.solver`` without running the package ``__init__``."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or spec.origin is None:
            raise ImportError(
                "stable-worldmodel is not installed: see benchmarks/peers/README.md "
                "(pip install --no-deps stable-worldmodel==0.1.1 loguru in .venv-peers)"
            )
        parent = types.ModuleType(PACKAGE)
        parent.__path__ = [str(Path(spec.origin).parent)]  # a namespace for its submodules only
        parent.__spec__ = spec
        sys.modules[PACKAGE] = parent
    return importlib.import_module(f"{PACKAGE}.solver")


def version() -> str:
    """Installed stable-worldmodel version."""
    from importlib.metadata import version as dist_version

    return dist_version("stable-worldmodel")


@dataclass(frozen=True)
class SwmPlanConfig:
    """The fields of stable-worldmodel's ``PlanConfig`` its solvers read (``policy.py``, which
    imports torchvision, defines the real one)."""

    horizon: int
    receding_horizon: int = 1
    history_len: int = 1
    action_block: int = 1
    warm_start: bool = False


class SwmCost(torch.nn.Module):
    """stable-worldmodel's ``Costable`` over our model and energy.

    Candidate actions are clamped to the env bounds before the rollout (its solvers sample
    without bounds; the env would clip the executed actions the same way).

    Args:
        model: our world model (its parameters are what the solvers read the dtype from).
        energy: task energy (default ``lm.GoalDistance()``).
    """

    def __init__(self, model: lm.WorldModel, energy: Energy | None = None) -> None:
        super().__init__()
        self.model = model
        self.objective = Objective(energy)
        block = model.action_block
        self.register_buffer("low", model.action_low.float().repeat(block), persistent=False)
        self.register_buffer("high", model.action_high.float().repeat(block), persistent=False)

    def _encode(self, info_dict: dict) -> None:
        with torch.no_grad():
            obs = info_dict["pixels"][:, 0]  # (B, *obs) from (B, S, *obs)
            goal = info_dict["goal"][:, 0]
            z = self.model.encode(torch.cat([obs, goal]))  # (2B, D)
        num = obs.shape[0]
        info_dict["emb"], info_dict["goal_emb"] = z[:num], z[num:]

    def get_cost(self, info_dict: dict, action_candidates: torch.Tensor) -> torch.Tensor:
        """(B, S, H, block * A) candidates -> (B, S) energies (our rollout, our energy)."""
        if "emb" not in info_dict:
            self._encode(info_dict)
        num_envs, num = action_candidates.shape[:2]
        plans = action_candidates.reshape(num_envs * num, *action_candidates.shape[2:])
        plans = torch.maximum(torch.minimum(plans, self.high), self.low)  # (B*S, H, bA)
        start = info_dict["emb"].repeat_interleave(num, dim=0)  # (B*S, D)
        goal = info_dict["goal_emb"].repeat_interleave(num, dim=0)  # (B*S, D)
        latents = self.model.rollout(start, plans)  # (B*S, H+1, D)
        return self.objective(latents, plans, goal).total.view(num_envs, num)

    def criterion(self, info_dict: dict, action_candidates: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`get_cost` (part of its ``Costable`` protocol)."""
        return self.get_cost(info_dict, action_candidates)


class SwmPlanner:
    """One stable-worldmodel solver, planning from raw observations like ``planner.plan``.

    Args:
        kind: "cem", "mppi" or "gradient".
        model: our world model.
        kwargs: the solver's budget arguments (from ``adapters.peer_budgets``); for the gradient
            solver ``optimizer`` (a ``torch.optim`` class name) and ``lr`` too.
        horizon: planned blocks.
        energy: task energy.
        seed: seed of the solver's generator.
    """

    def __init__(
        self,
        kind: str,
        model: lm.WorldModel,
        kwargs: dict[str, Any],
        horizon: int,
        energy: Energy | None = None,
        seed: int = 0,
    ) -> None:
        solvers = load_solver_module()
        self.model = model
        self.cost = SwmCost(model, energy)
        kwargs = dict(kwargs)
        if kind == "cem":
            self.solver = solvers.CEMSolver(self.cost, seed=seed, device=model.device, **kwargs)
        elif kind == "mppi":
            self.solver = solvers.MPPISolver(self.cost, seed=seed, device=model.device, **kwargs)
        elif kind == "gradient":
            optimizer = getattr(torch.optim, kwargs.pop("optimizer"))
            lr = kwargs.pop("lr")
            self.solver = solvers.GradientSolver(
                self.cost, seed=seed, device=model.device, optimizer_cls=optimizer,
                optimizer_kwargs={"lr": lr},
                **kwargs,
            )  # fmt: skip
        else:
            raise ValueError(f"kind must be 'cem', 'mppi' or 'gradient', got {kind!r}")
        low = model.action_low.cpu().numpy()[None]  # (1, A): a one-env vector-env space
        high = model.action_high.cpu().numpy()[None]
        self.solver.configure(
            action_space=gym.spaces.Box(low, high, dtype=np.float32),
            n_envs=1,
            config=SwmPlanConfig(horizon=horizon, action_block=model.action_block),
        )

    def reset(self, seed: int) -> None:
        """Reseed the solver's generator (each plan starts cold anyway)."""
        self.solver.torch_gen.manual_seed(seed)

    def plan(self, obs: np.ndarray, goal: np.ndarray) -> torch.Tensor:
        """Raw observations -> (H, block * A) plan (its ``solve`` prints a timing line: muted)."""
        info = {
            "pixels": torch.from_numpy(np.array(obs))[None],  # (1, *obs)
            "goal": torch.from_numpy(np.array(goal))[None],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            outputs = self.solver.solve(info)
        return outputs["actions"][0]
