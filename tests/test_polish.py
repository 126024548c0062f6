"""Polishing a sampling planner's best plan with L-BFGS (``polish_steps``): it reaches the exact
optimum of an ill-conditioned problem sampling alone misses, never returns a worse plan, and
stays out of the way of models and energies that gradients cannot pass through."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import lewm_mpc as lm
from conftest import Toy2DModel, load_benchmark

SAMPLERS = pytest.mark.parametrize("cls", [lm.CEM, lm.MPPI], ids=["cem", "mppi"])


@pytest.fixture(scope="module")
def lqr():
    return load_benchmark("lqr")


def plan_problem(lqr, problem, cls, **kwargs):
    model, energy = lqr.LinearSystem(problem), lqr.QuadraticCost(problem)
    planner = cls(model, horizon=lqr.HORIZON, seed=0, energy=energy, **kwargs)
    result = planner.plan(problem.x0.astype(np.float32), np.zeros(problem.n, np.float32))
    actions = np.asarray(result.actions, np.float64).reshape(problem.steps, problem.m)
    return result, lqr.cost(problem, actions)


@SAMPLERS
@pytest.mark.parametrize("restarts", [1, 4])
def test_polish_reaches_the_bounded_optimum_that_sampling_alone_misses(lqr, cls, restarts):
    problem = lqr.make_problem(12, seed=0)  # condition number ~4e3, 30 action entries
    _, optimum = lqr.bounded_optimum(problem)
    budget = {"num_samples": 100, "iterations": 10}
    sampled, sampled_cost = plan_problem(lqr, problem, cls, polish_steps=0, **budget)
    polished, polished_cost = plan_problem(lqr, problem, cls, polish_steps=100,
                                           polish_restarts=restarts, **budget)  # fmt: skip
    assert sampled_cost / optimum > 1.2  # the sampling budget alone is far off
    assert polished_cost / optimum < 1.01
    assert polished.energy <= sampled.energy
    # The sampling rounds are the same (same seed), then one rollout of every descent's plan
    # per L-BFGS evaluation.
    assert polished.iterations > sampled.iterations == 10
    assert polished.energy_evals == sampled.energy_evals + restarts * (polished.iterations - 10)
    assert polished.history.shape == (polished.iterations,)
    assert np.all(np.diff(polished.history) <= 1e-6)


class PointMass(Toy2DModel):
    """Each block moves the latent by a tenth of its summed actions."""

    def step(self, block_sums):
        return 0.1 * block_sums


class FrozenPointMass(PointMass):
    """The same model, declaring that gradients do not pass through it."""

    differentiable = False


def detached_distance(latents, actions, goal):
    return (latents[:, -1] - goal).pow(2).sum(-1).detach()


@SAMPLERS
@pytest.mark.parametrize("case", ["model", "energy"])
def test_nothing_to_differentiate_leaves_the_sampled_plan(cls, case):
    model = FrozenPointMass() if case == "model" else PointMass()
    kwargs = {"horizon": 3, "num_samples": 40, "iterations": 3, "seed": 0}
    if case == "energy":
        kwargs["energy"] = detached_distance
    obs, goal = np.zeros(2, np.float32), np.array([0.2, -0.1], np.float32)
    plain, planner = cls(model, polish_steps=0, **kwargs), cls(model, polish_steps=5, **kwargs)
    assert planner.needs_grad is (case == "energy")  # a model that says so is never tried
    for attempt in range(2):  # the second plan no longer tries
        sampled = plain.plan(obs, goal)
        if case == "energy" and attempt == 0:
            with pytest.warns(RuntimeWarning, match="polish_steps=5 turned off"):
                polished = planner.plan(obs, goal)
        else:
            polished = planner.plan(obs, goal)
        np.testing.assert_array_equal(polished.actions, sampled.actions)
        assert polished.energy_evals == sampled.energy_evals
    assert planner.needs_grad is False


@SAMPLERS
@pytest.mark.parametrize("case", ["model", "energy"])
def test_without_gradients_the_default_samples_the_full_rounds(cls, case):
    model = FrozenPointMass() if case == "model" else PointMass()
    energy = detached_distance if case == "energy" else lm.GoalDistance()
    planner = cls(model, horizon=3, num_samples=40, seed=0, energy=energy)  # iterations: None
    obs, goal = np.zeros(2, np.float32), np.array([0.2, -0.1], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the energy case says it turned off
        for _ in range(2):  # the first plan finds out, and is sampled again in full
            result = planner.plan(obs, goal)
            assert result.iterations == 30 and result.energy_evals == 30 * 40
    differentiable = cls(PointMass(), horizon=3, num_samples=40, seed=0)
    # 2 rounds, then a polish of 4 descents
    assert differentiable.plan(obs, goal).energy_evals <= 2 * 40 + 4 * 50


@SAMPLERS
def test_polish_keeps_the_warm_start_on_the_sampling_mean(lqr, cls):
    problem = lqr.make_problem(3, seed=0)
    model, energy = lqr.LinearSystem(problem), lqr.QuadraticCost(problem)
    plain = cls(model, horizon=5, seed=0, energy=energy, num_samples=50, iterations=5)
    polished = cls(model, horizon=5, seed=0, energy=energy, num_samples=50, iterations=5,
                   polish_steps=20)  # fmt: skip
    x0, goal = problem.x0.astype(np.float32), np.zeros(problem.n, np.float32)
    first, second = plain.plan(x0, goal), polished.plan(x0, goal)
    assert not np.array_equal(first.actions, second.actions)  # the polish moved the plan
    assert torch.equal(plain._previous, polished._previous)  # but not the warm start


@SAMPLERS
def test_polish_and_refinement_time_their_own_evaluations(cls):
    """A deadline estimates an evaluation of the polish's 4 descents from earlier ones, and the
    one-descent refinement of a plan (``refine_latent``) from its own: a batch of 4 plans takes
    longer than one, so a shared clock would misjudge both."""
    planner = cls(PointMass(), horizon=3, num_samples=40, seed=0)
    obs, goal = np.zeros(2, np.float32), np.array([0.2, -0.1], np.float32)
    result = planner.plan(obs, goal)
    assert planner.clock("gradient x4").estimate is not None
    assert "gradient" not in planner.clocks
    z0, z_goal = (torch.as_tensor(x) for x in (obs, goal))
    planner.refine_latent(z0, z_goal, result.actions, steps=5)
    assert planner.clock("gradient").estimate is not None
    assert planner.clock("gradient") is not planner.clock("gradient x4")
