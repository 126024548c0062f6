"""How an environment is described to the rest of the package.

Two typed layers:

- :class:`EnvSpec`, the registry line (``lewm_mpc.envs.ENV_SPECS``): name, gym id, the module
  that defines the env, time limit and pip extra. Cheap: listing environments imports no
  optional dependency.
- :class:`EnvDefinition`, the module's ``DEFINITION``: everything env-specific the package needs
  (env class, data policies, goal features, probe target, pixel view, default recipe, reference
  planner budget). It is imported on first use; one whose extra is missing raises an
  ``ImportError`` that names the extra.

Nothing else in the package knows an environment by name.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from lewm_mpc.envs.base import GoalEnv
from lewm_mpc.types import ObsMode, Policy, check_obs_mode

if TYPE_CHECKING:
    from lewm_mpc.envs.symmetry import SceneSymmetries
    from lewm_mpc.envs.views import View


@dataclass(frozen=True)
class ProbeTarget:
    """The physical quantity a position probe reads from latents (and ``render`` draws).

    Attributes:
        name: what it is, for reports (e.g. ``"agent xy + block xy"``).
        read: env states (..., Ds) -> the quantity (..., P), float64.
    """

    name: str
    read: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class EnvRecipe:
    """Default data and training scale of an env on two CPU cores.

    Attributes:
        episodes: episodes to collect.
        episode_steps: actions per episode.
        workers: collection processes (rendering-bound envs gain from more).
        train_steps: optimizer steps of the default CPU model.
        regenerated_episodes: episodes regenerated for a model whose dataset is not at hand
            (``lewm_mpc.data.regenerated``), for probes and held-out pairs.
        regenerate_in_blocks: collect those at the model's ``action_block``, rendering only the
            frames kept (for rendering-bound envs; keep-out margins, which need every env
            step, cannot be calibrated on them).
    """

    episodes: int
    episode_steps: int
    workers: int = 1
    train_steps: int = 3000
    regenerated_episodes: int = 40
    regenerate_in_blocks: bool = False

    def __post_init__(self) -> None:
        for name in ("episodes", "episode_steps", "workers", "train_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"EnvRecipe.{name} must be an int >= 1, got {value!r}")
        value = self.regenerated_episodes
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError(f"EnvRecipe.regenerated_episodes must be an int >= 2, got {value!r}")


@dataclass(frozen=True)
class PlannerBudget:
    """Reference planning budget of an env (LeWorldModel's CEM unless measured otherwise).

    Attributes:
        horizon: planned blocks.
        num_samples: candidates per iteration.
        iterations: iterations per plan.
        topk: elites.
        receding_horizon: blocks executed per plan.
        polish_steps: L-BFGS evaluations after the sampling (0: LeWorldModel's CEM, no
            gradient; the planners' own default polishes, see ``SamplingConfig``).
    """

    horizon: int = 5
    num_samples: int = 300
    iterations: int = 30
    topk: int = 30
    receding_horizon: int = 1
    polish_steps: int = 0

    def fields_for(self, config_class: type) -> dict[str, Any]:
        """The fields of this budget that a planner config class has and takes from an env's
        reference budget (its ``reference_budget_fields``; None: every field it has)."""
        known = {entry.name for entry in dataclasses.fields(config_class)}
        taken = getattr(config_class, "reference_budget_fields", None)
        if taken is not None:
            known &= set(taken)
        return {k: v for k, v in dataclasses.asdict(self).items() if k in known}


def _resolve(reference: str) -> Any:
    """The object named by ``"package.module:Name.attribute"``."""
    module, _, path = reference.partition(":")
    target: Any = importlib.import_module(module)
    for attribute in path.split("."):
        target = getattr(target, attribute)
    return target


@dataclass(frozen=True)
class EnvDefinition:
    """Everything env-specific, defined once in the env's module as ``DEFINITION``.

    Attributes:
        env_class: the :class:`GoalEnv` subclass (its ``config_class`` is the config type).
        experts: data policies by name, each ``"module:callable"`` with ``callable(env) ->
            Policy`` (``env`` unwrapped), imported on use (expert modules import the env
            module, never the reverse); the first is the default.
        goal_features: task features of env states ``(..., Ds) -> (..., F)`` float64, scaled so
            that the success threshold is about feature distance 1 (the simulator model's
            goal energy).
        probe: the quantity position probes read (and ``render`` draws).
        view: the env's pixel view: ``view(env) -> View`` maps the probe quantity to pixel
            coordinates of its observation.
        recipe: default data and training scale.
        budget: reference planning budget.
        symmetries: rotations and reflections under which the scene, its physics and its
            frames are unchanged (training may augment windows with them); None: none known.
    """

    env_class: type[GoalEnv]
    experts: Mapping[str, str]
    goal_features: Callable[[np.ndarray], np.ndarray]
    probe: ProbeTarget
    view: Callable[[Any], View]
    recipe: EnvRecipe
    budget: PlannerBudget = field(default_factory=PlannerBudget)
    symmetries: SceneSymmetries | None = None

    def __post_init__(self) -> None:
        if not self.experts:
            raise ValueError("an EnvDefinition needs at least one data policy in experts")
        object.__setattr__(self, "experts", dict(self.experts))


@dataclass(frozen=True)
class EnvSpec:
    """One registered environment (a registry line).

    Attributes:
        name: registry key, e.g. ``"tworoom"``; also ``env_class.name``.
        gym_id: registered gymnasium id.
        module: module that defines ``DEFINITION`` (an :class:`EnvDefinition`).
        max_episode_steps: time limit of the registered env.
        extra: pip extra holding the env's optional dependencies (None: core only).
    """

    name: str
    gym_id: str
    module: str
    max_episode_steps: int
    extra: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the imported definition (it holds lambdas); re-imported on use."""
        return {key: value for key, value in self.__dict__.items() if key != "definition"}

    @cached_property
    def definition(self) -> EnvDefinition:
        """The module's :class:`EnvDefinition` (imports the module on first use)."""
        try:
            module = importlib.import_module(self.module)
        except ImportError as error:
            hint = f"pip install 'lewm-mpc[{self.extra}]'" if self.extra else "reinstall lewm-mpc"
            raise ImportError(
                f"environment {self.name!r} needs optional dependencies ({error}); {hint}"
            ) from None
        definition = getattr(module, "DEFINITION", None)
        if not isinstance(definition, EnvDefinition):
            raise TypeError(f"{self.module}.DEFINITION must be an EnvDefinition")
        return definition

    @property
    def env_class(self) -> type[GoalEnv]:
        """The env class."""
        return self.definition.env_class

    @property
    def recipe(self) -> EnvRecipe:
        """Default data and training scale."""
        return self.definition.recipe

    @property
    def default_episode_steps(self) -> int:
        """Episode length used for data collection (the recipe's)."""
        return self.definition.recipe.episode_steps

    @property
    def budget(self) -> PlannerBudget:
        """Reference planning budget."""
        return self.definition.budget

    @property
    def probe(self) -> ProbeTarget:
        """The quantity position probes read."""
        return self.definition.probe

    @property
    def expert_names(self) -> tuple[str, ...]:
        """Names of the data policies; the first is the default."""
        return tuple(self.definition.experts)

    def config(self, env_config: Mapping[str, Any] | None = None) -> Any:
        """The env's config from config fields (as stored in datasets); ValueError if invalid."""
        config_class = self.definition.env_class.config_class
        try:
            return config_class(**dict(env_config or {}))
        except TypeError as error:
            given = dict(env_config or {})
            raise ValueError(f"invalid {self.name} env_config {given}: {error}") from None

    def make(
        self, obs_mode: ObsMode = "pixels", env_config: Mapping[str, Any] | None = None,
        max_episode_steps: int | None = None, **kwargs: Any,
    ) -> gym.Env:  # fmt: skip
        """``gym.make`` of the env with pixel or state observations and optional config-field
        overrides.

        ``max_episode_steps`` replaces the registered time limit (``self.max_episode_steps``),
        e.g. to run far-goal episodes longer than the registered limit.
        """
        check_obs_mode(obs_mode)
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        config = self.config(env_config)  # imports the module: an ImportError names the extra
        self.register()
        return gym.make(self.gym_id, obs_mode=obs_mode, config=config,
                        max_episode_steps=max_episode_steps, **kwargs)  # fmt: skip

    def make_for_budget(
        self, budget: int, obs_mode: ObsMode = "pixels",
        env_config: Mapping[str, Any] | None = None,
    ) -> gym.Env:  # fmt: skip
        """:meth:`make` with a time limit of at least ``budget`` steps, so that an episode of
        ``budget`` env steps is never truncated early by the registered limit."""
        return self.make(
            obs_mode, env_config, max_episode_steps=max(budget, self.max_episode_steps)
        )

    def make_expert(self, env: gym.Env, policy: str | None = None) -> Policy:
        """The data policy ``policy`` (default: the first) driving ``env``."""
        experts = self.definition.experts
        name = next(iter(experts)) if policy is None else policy
        if name not in experts:
            raise ValueError(f"{self.name} has no data policy {name!r}; known: {list(experts)}")
        return _resolve(experts[name])(env.unwrapped)

    def is_success(self, state: np.ndarray, goal: np.ndarray) -> bool:
        """The env's success test on (state, goal) with the default config."""
        env_class = self.definition.env_class
        state, goal = np.asarray(state, np.float64), np.asarray(goal, np.float64)
        dim = env_class.state_dim
        if state.shape != (dim,) or goal.shape != (dim,):
            raise ValueError(
                f"{self.name} state and goal must have shape ({dim},), "
                f"got {state.shape} and {goal.shape}"
            )
        return bool(env_class.success_mask(state, goal, env_class.config_class()))

    def goal_features(self, states: np.ndarray) -> np.ndarray:
        """Task features of env states, ``(..., Ds) -> (..., F)`` float64, scaled so that the
        success threshold is about feature distance 1."""
        states = np.asarray(states, dtype=np.float64)
        dim = self.definition.env_class.state_dim
        if states.shape[-1:] != (dim,):
            raise ValueError(f"{self.name} states have shape (..., {dim}), got {states.shape}")
        return self.definition.goal_features(states)

    def view(self, env: gym.Env) -> View:
        """The pixel view of a live env (or a wrapper of one)."""
        return self.definition.view(env.unwrapped)

    def register(self) -> None:
        """Register with gymnasium once (re-imports do not re-register or warn)."""
        if self.gym_id not in gym.registry:
            gym.register(
                id=self.gym_id,
                entry_point=self._construct,
                max_episode_steps=self.max_episode_steps,
            )

    def _construct(self, **kwargs: Any) -> GoalEnv:
        return self.definition.env_class(**kwargs)
