"""The LQR benchmark's ground truth (Riccati recursion) and a smoke run of its entry point."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "lqr.py"


@pytest.fixture(scope="module")
def lqr():
    spec = importlib.util.spec_from_file_location("bench_lqr", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def stacked_least_squares(lqr, x0, horizon):
    """Optimal actions by brute force: minimize J over the stacked action vector (H * m,)."""
    a, b = lqr.double_integrator()
    n, m = b.shape
    # States x_1..x_H = Phi x0 + Gamma u, with u = (u_0, ..., u_{H-1}).
    phi = np.vstack([np.linalg.matrix_power(a, t + 1) for t in range(horizon)])  # (H*n, n)
    gamma = np.zeros((horizon * n, horizon * m))
    for t in range(horizon):
        for s in range(t + 1):
            gamma[t * n : (t + 1) * n, s * m : (s + 1) * m] = np.linalg.matrix_power(a, t - s) @ b
    weights = scipy.linalg.block_diag(*([lqr.Q] * (horizon - 1)), lqr.Q_FINAL)  # (H*n, H*n)
    control = scipy.linalg.block_diag(*([lqr.R] * horizon))  # (H*m, H*m)
    hessian = gamma.T @ weights @ gamma + control
    u = -np.linalg.solve(hessian, gamma.T @ weights @ phi @ x0)
    return u.reshape(horizon, m)


def test_riccati_matches_brute_force_least_squares(lqr):
    a, b = lqr.double_integrator()
    horizon = 10
    gains, costs = lqr.riccati(a, b, lqr.Q, lqr.R, lqr.Q_FINAL, horizon)
    assert gains.shape == (horizon, 2, 4) and costs.shape == (horizon + 1, 4, 4)
    for x0 in np.random.default_rng(0).uniform(-1, 1, size=(4, 4)):
        riccati_actions = lqr.optimal_actions(a, b, gains, x0)
        brute = stacked_least_squares(lqr, x0, horizon)
        np.testing.assert_allclose(riccati_actions, brute, rtol=1e-8, atol=1e-10)
        expected = x0 @ costs[0] @ x0 - x0 @ lqr.Q @ x0
        assert lqr.cost(a, b, x0, riccati_actions) == pytest.approx(expected, rel=1e-10)
        nudged = riccati_actions + 1e-3 * np.random.default_rng(1).normal(size=brute.shape)
        assert lqr.cost(a, b, x0, nudged) > expected  # a strict minimum


def test_long_horizon_riccati_gain_is_the_infinite_horizon_gain(lqr):
    a, b = lqr.double_integrator()
    gains, _ = lqr.riccati(a, b, lqr.Q, lqr.R, lqr.Q, horizon=400)
    p = scipy.linalg.solve_discrete_are(a, b, lqr.Q, lqr.R)
    gain = np.linalg.solve(lqr.R + b.T @ p @ b, b.T @ p @ a)
    np.testing.assert_allclose(gains[0], gain, rtol=1e-6, atol=1e-8)


def test_model_and_energy_agree_with_the_numpy_system(lqr):
    a, b = lqr.double_integrator()
    model, energy = lqr.LinearSystem(a, b), lqr.QuadraticCost()
    x0 = np.array([0.5, -0.2, 0.1, 0.3])
    actions = np.random.default_rng(0).normal(size=(10, 2))
    latents = model.rollout(torch.tensor(x0[None], dtype=torch.float32),
                            torch.tensor(actions[None], dtype=torch.float32))  # fmt: skip
    value = energy(latents, torch.tensor(actions[None], dtype=torch.float32), torch.zeros(1, 4))
    assert value.item() == pytest.approx(lqr.cost(a, b, x0, actions), rel=1e-5)


def test_benchmark_smoke_run(lqr, tmp_path):
    result = lqr.main(lqr.Args(out=tmp_path, starts=2, iterations=2))
    assert {row["planner"] for row in result["rows"]} >= {"CEM", "MPPI", "Gradient"}
    for row in result["rows"]:
        assert row["ratio_mean"] >= 1 - 1e-4  # no plan beats the optimum
    assert json.loads((tmp_path / "lqr.json").read_text())["rows"] == result["rows"]
    assert "| CEM |" in (tmp_path / "lqr.md").read_text()
