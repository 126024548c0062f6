"""``GoalEnv``: what every goal-conditioned environment of the package shares.

The base owns the episode bookkeeping: the state/goal storage contract, ``reset`` options and their
validation order (both validated before anything changes), the started check, ``render`` /
``render_state`` plumbing, the success tests (scalar and batch, from one vectorized rule) and the
``info`` dict. An environment supplies only its physics, drawing, sampling and success rule::

    class MyEnv(GoalEnv[MyConfig]):
        name = "my_env"; config_class = MyConfig; state_dim = 4; action_dim = 2

        def sample_state(self, rng): ...                 # a random start (float64 (state_dim,))
        def _write_state(self, state): ...               # put the simulator at a state
        def _read_state(self): ...                       # the simulator's state, float64
        def _physics_step(self, action): ...             # one env step, action clipped to [-1, 1]
        def _draw(self, state, size): ...                # uint8 (size, size, 3) image of a state
        @classmethod
        def goal_error(cls, states, goals, config): ...  # (...,) error thresholded by success
        @classmethod
        def success_mask(cls, states, goals, config): ...  # bool (...,)
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Generic, TypeVar

import gymnasium as gym
import numpy as np

from lewm_mpc.types import ObsMode, check_obs_mode

ConfigT = TypeVar("ConfigT")


class GoalEnv(gym.Env, Generic[ConfigT], metaclass=abc.ABCMeta):
    """A gymnasium env whose goal is a full env state, with exact ``get_state``/``set_state``.

    Observations are rendered frames (``obs_mode="pixels"``, uint8 (S, S, 3)) or a state vector
    (``obs_mode="state"``, float32). Actions live in [-1, 1]^action_dim and are clipped. The goal
    is not drawn: its image is ``render_state(goal)``. Reward is 1.0 on success; episodes never
    terminate (the time limit comes from the registration). ``reset(options={"state": s,
    "goal": g})`` sets either; both are validated before anything changes.

    Args:
        config: The env's frozen config; None for the defaults.
        obs_mode: ``"pixels"`` or ``"state"``.
        render_mode: None or ``"rgb_array"``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}
    name: ClassVar[str]
    config_class: ClassVar[type]
    state_dim: ClassVar[int]
    action_dim: ClassVar[int]

    def __init__(
        self, config: ConfigT | None = None, obs_mode: ObsMode = "pixels",
        render_mode: str | None = None,
    ) -> None:  # fmt: skip
        if config is None:
            config = self.config_class()
        elif not isinstance(config, self.config_class):
            raise ValueError(
                f"config must be a {self.config_class.__name__}, got {type(config).__name__}"
            )
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config: ConfigT = config
        self.obs_mode: ObsMode = check_obs_mode(obs_mode)
        self.render_mode = render_mode
        size = self.image_size
        self.observation_space = (
            gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
            if obs_mode == "pixels"
            else self.state_observation_space()
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.action_dim,), np.float32)
        self._goal: np.ndarray | None = None
        self._started = False

    # ------------------------------------------------------------------- what an env supplies
    @abc.abstractmethod
    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random start state, float64 (state_dim,)."""

    def sample_goal(self, rng: np.random.Generator, start: np.ndarray) -> np.ndarray:
        """A random goal for an episode starting at ``start`` (default: another random state)."""
        return self.sample_state(rng)

    @abc.abstractmethod
    def _write_state(self, state: np.ndarray) -> None:
        """Puts the simulator at a validated state."""

    @abc.abstractmethod
    def _read_state(self) -> np.ndarray:
        """The simulator's current state, a fresh float64 (state_dim,) array."""

    @abc.abstractmethod
    def _physics_step(self, action: np.ndarray) -> None:
        """One env step of the dynamics with a finite float64 action clipped to [-1, 1]."""

    @abc.abstractmethod
    def _draw(self, state: np.ndarray, size: int) -> np.ndarray:
        """A fresh uint8 (size, size, 3) image of a validated state; the episode is untouched."""

    @classmethod
    @abc.abstractmethod
    def goal_error(cls, states: np.ndarray, goals: np.ndarray, config: Any) -> np.ndarray:
        """The error (...,) of (..., Ds) states to goals (broadcast) reported as ``distance``."""

    @classmethod
    @abc.abstractmethod
    def success_mask(cls, states: np.ndarray, goals: np.ndarray, config: Any) -> np.ndarray:
        """The success rule, vectorized: bool (...,) for (..., Ds) states and goals."""

    def _coerce_state(self, state: np.ndarray, name: str) -> np.ndarray:
        """Shape check and normalization of a finite float64 copy (override to accept more
        shapes or to check physical validity)."""
        if state.shape != (self.state_dim,):
            raise ValueError(f"{name} must have shape ({self.state_dim},), got {state.shape}")
        return state

    def _begin_episode(self) -> None:
        """Called by ``reset`` after validation, before the start state is sampled or written."""

    def _goal_changed(self) -> None:
        """Called after the goal changed (e.g. to move a marker)."""

    def _extra_info(self, state: np.ndarray) -> dict[str, Any]:
        """Env-specific ``info`` entries at ``state``."""
        return {}

    def state_observation_space(self) -> gym.spaces.Box:
        """The observation space of ``obs_mode="state"`` (default: the state vector)."""
        return gym.spaces.Box(-np.inf, np.inf, (self.state_dim,), np.float32)

    def _state_observation(self, state: np.ndarray) -> np.ndarray:
        """The ``obs_mode="state"`` observation of a state (default: the state as float32)."""
        return state.astype(np.float32)

    # ---------------------------------------------------------------------------- gym API
    @property
    def image_size(self) -> int:
        """Side of the pixel observation (the config's ``image_size``)."""
        return int(self.config.image_size)  # type: ignore[attr-defined]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode; ``options`` may set ``"state"`` and/or ``"goal"`` (env states).

        Both are validated before anything changes; whatever is not given is sampled (the
        start first, then the goal) from the env's seeded generator.
        """
        super().reset(seed=seed)
        options = {} if options is None else dict(options)
        unknown = set(options) - {"state", "goal"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; known: ['goal', 'state']")
        start, goal = options.get("state"), options.get("goal")
        start = None if start is None else self.validate_state(start, "state")
        goal = None if goal is None else self.validate_state(goal, "goal")
        self._begin_episode()
        if start is None:
            start = self.sample_state(self.np_random)
        self._write_state(start)
        self._started = True
        self._goal = self.sample_goal(self.np_random, start) if goal is None else goal
        self._goal_changed()
        return self._observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Applies ``clip(action, -1, 1)`` for one control step; reward 1.0 on success."""
        self.advance(action)
        info = self._info()
        return self._observation(), float(info["success"]), False, False, info

    def advance(self, action: np.ndarray) -> None:
        """The dynamics of ``step`` alone, without observation or info (the simulator model
        steps with this)."""
        self._require_started("step()")
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (self.action_dim,) or not np.all(np.isfinite(action)):
            raise ValueError(
                f"action must be a finite array of shape ({self.action_dim},), got {action!r}"
            )
        self._physics_step(np.clip(action, -1.0, 1.0))

    def render(self) -> np.ndarray | None:
        """The current frame at ``image_size`` if ``render_mode == "rgb_array"``, else None."""
        if self.render_mode != "rgb_array" or not self._started:
            return None
        return self._draw(self._read_state(), self.image_size)

    # ----------------------------------------------------------------------- state access
    def get_state(self) -> np.ndarray:
        """The full env state, a float64 (state_dim,) copy."""
        self._require_started("get_state()")
        return self._read_state()

    def set_state(self, state: np.ndarray) -> None:
        """Puts the env at ``state``; ValueError for a bad shape or value."""
        self._require_started("set_state()")
        self._write_state(self.validate_state(state, "state"))

    @property
    def goal_state(self) -> np.ndarray:
        """The goal state, a float64 (state_dim,) copy."""
        self._require_started("goal_state")
        return self._goal.copy()

    def set_goal(self, goal: np.ndarray) -> None:
        """Sets the goal state (same validation as ``set_state``)."""
        self._require_started("set_goal()")
        self._goal = self.validate_state(goal, "goal")
        self._goal_changed()

    def render_state(self, state: np.ndarray, size: int | None = None) -> np.ndarray:
        """Renders ``state`` (goal not drawn) without disturbing the episode, uint8 (S, S, 3)."""
        self._require_started("render_state()")
        size = self.image_size if size is None else int(size)
        if not 16 <= size <= 1024:
            raise ValueError(f"size must be in [16, 1024], got {size}")
        return self._draw(self.validate_state(state, "state"), size)

    def render_display(self, state: np.ndarray, size: int | None = None) -> np.ndarray:
        """Renders ``state`` for people to watch (videos), uint8 (S, S, 3).

        The default is :meth:`render_state`. An env whose observations are hard to see may
        brighten this one: models never see it, so it may differ from the observations (the
        camera must stay the same, so the env's view still projects onto it).
        """
        return self.render_state(state, size)

    def validate_state(self, value: Any, name: str = "state") -> np.ndarray:
        """A validated float64 copy of an env state (never aliases the caller's array)."""
        try:
            state = np.array(value, dtype=np.float64)  # copy: never alias the caller's array
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a numeric array, got {value!r}") from None
        if not np.all(np.isfinite(state)):
            raise ValueError(f"{name} must be finite, got {state}")
        return self._coerce_state(state, name)

    # ---------------------------------------------------------------------------- success
    def is_success(self, state: np.ndarray, goal: np.ndarray) -> bool:
        """Whether ``state`` satisfies the success test for ``goal`` (both (state_dim,))."""
        state, goal = np.asarray(state, np.float64), np.asarray(goal, np.float64)
        if state.shape != (self.state_dim,) or goal.shape != (self.state_dim,):
            raise ValueError(
                f"state and goal must have shape ({self.state_dim},), "
                f"got {state.shape} and {goal.shape}"
            )
        return bool(self.success_mask(state, goal, self.config))

    def is_success_batch(self, states: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """The success test over (..., state_dim) arrays (broadcast); bool (...)."""
        states, goals = np.asarray(states, np.float64), np.asarray(goals, np.float64)
        if states.shape[-1:] != (self.state_dim,) or goals.shape[-1:] != (self.state_dim,):
            raise ValueError(
                f"states and goals must end in {self.state_dim}, "
                f"got {states.shape} and {goals.shape}"
            )
        return np.asarray(self.success_mask(states, goals, self.config), dtype=bool)

    # ---------------------------------------------------------------------------- helpers
    def _require_started(self, what: str) -> None:
        if not self._started:
            raise RuntimeError(f"call reset() before {what}")

    def _observation(self) -> np.ndarray:
        state = self._read_state()
        if self.obs_mode == "pixels":
            return self._draw(state, self.image_size)
        return self._state_observation(state)

    def _info(self) -> dict[str, Any]:
        state = self._read_state()
        return {
            "state": state,
            "goal": self._goal.copy(),
            "success": bool(self.success_mask(state, self._goal, self.config)),
            "distance": float(self.goal_error(state, self._goal, self.config)),
            **self._extra_info(state),
        }
