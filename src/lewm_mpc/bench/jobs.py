"""What a planner-comparison sweep is made of: modes, jobs, and the sweep that lists them.

A job is one MPC episode: (environment, planner, seed, pair index, mode), plus everything else
its result depends on (the per-plan budget, the protocol, the model, the torch threads), so
two equal jobs give equal results and a rerun can skip a finished job by its identity alone.

Modes:

- ``"equal-budget"``: every planner gets the same number of energy evaluations per plan
  (candidate plans rolled out and scored): CEM and MPPI ``samples x iterations``, gradient
  shooting ``restarts x steps``, the hybrid ``cem_iterations x samples`` of CEM then
  ``restarts x steps`` of Adam.
- ``"equal-time"``: every planner gets the same large budget and the same ``deadline_s`` per
  plan; it stops at the deadline and returns its best plan so far. Wall-clock bound, so these
  results are not reproducible bit for bit (equal-budget ones are).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lewm_mpc.bench.budget import PLANNERS, REGISTRY_NAMES, Budget, bench_name
from lewm_mpc.envs import ENV_SPECS
from lewm_mpc.planners import planner_names
from lewm_mpc.planners.plugins import is_plugin_file, load_plugins

MODES: tuple[str, ...] = ("equal-budget", "equal-time")
KEEPOUT = "tworoom-keepout"
# The sweep's environments: the four envs, plus Two-Room's keep-out scenario
# (``lewm_mpc.envs.two_room_keepout``: same model, a hard guardrail, violations on the true state).
ENVS: tuple[str, ...] = (*ENV_SPECS, KEEPOUT)
_REGISTRY_NAME = re.compile(r"[a-z][a-z0-9_\-]*")  # the registry's names


def _is_user_planner(name: str) -> bool:
    """Whether a job's ``planner`` can be a user planner's registry name (jobs of built-ins
    record display names; the planner itself is registered only where its plugin is loaded)."""
    return bool(_REGISTRY_NAME.fullmatch(name)) and name not in REGISTRY_NAMES.values()


def base_env(env: str) -> str:
    """The registry env a sweep environment runs in (``tworoom`` for the keep-out scenario)."""
    return "tworoom" if env == KEEPOUT else env


@dataclass(frozen=True)
class Protocol:
    """Evaluation-protocol settings of a job (the rest of ``EvalConfig`` comes from the model).

    Attributes:
        goal_offset: env steps between start and goal in the source episode.
        episode_steps: env-step budget of the MPC episode.
    """

    goal_offset: int = 25
    episode_steps: int = 50

    def __post_init__(self) -> None:
        for name in ("goal_offset", "episode_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Source:
    """Where an environment's world model and dataset live.

    Attributes:
        model_dir: checkpoint directory.
        data_path: the HDF5 dataset the model was trained on (pairs come from its held-out
            episodes).
        model_sha: the checkpoint's weights hash, so a retrained model is a different job.
    """

    model_dir: str
    data_path: str
    model_sha: str


def default_source_paths(env: str) -> tuple[Path, Path]:
    """(model dir, dataset) made by ``benchmarks/env_success.py`` (``tworoom_cem.py`` for
    Two-Room and its keep-out scenario), relative to the working directory."""
    if base_env(env) == "tworoom":
        return Path("runs/bench_tworoom/model"), Path("runs/bench_tworoom/tworoom.h5")
    return Path(f"runs/bench/{env}/model"), Path(f"runs/bench/{env}/data.h5")


def resolve_source(env: str, model_dir: str | Path, data_path: str | Path) -> Source:
    """Check that the model and dataset exist and read the model's weights hash."""
    from lewm_mpc.models.checkpoint import read_checkpoint_config
    from lewm_mpc.models.run_dir import checkpoint_dir

    model_dir, data_path = Path(model_dir), Path(data_path)
    if checkpoint_dir(model_dir) is None:
        raise FileNotFoundError(
            f"no world model for {env!r} at {model_dir}; train one (benchmarks/env_success.py "
            f"--env {env}, or tworoom_cem.py for tworoom) or pass --model {env}=DIR"
        )
    if not data_path.exists():
        raise FileNotFoundError(
            f"no dataset for {env!r} at {data_path}; pass --data {env}=PATH (the dataset the "
            "model was trained on)"
        )
    _, _, sha = read_checkpoint_config(model_dir)
    return Source(str(model_dir), str(data_path), sha)


@dataclass(frozen=True)
class Job:
    """One MPC episode of a sweep.

    Attributes:
        env: environment name (one of :data:`ENVS`, which includes the keep-out scenario).
        planner: one of :data:`PLANNERS`, or the registry name of a user sampling planner.
        seed: seeds the held-out pairs (``EvalConfig(seed=seed)``) and, with ``pair``, the
            planner and the env's generator.
        pair: index into the pairs drawn with that seed.
        mode: one of :data:`MODES`.
        budget: the per-plan budget (with the deadline in equal-time mode).
        protocol: evaluation-protocol settings.
        source: the model and dataset.
        device: torch device of the model.
        threads: torch intra-op threads while the job runs (results can depend on it).
        plugins: modules or ``.py`` files imported before the job runs, registering user
            planners (where a planner comes from is not part of the job's identity).
    """

    env: str
    planner: str
    seed: int
    pair: int
    mode: str
    budget: Budget
    protocol: Protocol
    source: Source
    device: str = "cpu"
    threads: int = 1
    plugins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.env not in ENVS:
            raise ValueError(f"unknown env {self.env!r}; expected one of {list(ENVS)}")
        if self.planner not in PLANNERS and not _is_user_planner(self.planner):
            raise ValueError(
                f"unknown planner {self.planner!r}; expected one of {list(PLANNERS)} or a user "
                "planner's registry name (lower case)"
            )
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; expected one of {list(MODES)}")
        if self.pair < 0 or self.seed < 0:
            raise ValueError(f"seed and pair must be >= 0, got {self.seed}, {self.pair}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if (self.mode == "equal-time") != (self.budget.deadline_s is not None):
            raise ValueError(
                f"mode {self.mode!r} needs "
                f"{'a' if self.mode == 'equal-time' else 'no'} budget deadline_s"
            )

    def key(self) -> str:
        """The job's identity: canonical JSON of every field but ``plugins``."""
        fields = asdict(self)
        del fields["plugins"]
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    @property
    def planner_seed(self) -> int:
        """Seed of the planner and of the env's generator, derived from (seed, pair)."""
        return int(np.random.SeedSequence([self.seed, self.pair]).generate_state(1)[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """Inverse of :meth:`to_dict`."""
        fields = dict(data)
        nested = ("budget", "protocol", "source", "plugins")
        return cls(
            **{k: v for k, v in fields.items() if k not in nested},
            budget=Budget(**fields["budget"]),
            protocol=Protocol(**fields["protocol"]),
            source=Source(**fields["source"]),
            plugins=tuple(fields.get("plugins", ())),  # rows written before plugins have none
        )

    def label(self) -> str:
        """Short human-readable name."""
        return f"{self.env}/{self.planner}/{self.mode}/seed {self.seed}/pair {self.pair}"


def _planner_names(values: Sequence[str]) -> tuple[str, ...]:
    """Each name as a sweep records it (:func:`~lewm_mpc.bench.budget.bench_name`)."""
    registered = planner_names()
    unknown = [v for v in values if v.strip().lower() not in registered]
    if unknown or not values:
        raise ValueError(
            f"planners must be a non-empty subset of {list(PLANNERS)} or of the registered "
            f"planners {list(registered)} (load user planners with --plugin), got {list(values)}"
        )
    names = tuple(bench_name(v) for v in values)
    if len(set(names)) != len(names):
        raise ValueError(f"planners has duplicates: {list(values)}")
    return names


def _names(values: Sequence[str], known: Sequence[str], what: str) -> tuple[str, ...]:
    values = tuple(values)
    unknown = [v for v in values if v not in known]
    if unknown or not values:
        raise ValueError(f"{what} must be a non-empty subset of {list(known)}, got {list(values)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{what} has duplicates: {list(values)}")
    return values


@dataclass(frozen=True)
class SweepConfig:
    """Planners x environments x seeds x pairs x modes.

    Attributes:
        envs: environment names.
        planners: planner names: :data:`PLANNERS`, or registry names (any case) of planners
            whose config subclasses ``SamplingConfig``; stored as a sweep records them
            (``"cem"`` -> ``"CEM"``).
        seeds: seeds; each draws its own held-out pairs.
        pairs: pairs per seed.
        modes: :data:`MODES` to run.
        budget: energy evaluations per plan in equal-budget mode.
        samples: candidates per CEM/MPPI iteration.
        restarts: gradient restarts.
        horizon: planned blocks.
        receding_horizon: blocks executed per plan.
        deadline_s: per-plan deadline in equal-time mode.
        time_budget: the (large) evaluation budget every planner gets in equal-time mode; it
            should not be reachable within the deadline.
        goal_offset: env steps between start and goal.
        episode_steps: env steps of MPC per pair.
        device: torch device.
        threads: torch threads per job (1 by default: jobs run side by side, and a fixed
            count keeps results identical whichever executor runs them).
        models: env -> checkpoint directory overrides (default :func:`default_source_paths`).
        data: env -> dataset overrides.
        plugins: modules or ``.py`` files that register user planners; imported here and in
            every worker process before a job runs (``.py`` paths are stored absolute).
    """

    envs: tuple[str, ...] = ENVS
    planners: tuple[str, ...] = PLANNERS
    seeds: tuple[int, ...] = (0,)
    pairs: int = 50
    modes: tuple[str, ...] = MODES
    budget: int = 9000
    samples: int = 300
    restarts: int = 30
    horizon: int = 5
    receding_horizon: int = 1
    deadline_s: float = 0.5
    time_budget: int = 90000
    goal_offset: int = 25
    episode_steps: int = 50
    device: str = "cpu"
    threads: int = 1
    models: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] = field(default_factory=dict)
    plugins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _names(self.envs, ENVS, "envs")
        plugins = tuple(str(Path(p).resolve()) if is_plugin_file(p) else p for p in self.plugins)
        load_plugins(plugins)  # registers the user planners named in ``planners``
        object.__setattr__(self, "plugins", plugins)
        object.__setattr__(self, "planners", _planner_names(self.planners))
        _names(self.modes, MODES, "modes")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds must be distinct non-negative integers, got {self.seeds}")
        if self.pairs < 1:
            raise ValueError(f"pairs must be >= 1, got {self.pairs}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        for name, mapping in (("models", self.models), ("data", self.data)):
            unknown = sorted(set(mapping) - set(ENVS))
            if unknown:
                raise ValueError(f"{name} names unknown envs {unknown}; known: {list(ENVS)}")
        for mode in self.modes:
            self.mode_budget(mode)  # validates the arithmetic
        Protocol(self.goal_offset, self.episode_steps)

    def mode_budget(self, mode: str) -> Budget:
        """The :class:`Budget` of a mode.

        Both modes keep the hybrid's CEM stage at a third of the equal-budget iterations;
        in equal-time mode the gradient stages get the rest of the large budget.
        """
        reference = Budget(self.budget, self.samples, self.restarts,
                           max(1, self.budget // self.samples // 3), self.horizon,
                           self.receding_horizon)  # fmt: skip
        if mode == "equal-budget":
            return reference
        if mode == "equal-time":
            return Budget(self.time_budget, self.samples, self.restarts,
                          reference.hybrid_cem_iterations, self.horizon, self.receding_horizon,
                          self.deadline_s)  # fmt: skip
        raise ValueError(f"unknown mode {mode!r}; expected one of {list(MODES)}")

    def source(self, env: str) -> Source:
        """The env's model and dataset (checked to exist)."""
        model_dir, data_path = default_source_paths(env)
        base = base_env(env)  # the keep-out scenario shares Two-Room's overrides
        model_dir = self.models.get(env, self.models.get(base, model_dir))
        data_path = self.data.get(env, self.data.get(base, data_path))
        return resolve_source(env, model_dir, data_path)


def make_jobs(config: SweepConfig) -> list[Job]:
    """Every job of the sweep, ordered env, mode, seed, pair, planner (so that an interrupted
    sweep has compared every planner on the pairs it reached)."""
    protocol = Protocol(config.goal_offset, config.episode_steps)
    jobs = []
    for env in config.envs:
        source = config.source(env)
        for mode in config.modes:
            budget = config.mode_budget(mode)
            for seed in config.seeds:
                for pair in range(config.pairs):
                    for planner in config.planners:
                        jobs.append(Job(env, planner, seed, pair, mode, budget, protocol, source,
                                        config.device, config.threads,
                                        config.plugins))  # fmt: skip
    return jobs
