"""Running one job: load (once per process) the env's model and data, draw its pair, run MPC.

Whatever process runs a job (the main one, a pool worker, a Ray worker), the result is the
same for the same job: the planner is built fresh with a seed derived from (seed, pair), the
env's generator is reseeded with it, the global torch seed is set, and torch runs with the
job's fixed number of intra-op threads. Only timings differ.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from lewm_mpc.bench.budget import make_planner
from lewm_mpc.bench.jobs import KEEPOUT, Job, Source, base_env
from lewm_mpc.energies import Guardrail, Probe, ProbedGoalDistance
from lewm_mpc.envs import EnvSpec, get_env_spec
from lewm_mpc.envs.two_room_keepout import KeepOut, KeepOutScenario, inside_box
from lewm_mpc.evaluation import EvalConfig, Pair, run_pair, sample_pairs
from lewm_mpc.planners.plugins import load_plugins
from lewm_mpc.runs import DEFAULT_SPLIT, load_run

# Timing fields: everything else in a result is a deterministic function of the job.
TIMING_FIELDS = ("plan_seconds", "latency_p50_s", "latency_p95_s", "seconds")


@dataclass(frozen=True)
class JobResult:
    """Outcome of one job.

    Attributes:
        job: the job.
        episode: source episode of the pair in the dataset.
        start_step: start step of the pair in that episode.
        success: the env's success test held at some step.
        steps_to_success: env steps until it first held (None: never).
        plan_seconds: wall-clock seconds of each plan call.
        latency_p50_s: median plan latency of the episode.
        latency_p95_s: 95th-percentile plan latency of the episode.
        energy_evals: energy evaluations (candidate plans scored) of each plan.
        iterations: optimizer iterations of each plan.
        plan_energies: energy of each chosen plan under the model.
        final_energy: energy of the last plan (None if no plan was made).
        violations: guardrail violations on the true simulator state: env steps inside the
            keep-out box (the ``tworoom-keepout`` scenario); None where the job has no guardrail.
        seconds: wall-clock seconds of the whole job.
    """

    job: Job
    episode: int
    start_step: int
    success: bool
    steps_to_success: int | None
    plan_seconds: tuple[float, ...]
    latency_p50_s: float
    latency_p95_s: float
    energy_evals: tuple[int, ...]
    iterations: tuple[int, ...]
    plan_energies: tuple[float, ...]
    final_energy: float | None
    violations: int | None
    seconds: float

    @property
    def num_plans(self) -> int:
        """Plans made during the episode."""
        return len(self.energy_evals)

    @property
    def energy_evals_per_plan(self) -> float:
        """Mean energy evaluations per plan."""
        return sum(self.energy_evals) / max(1, self.num_plans)

    def outcome(self) -> dict[str, Any]:
        """Every field but the timings: equal for equal jobs whoever ran them."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in TIMING_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {**asdict(self), "job": self.job.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobResult:
        """Inverse of :meth:`to_dict`."""
        values = {f.name: data[f.name] for f in fields(cls)}
        values["job"] = Job.from_dict(data["job"])
        for name in ("plan_seconds", "energy_evals", "iterations", "plan_energies"):
            values[name] = tuple(values[name])
        return cls(**values)


class _EnvContext:
    """What a worker keeps per (model, dataset, device): loaded once, reused by its jobs."""

    def __init__(self, env: str, source: Source, device: str) -> None:
        self.name = env
        self.spec: EnvSpec = get_env_spec(base_env(env))
        run = load_run(source.model_dir, source.data_path, device=device)
        self.model, self.dataset = run.model, run.dataset
        if run.env_spec is None or run.env_spec.gym_id != self.spec.gym_id:
            raise ValueError(
                f"{env!r} job: model {source.model_dir} was trained on {run.meta.env_id} and "
                f"dataset {source.data_path} holds {self.dataset.meta.env_id}; both must be "
                f"{self.spec.gym_id}"
            )
        # The held-out split the model was trained with.
        split = run.meta.split
        self.val_fraction = DEFAULT_SPLIT[0] if split is None else split.val_fraction
        self.split_seed = DEFAULT_SPLIT[1] if split is None else split.seed
        self.val_ids = run.val_ids
        self._envs: dict[int, gym.Env] = {}  # by time limit
        self._pairs: dict[tuple[int, int], list[Pair]] = {}
        self.probe: Probe | None = None
        self.margin = 0.0
        self.keepout: KeepOutScenario | None = None
        if env == KEEPOUT:  # the agent-position probe and its calibrated safety margin
            self.probe, self.margin, _ = KEEPOUT_SETTINGS.fit_probe(
                self.model, self.dataset, run.train_ids, self.val_ids, seed=self.split_seed
            )
            self.keepout = KEEPOUT_SETTINGS.scenario(self.margin)

    def accept(self, start: np.ndarray, goal: np.ndarray) -> bool:
        """Pair filter of the env's scenario (the keep-out scenario needs room for a detour)."""
        return self.keepout is None or self.keepout.accepts(start, goal)

    def eval_config(self, job: Job, num_pairs: int) -> EvalConfig:
        return EvalConfig(
            num_pairs=num_pairs, goal_offset=job.protocol.goal_offset,
            budget=job.protocol.episode_steps, seed=job.seed, val_fraction=self.val_fraction,
            split_seed=self.split_seed, deadline_s=job.budget.deadline_s,
        )  # fmt: skip

    def pair(self, job: Job) -> Pair:
        """The job's pair: index ``job.pair`` of the pairs ``EvalConfig(seed=job.seed)`` draws
        (pair i does not depend on how many are drawn, so drawing i + 1 is enough)."""
        key = (job.seed, job.protocol.goal_offset)
        drawn = self._pairs.get(key, [])
        if len(drawn) <= job.pair:
            drawn, _ = sample_pairs(
                self.dataset, self.val_ids, self.spec, self.eval_config(job, job.pair + 1),
                accept=self.accept,
            )  # fmt: skip
            self._pairs[key] = drawn
        return drawn[job.pair]

    def env(self, budget: int) -> gym.Env:
        """The env, with a time limit of at least ``budget`` steps (one per limit, kept)."""
        limit = max(budget, self.spec.max_episode_steps)
        if limit not in self._envs:
            self._envs[limit] = self.spec.make(
                self.model.config.obs_mode, self.dataset.meta.env_config, max_episode_steps=limit
            )
        return self._envs[limit]

    def close(self) -> None:
        for env in self._envs.values():
            env.close()


KEEPOUT_SETTINGS = KeepOut()  # the sweep's keep-out settings (those of the guardrails benchmark)

_CACHE: OrderedDict[tuple[str, Source, str], _EnvContext] = OrderedDict()
_CACHE_SIZE = 4


def _context(job: Job) -> _EnvContext:
    key = (job.env, job.source, job.device)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    context = _EnvContext(job.env, job.source, job.device)
    _CACHE[key] = context
    while len(_CACHE) > _CACHE_SIZE:
        _, evicted = _CACHE.popitem(last=False)
        evicted.close()
    return context


def clear_cache() -> None:
    """Close the envs and drop the models this process has cached."""
    while _CACHE:
        _, context = _CACHE.popitem()
        context.close()


def _keepout(context: _EnvContext, pair: Pair) -> tuple[np.ndarray, np.ndarray, Guardrail]:
    """The pair's keep-out box (low, high) and its hard guardrail."""
    assert context.probe is not None and context.keepout is not None
    low, high = context.keepout.box(pair.start_state, pair.goal_state)
    return low, high, KEEPOUT_SETTINGS.guardrail(context.probe, low, high, context.margin)


def run_job(job: Job) -> JobResult:
    """Run one job in this process (loading its model and data on first use).

    Imports the job's plugins first (a fresh worker process has not registered its user
    planners yet). Sets torch's intra-op threads to ``job.threads`` (and leaves them so; the
    inline executor restores its own count).
    """
    started = time.perf_counter()
    os.environ.setdefault("MUJOCO_GL", "egl")
    load_plugins(job.plugins)
    torch.set_num_threads(job.threads)
    context = _context(job)
    pair = context.pair(job)
    seed = job.planner_seed
    torch.manual_seed(seed)
    if context.probe is None:
        planner = make_planner(job.planner, context.model, job.budget, seed)
    else:  # keep-out: probed goal distance + the hard guardrail, as the guardrails benchmark
        low, high, guardrail = _keepout(context, pair)
        planner = make_planner(job.planner, context.model, job.budget, seed,
                               ProbedGoalDistance(context.probe), (guardrail,))  # fmt: skip
    config = context.eval_config(job, job.pair + 1)
    env = context.env(config.budget)
    env.reset(seed=seed)  # the env's generator no longer depends on earlier jobs
    episode = run_pair(env, planner, pair, config)
    violations = None if context.probe is None else int(inside_box(episode.states, low, high).sum())
    plan_seconds = tuple(float(plan.solve_s) for plan in episode.plans)
    energies = tuple(float(plan.energy) for plan in episode.plans)
    return JobResult(
        job=job,
        episode=pair.episode,
        start_step=pair.start_step,
        success=episode.succeeded,
        steps_to_success=episode.steps_to_success,
        plan_seconds=plan_seconds,
        latency_p50_s=float(np.percentile(plan_seconds, 50)) if plan_seconds else 0.0,
        latency_p95_s=float(np.percentile(plan_seconds, 95)) if plan_seconds else 0.0,
        energy_evals=tuple(int(plan.energy_evals) for plan in episode.plans),
        iterations=tuple(int(plan.iterations) for plan in episode.plans),
        plan_energies=energies,
        final_energy=energies[-1] if energies else None,
        violations=violations,
        seconds=time.perf_counter() - started,
    )
