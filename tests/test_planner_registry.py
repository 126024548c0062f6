"""The planner registry: every name builds a working planner, by name and by preset."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

import lewm_mpc as lm
from conftest import Toy2DModel
from lewm_mpc.energies import ObjectiveValue
from lewm_mpc.planners import (
    SamplingPlanner,
    SamplingState,
    build_planner,
    get_planner_entry,
    load_preset,
    make_planner,
    planner_names,
    preset_names,
    register_planner,
    unregister_planner,
)

BUILTIN = ("cem", "gradient", "hybrid", "mppi")
# Small budgets so every planner plans in milliseconds.
TINY = {
    "cem": {"num_samples": 8, "iterations": 2, "topk": 2},
    "mppi": {"num_samples": 8, "iterations": 2},
    "gradient": {"restarts": 2, "iterations": 3},
    "hybrid": {"restarts": 2, "iterations": 3, "cem_iterations": 2, "cem_samples": 8,
               "cem_topk": 2},
}  # fmt: skip
OBS, GOAL = np.zeros(2, np.float32), np.array([0.3, -0.2], np.float32)


class PointMass(Toy2DModel):
    """A protocol-only model: each step adds 0.1 * the sum of the block's actions."""

    def step(self, block_sums: torch.Tensor) -> torch.Tensor:
        return 0.1 * block_sums


class RandomShooting(SamplingPlanner):
    """Random shooting: every round samples around the same initial Gaussian."""

    def update(
        self,
        state: SamplingState,
        candidates: torch.Tensor,
        value: ObjectiveValue,
        order: torch.Tensor,
    ) -> SamplingState:
        return state


@pytest.fixture
def shooting():
    register_planner("Random_Shooting", RandomShooting)
    yield "random_shooting"
    unregister_planner("random_shooting")


def check_plan(planner: lm.Planner) -> None:
    result = planner.plan(OBS, GOAL)
    assert result.actions.shape == (planner.config.horizon * 2, 2)
    assert np.all(np.abs(result.actions) <= 1.0) and np.isfinite(result.energy)


def test_builtin_names_are_registered_sorted_and_lower_case():
    names = planner_names()
    assert set(BUILTIN) <= set(names)
    assert list(names) == sorted(names) and all(name == name.lower() for name in names)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_name_builds_a_planner_that_plans(name):
    planner = make_planner(name, PointMass(), seed=1, horizon=3, **TINY[name])
    assert planner.config.seed == 1 and planner.config.horizon == 3
    check_plan(planner)


def test_names_are_case_insensitive():
    assert isinstance(make_planner("CEM", PointMass()), lm.CEM)
    assert isinstance(make_planner(" Mppi ", PointMass()), lm.MPPI)
    assert get_planner_entry("Gradient").name == "gradient"
    hybrid = make_planner("HYBRID", PointMass())
    assert isinstance(hybrid, lm.GradientPlanner)
    assert hybrid.config == lm.GradientConfig.hybrid()
    assert make_planner("hybrid", PointMass(), iterations=7).config.cem_iterations == 10


def test_make_planner_passes_energy_guardrails_and_config():
    energy = lm.GoalDistance(running_weight=0.0)
    config = lm.CEMConfig(num_samples=4, iterations=1, topk=1)
    planner = make_planner("cem", PointMass(), config=config, energy=energy, seed=5)
    assert planner.objective.task is energy
    assert planner.config == lm.CEMConfig(num_samples=4, iterations=1, topk=1, seed=5)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown planner 'annealing'.*'cem'.*'mppi'"):
        make_planner("annealing", PointMass())
    with pytest.raises(ValueError, match="has no fields"):
        make_planner("cem", PointMass(), samples=3)


@pytest.mark.parametrize("name", ["cem", "CEM", "", "1st", "has space", None])
def test_duplicate_and_bad_names_are_refused(name):
    with pytest.raises(ValueError, match="planner name"):
        register_planner(name, RandomShooting)


def test_registration_needs_a_config_class_and_guards_builtins(shooting):
    with pytest.raises(ValueError, match="config_class"):
        register_planner("shooter", lambda model, config, **kwargs: RandomShooting(model))
    with pytest.raises(ValueError, match="is taken"):
        register_planner(shooting, RandomShooting)
    register_planner(shooting, RandomShooting, overwrite=True)
    with pytest.raises(ValueError, match="built in"):
        register_planner("cem", RandomShooting, overwrite=True)
    with pytest.raises(ValueError, match="built in"):
        unregister_planner("mppi")


def test_user_planner_by_name_and_by_preset(shooting, tmp_path):
    assert shooting in planner_names()
    planner = make_planner("RANDOM_SHOOTING", PointMass(), num_samples=16, iterations=3,
                           polish_steps=0)  # fmt: skip
    assert isinstance(planner, RandomShooting)
    result = planner.plan(OBS, GOAL)
    assert result.energy_evals == 48 and result.iterations == 3
    # a sampling planner of the user's polishes by default, as the built-in ones do
    polished = make_planner("RANDOM_SHOOTING", PointMass(), num_samples=16, iterations=3)
    assert polished.plan(OBS, GOAL).energy_evals > 48
    path = tmp_path / "shooting.toml"
    path.write_text(f'planner = "{shooting}"\n[config]\nnum_samples = 6\niterations = 2\n')
    planner = build_planner(PointMass(), path, seed=4)
    assert isinstance(planner, RandomShooting) and planner.config.num_samples == 6
    check_plan(planner)


@pytest.mark.parametrize("name", BUILTIN)
def test_shipped_presets_cover_every_builtin_planner(name):
    presets = [p for p in preset_names() if load_preset(p).planner == name]
    assert presets, f"no shipped preset for {name}"
    planner = build_planner(PointMass(), presets[0], horizon=3, **TINY[name])
    assert isinstance(planner, type(make_planner(name, PointMass())))
    check_plan(planner)


def test_hybrid_preset_keeps_the_hybrid_defaults(tmp_path):
    path = tmp_path / "h.toml"
    path.write_text('planner = "Hybrid"\n[config]\nrestarts = 3\n')
    assert load_preset(path).config == lm.GradientConfig.hybrid(restarts=3)


def test_gradient_preset_file_loads(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(
        'description = "small gradient budget"\nplanner = "gradient"\n'
        "[config]\nrestarts = 2\niterations = 4\nlr = 0.2\n[energy]\nrunning_weight = 0.5\n"
    )
    preset = load_preset(path)
    assert preset.planner == "gradient" and preset.description == "small gradient budget"
    assert preset.config == lm.GradientConfig(restarts=2, iterations=4, lr=0.2)
    planner = build_planner(PointMass(), preset)
    assert isinstance(planner, lm.GradientPlanner)
    assert planner.objective.task == lm.GoalDistance(running_weight=0.5)
    check_plan(planner)


@pytest.mark.parametrize(
    ("dtype", "name"),
    [(torch.float32, "float32"), (torch.bfloat16, "bfloat16"), (torch.float16, "float16")],
)
def test_rollout_dtype_accepts_torch_dtypes(dtype, name):
    assert lm.CEMConfig(rollout_dtype=dtype).rollout_dtype == name
    assert lm.PlannerConfig(rollout_dtype=dtype) == lm.PlannerConfig(rollout_dtype=name)


def test_bfloat16_rollout_plans():
    planner = make_planner("cem", PointMass(), rollout_dtype=torch.bfloat16, **TINY["cem"])
    assert planner.config.rollout_dtype == "bfloat16"
    check_plan(planner)
    hybrid = make_planner("hybrid", PointMass(), rollout_dtype=torch.bfloat16, **TINY["hybrid"])
    assert hybrid.cem_warmup().config.rollout_dtype == "bfloat16"
    check_plan(hybrid)


@pytest.mark.parametrize("dtype", [torch.float64, torch.int32, "float64", 16])
def test_bad_rollout_dtype_is_refused(dtype):
    with pytest.raises(ValueError, match="rollout_dtype must be one of"):
        lm.PlannerConfig(rollout_dtype=dtype)


def test_render_planner_choices_come_from_the_registry(shooting):
    from lewm_mpc.render.command import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--planner", "Hybrid"]).planner == "hybrid"
    assert parser.parse_args(["--planner", shooting]).planner == shooting


def test_bench_display_names_map_through_the_registry():
    from lewm_mpc.bench import PLANNERS, Budget
    from lewm_mpc.bench import make_planner as make_budgeted
    from lewm_mpc.bench.budget import REGISTRY_NAMES

    budget = Budget(evals=60, samples=6, restarts=6, hybrid_cem_iterations=2)
    assert set(REGISTRY_NAMES.values()) <= set(planner_names())
    for name in PLANNERS:
        planner = make_budgeted(name, PointMass(), budget, seed=0)
        assert type(planner) is type(make_planner(REGISTRY_NAMES[name], PointMass()))
    assert make_budgeted("hybrid", PointMass(), budget, seed=0).config.cem_iterations == 2


def test_eval_planners_start_from_the_env_budget():
    import dataclasses

    from lewm_mpc.cli import _planner
    from lewm_mpc.envs import EnvSpec, PlannerBudget, get_env_spec

    base = get_env_spec("tworoom")
    spec = EnvSpec(base.name, base.gym_id, base.module, base.max_episode_steps)
    budget = PlannerBudget(horizon=4, num_samples=40, iterations=3, topk=5, receding_horizon=2)
    spec.__dict__["definition"] = dataclasses.replace(base.definition, budget=budget)
    flags = dict(preset=None, horizon=None, samples=None, iterations=None, topk=None,
                 receding=None, covariance=None, polish_steps=None, polish_restarts=None,
                 planner_seed=0, running_weight=None)  # fmt: skip
    cem = _planner(argparse.Namespace(planner="cem", **flags), PointMass(), spec)
    assert (cem.config.horizon, cem.config.num_samples, cem.config.iterations) == (4, 40, 3)
    assert (cem.config.topk, cem.config.receding_horizon) == (5, 2)
    mppi = _planner(
        argparse.Namespace(planner="mppi", **{**flags, "samples": 64, "covariance": "full"}),
        PointMass(), spec,
    )  # fmt: skip
    assert (mppi.config.num_samples, mppi.config.iterations, mppi.config.horizon) == (64, 3, 4)
    assert (cem.config.covariance, mppi.config.covariance) == ("diagonal", "full")
    assert cem.config.polish_steps == mppi.config.polish_steps == 0  # the budget's: no polish
    polished = _planner(argparse.Namespace(planner="cem", **{**flags, "polish_steps": 50,
                                                             "polish_restarts": 2}),
                        PointMass(), spec)  # fmt: skip
    assert (polished.config.iterations, polished.config.polish_steps) == (3, 50)
    assert polished.config.polish_restarts == 2


def test_the_reference_budget_is_leworldmodels_cem_without_a_polish():
    from lewm_mpc.envs import get_env_spec

    budget = get_env_spec("tworoom").budget
    assert budget.fields_for(lm.CEMConfig) == dict(
        horizon=5, num_samples=300, iterations=30, topk=30, receding_horizon=1, polish_steps=0
    )
    assert budget.fields_for(lm.MPPIConfig)["polish_steps"] == 0
    # gradient steps are not CEM rounds: the gradient planners keep their own
    assert budget.fields_for(lm.GradientConfig) == dict(horizon=5, receding_horizon=1)
    # CMA-ES keeps its own split of the evaluations; it takes the horizon and the polish
    assert budget.fields_for(lm.CMAESConfig) == dict(horizon=5, receding_horizon=1,
                                                      polish_steps=0)  # fmt: skip
