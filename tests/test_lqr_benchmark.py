"""``benchmarks/lqr.py``: the seeded problem family, its exact bounded optima, the torch model and
energy against the numpy system, and a smoke run of the entry point."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import lewm_mpc as lm
from conftest import load_benchmark


@pytest.fixture(scope="module")
def lqr():
    return load_benchmark("lqr")


@pytest.fixture(scope="module")
def family(lqr):
    return [lqr.make_problem(index, seed=0) for index in range(16)]


def test_family_is_deterministic_and_covers_the_ranges(lqr, family):
    again = lqr.make_problem(5, seed=0)
    for field in dataclasses.fields(again):
        np.testing.assert_array_equal(getattr(again, field.name), getattr(family[5], field.name))
    assert not np.array_equal(lqr.make_problem(5, seed=1).a, family[5].a)

    shapes = {(p.n, p.m, p.block) for p in family}
    assert {n for n, _, _ in shapes} <= set(range(2, 9)) and {2, 8} <= {n for n, _, _ in shapes}
    assert {m for _, m, _ in shapes} == {1, 2, 3} and {k for _, _, k in shapes} == {1, 2, 3}
    assert {(n, m, k) for n in (2, 8) for m in (1, 3) for k in (1, 3)} <= shapes  # the corners
    conditions = np.array([p.condition for p in family])
    np.testing.assert_allclose(conditions, [p.target_condition for p in family], rtol=1e-6)
    assert conditions.min() < 30 and conditions.max() > 3e3
    assert sum(p.unstable for p in family) >= 3
    for p in family:
        assert (p.spectral_radius > 1.05) == p.unstable and 0.8 <= p.spectral_radius <= 1.2
        assert p.horizon == 5 and p.r > 0 and np.linalg.norm(p.x0) == pytest.approx(1.0)
        assert np.all(p.low < 0) and np.all(p.high > 0) and np.all(-p.low != p.high)
        assert np.all(np.linalg.eigvalsh(p.q) > 0) and np.all(np.linalg.eigvalsh(p.q_final) > 0)
    active = [lqr.active_bounds(p, lqr.bounded_optimum(p)[0]) for p in family]
    assert 4 <= sum(count > 0 for count in active) <= 12


@pytest.mark.parametrize("index", [3, 8, 15])  # unstable; active bounds; both, cond 1e4
def test_bounded_optimum_is_exact_and_optimal(lqr, family, index):
    problem = family[index]
    actions, best = lqr.bounded_optimum(problem)
    assert actions.shape == (problem.steps, problem.m)
    assert np.all(actions >= problem.low) and np.all(actions <= problem.high)
    assert lqr.cost(problem, actions) == pytest.approx(best, rel=1e-9)
    big_g, g = lqr.least_squares(problem)
    u = actions.ravel()
    # KKT: the gradient vanishes on free entries and points into the box on active ones.
    gradient = 2 * big_g.T @ (big_g @ u + g)
    low, high = np.tile(problem.low, problem.steps), np.tile(problem.high, problem.steps)
    on_low, on_high = np.isclose(u, low, rtol=1e-9), np.isclose(u, high, rtol=1e-9)
    scale = np.abs(gradient).max() + 1e-12
    free = ~on_low & ~on_high
    assert np.all(np.abs(gradient[free]) <= 1e-6 * scale + 1e-9)
    assert np.all(gradient[on_low] >= -1e-6 * scale) and np.all(gradient[on_high] <= 1e-6 * scale)
    # No feasible perturbation does better.
    rng = np.random.default_rng(index)
    for size in (1e-4, 1e-2, 1e-1):
        for _ in range(50):
            nudged = np.clip(actions + size * rng.normal(size=actions.shape), problem.low,
                             problem.high)  # fmt: skip
            assert lqr.cost(problem, nudged) >= best * (1 - 1e-12)


@pytest.mark.parametrize("index", [0, 7, 12])
def test_model_and_energy_agree_with_the_numpy_system(lqr, family, index):
    problem = family[index]
    model, energy = lqr.LinearSystem(problem), lqr.QuadraticCost(problem)
    assert (model.latent_dim, model.action_dim, model.action_block) == (
        problem.n, problem.m, problem.block)  # fmt: skip
    actions = np.random.default_rng(index).uniform(problem.low, problem.high,
                                                    size=(4, problem.steps, problem.m))  # fmt: skip
    blocks = torch.tensor(actions.reshape(4, problem.horizon, -1), dtype=torch.float32)
    z0 = torch.tensor(np.tile(problem.x0, (4, 1)), dtype=torch.float32)
    latents = model.rollout(z0, blocks)
    assert latents.shape == (4, problem.horizon + 1, problem.n)
    value = energy(latents, blocks, torch.zeros(4, problem.n))
    expected = [lqr.cost(problem, a) for a in actions]
    np.testing.assert_allclose(value.numpy(), expected, rtol=2e-5)
    blocks.requires_grad_(True)  # differentiable for the gradient planners
    energy(model.rollout(z0, blocks), blocks, torch.zeros(4, problem.n)).sum().backward()
    assert blocks.grad is not None and torch.isfinite(blocks.grad).all()


def test_benchmark_smoke_run(lqr, tmp_path):
    result = lqr.main(lqr.Args(problems=2, iterations=2, out=tmp_path))
    names = {row["planner"] for row in result["rows"]}
    assert {"CEM, sampling only (300 x 30)", "MPPI, sampling only (300 x 30)", "Gradient"} <= names
    for row in result["rows"]:
        assert len(row["ratios"]) == 2 and min(row["ratios"]) >= 1 - 1e-6  # none beats J*
    assert json.loads((tmp_path / "lqr.json").read_text())["rows"] == result["rows"]
    text = (tmp_path / "lqr.md").read_text()
    assert "| CEM (300 x 2 + polish, 4 x 50 L-BFGS) |" in text
    assert "| problem | n | m | k | cond |" in text


@pytest.mark.parametrize("index", [12, 15])  # condition ~4e3 and 1e4 (unstable, bounds active)
def test_gradient_planner_reaches_the_bounded_optimum_of_an_ill_conditioned_problem(
    lqr, family, index
):
    problem = family[index]
    _, optimum = lqr.bounded_optimum(problem)
    model, energy = lqr.LinearSystem(problem), lqr.QuadraticCost(problem)
    goal = np.zeros(problem.n, np.float32)
    ratios, evals = {}, {}
    for optimizer in ("lbfgs", "adam"):
        planner = lm.GradientPlanner(model, energy=energy, optimizer=optimizer, seed=0)
        result = planner.plan(problem.x0.astype(np.float32), goal)
        ratios[optimizer] = lqr.cost(problem, result.actions.astype(np.float64)) / optimum
        evals[optimizer] = result.energy_evals
    assert ratios["lbfgs"] <= 1.01  # the default budget reaches the optimum
    assert ratios["adam"] > ratios["lbfgs"]  # which first-order steps do not, at this budget
    assert evals["lbfgs"] < evals["adam"]  # L-BFGS stopped on convergence, Adam ran them all


@pytest.mark.parametrize("cls", [lm.CEM, lm.MPPI], ids=["cem", "mppi"])
def test_a_full_covariance_follows_the_valley_of_an_ill_conditioned_problem(lqr, family, cls):
    problem = family[12]  # condition ~4e3: the diagonal sampler stalls across the valley
    _, optimum = lqr.bounded_optimum(problem)
    model, energy = lqr.LinearSystem(problem), lqr.QuadraticCost(problem)
    goal = np.zeros(problem.n, np.float32)
    ratios = {}
    for covariance in ("diagonal", "full"):
        planner = cls(model, energy=energy, covariance=covariance, seed=0, iterations=30,
                      polish_steps=0)  # sampling alone  # fmt: skip
        result = planner.plan(problem.x0.astype(np.float32), goal)
        ratios[covariance] = lqr.cost(problem, result.actions.astype(np.float64)) / optimum
    assert ratios["full"] < 0.75 * ratios["diagonal"], ratios


def test_gradient_planner_tolerance_zero_runs_every_iteration(lqr, family):
    problem = family[3]
    model, energy = lqr.LinearSystem(problem), lqr.QuadraticCost(problem)
    goal = np.zeros(problem.n, np.float32)
    stopping = lm.GradientPlanner(model, energy=energy, restarts=2, iterations=60)
    exact = lm.GradientPlanner(model, energy=energy, restarts=2, iterations=60, tolerance=0.0)
    assert stopping.plan(problem.x0.astype(np.float32), goal).iterations < 60
    assert exact.plan(problem.x0.astype(np.float32), goal).iterations == 60
