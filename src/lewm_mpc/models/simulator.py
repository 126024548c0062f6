"""The simulator model (the oracle): a :class:`~lewm_mpc.types.LatentWorldModel` whose latent is
the true env state and whose rollout steps the true simulator.

Planning with it gives an upper bound that separates planner limits from world-model limits::

    with SimulatorModel(spec) as oracle:
        planner = CEM(oracle, energy=oracle.energy(), num_samples=300, iterations=30)
        result = planner.plan(state, goal_state)

Observations are full env states: control the env returned by :meth:`SimulatorModel.make_env`,
whose observations are ``get_state()`` (for Two-Room, PushT and Cube that is the state-mode
observation; Reacher's state observation is ``(cos q, sin q, dq)``, not its state). The oracle is
not differentiable: it is for sampling planners (CEM, MPPI); ``GradientPlanner`` refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from lewm_mpc.energies.task import ProbedGoalDistance
from lewm_mpc.envs.spec import EnvSpec


class StateObservation(gym.ObservationWrapper):
    """Observations replaced by the env's full state (``get_state()``, float64 (Ds,)), the
    observations :class:`SimulatorModel` encodes."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        dim = int(np.asarray(env.unwrapped.get_state()).shape[0])
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float64)

    def observation(self, observation: Any) -> np.ndarray:
        """The full state (the wrapped observation is ignored)."""
        return np.asarray(self.env.unwrapped.get_state(), dtype=np.float64)


class SimulatorModel:
    """The true simulator as a world model: latent = full env state, rollout = env steps.

    Each candidate is rolled out by restoring its start state (``set_state``) in one private
    state-mode env and applying its actions one env step at a time through the env's own
    dynamics, without observations or info; the state after each block of ``action_block``
    actions is recorded. Latents are float64 CPU tensors, exact to the simulator. Rollouts are
    sequential (cost grows linearly with samples x horizon x block).

    Args:
        spec: the environment.
        env_config: the env's config fields (as stored in datasets); None for the defaults.
        action_block: env actions per model step (the frameskip of the model it stands in for).

    Attributes:
        spec: the environment.
        differentiable: always False: gradients do not flow through the simulator.
    """

    differentiable: ClassVar[bool] = False

    def __init__(
        self, spec: EnvSpec, env_config: Mapping[str, Any] | None = None, action_block: int = 5
    ) -> None:
        if isinstance(action_block, bool) or not isinstance(action_block, int) or action_block < 1:
            raise ValueError(f"action_block must be an int >= 1, got {action_block!r}")
        if not isinstance(spec, EnvSpec):
            raise ValueError(f"spec must be an EnvSpec (see lewm_mpc.envs), got {spec!r}")
        self.spec = spec
        self._action_block = action_block
        self._env_config = env_config
        self._env: Any = spec.make(obs_mode="state", env_config=env_config)
        self._sim: Any = self._env.unwrapped
        self._sim.reset(seed=0)  # a state and a goal, so that set_state and stepping work
        self._state_dim = int(self._sim.get_state().shape[0])
        space = self._env.action_space
        self._action_low = torch.as_tensor(space.low, dtype=torch.float32)
        self._action_high = torch.as_tensor(space.high, dtype=torch.float32)
        self._closed = False

    # ----------------------------------------------------------------- model description
    @property
    def latent_dim(self) -> int:
        """Size Ds of one env state."""
        return self._state_dim

    @property
    def action_dim(self) -> int:
        """Size A of one env action."""
        return int(self._action_low.shape[0])

    @property
    def action_block(self) -> int:
        """Env actions per model step."""
        return self._action_block

    @property
    def action_low(self) -> torch.Tensor:
        """Lower env-action bound, (A,)."""
        return self._action_low

    @property
    def action_high(self) -> torch.Tensor:
        """Upper env-action bound, (A,)."""
        return self._action_high

    @property
    def device(self) -> torch.device:
        """Always the CPU (the simulator runs there)."""
        return torch.device("cpu")

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Observations are env states, (Ds,)."""
        return (self._state_dim,)

    @property
    def obs_dtype(self) -> torch.dtype:
        """Float states (the planner accepts any float or int state)."""
        return torch.float64

    def make_env(self) -> StateObservation:
        """A fresh env of the same spec and config whose observations are full states, for
        control loops planned with this model (``run_pair``, ``run_episode``); the caller
        closes it."""
        env = self.spec.make(obs_mode="state", env_config=self._env_config)
        env.reset(seed=0)  # get_state needs a started episode
        return StateObservation(env)

    # ------------------------------------------------------------------------ model API
    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """The states themselves.

        Args:
            obs: (B, Ds) env states.

        Returns:
            (B, Ds) float64 CPU latents.
        """
        if not isinstance(obs, torch.Tensor) or obs.ndim != 2 or obs.shape[1] != self._state_dim:
            shape = tuple(obs.shape) if isinstance(obs, torch.Tensor) else type(obs).__name__
            raise ValueError(
                f"SimulatorModel({self.spec.name!r}) encodes env states, a (B, "
                f"{self._state_dim}) tensor; got {shape}"
            )
        return obs.detach().to(device="cpu", dtype=torch.float64)

    @torch.no_grad()
    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Step the simulator from each start state.

        Args:
            z0: (S, Ds) start states.
            actions: (S, H, action_block * A) env-space action blocks.

        Returns:
            (S, H + 1, Ds) float64 CPU states: ``z0``, then the state after each block.

        Raises:
            ValueError: bad shapes, actions that require grad (not differentiable), or a start
                state the env rejects.
            RuntimeError: the model was closed.
        """
        if self._closed:
            raise RuntimeError("SimulatorModel is closed")
        if actions.requires_grad:
            raise ValueError(
                "SimulatorModel is not differentiable (it steps the true simulator); plan with "
                "a sampling planner (CEM, MPPI)"
            )
        block, action_dim = self._action_block, self.action_dim
        if z0.ndim != 2 or z0.shape[1] != self._state_dim:
            raise ValueError(f"z0 must be (S, {self._state_dim}), got {tuple(z0.shape)}")
        num = z0.shape[0]
        if actions.ndim != 3 or actions.shape[0] != num or actions.shape[2] != block * action_dim:
            raise ValueError(
                f"actions must be (S={num}, H, action_block * A = {block * action_dim}), "
                f"got {tuple(actions.shape)}"
            )
        horizon = actions.shape[1]
        starts = z0.detach().cpu().numpy().astype(np.float64)  # (S, Ds)
        steps = actions.detach().cpu().numpy().astype(np.float64)
        steps = steps.reshape(num, horizon, block, action_dim)  # (S, H, block, A)
        states = np.empty((num, horizon + 1, self._state_dim))  # (S, H+1, Ds)
        states[:, 0] = starts
        sim = self._sim
        for sample in range(num):
            sim.set_state(starts[sample])
            for step in range(horizon):
                for action in steps[sample, step]:
                    sim.advance(action)
                states[sample, step + 1] = sim.get_state()
        return torch.from_numpy(states)

    def features(self, latents: torch.Tensor) -> torch.Tensor:
        """Task features of states (``spec.goal_features``), (..., Ds) -> (..., F).

        Success is about feature distance 1; the result has the latents' dtype and device.
        """
        features = self.spec.goal_features(latents.detach().cpu().numpy())
        return torch.from_numpy(features).to(device=latents.device, dtype=latents.dtype)

    def energy(self, running_weight: float = 1.0) -> ProbedGoalDistance:
        """The task energy in feature space: :class:`ProbedGoalDistance` through ``features``.

        Args:
            running_weight: weight of the mean distance over the intermediate steps.
        """
        return ProbedGoalDistance(self.features, running_weight)

    # ---------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close the private env (idempotent)."""
        if not self._closed:
            self._closed = True
            self._env.close()

    def __enter__(self) -> SimulatorModel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"SimulatorModel({self.spec.name!r}, state_dim={self._state_dim}, "
            f"action_block={self._action_block})"
        )
