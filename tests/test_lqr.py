"""The LQR benchmark's second ground truth: the Riccati recursion on the lifted (block) system,
against brute-force least squares, the infinite-horizon gain, and the script's stacked ``G, g``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from conftest import load_benchmark


@pytest.fixture(scope="module")
def lqr():
    return load_benchmark("lqr")


def stacked_least_squares(a, b, q, r, q_final, x0, horizon):
    """Optimal actions by brute force: minimize J over the stacked action vector (H * m,)."""
    n, m = b.shape
    # States x_1..x_H = Phi x0 + Gamma u, with u = (u_0, ..., u_{H-1}).
    phi = np.vstack([np.linalg.matrix_power(a, t + 1) for t in range(horizon)])  # (H*n, n)
    gamma = np.zeros((horizon * n, horizon * m))
    for t in range(horizon):
        for s in range(t + 1):
            gamma[t * n : (t + 1) * n, s * m : (s + 1) * m] = np.linalg.matrix_power(a, t - s) @ b
    weights = scipy.linalg.block_diag(*([q] * (horizon - 1)), q_final)  # (H*n, H*n)
    control = scipy.linalg.block_diag(*([r] * horizon))  # (H*m, H*m)
    hessian = gamma.T @ weights @ gamma + control
    u = -np.linalg.solve(hessian, gamma.T @ weights @ phi @ x0)
    return u.reshape(horizon, m)


@pytest.mark.parametrize("index", [1, 7, 12])  # k = 1; k = 3 unstable; k = 3
def test_riccati_matches_brute_force_and_the_stacked_least_squares(lqr, index):
    problem = lqr.make_problem(index, seed=0)
    a, b = lqr.lifted(problem)
    r = problem.r * np.eye(b.shape[1])
    gains, _ = lqr.riccati(a, b, problem.q, r, problem.q_final, problem.horizon)
    x, riccati_actions = problem.x0, []
    for gain in gains:
        riccati_actions.append(-gain @ x)
        x = a @ x + b @ riccati_actions[-1]
    brute = stacked_least_squares(a, b, problem.q, r, problem.q_final, problem.x0, 5)
    np.testing.assert_allclose(riccati_actions, brute, rtol=1e-6, atol=1e-9)
    big_g, g = lqr.least_squares(problem)  # the script's own (env-step) construction
    free = np.linalg.lstsq(big_g, -g, rcond=None)[0]
    np.testing.assert_allclose(free.reshape(brute.shape), brute, rtol=1e-6, atol=1e-9)
    expected = lqr.unconstrained_optimum(problem)
    assert lqr.cost(problem, brute.reshape(problem.steps, problem.m)) == pytest.approx(
        expected, rel=1e-9
    )
    residual = big_g @ free + g
    assert residual @ residual == pytest.approx(expected, rel=1e-9)


def test_long_horizon_riccati_gain_is_the_infinite_horizon_gain(lqr):
    problem = lqr.make_problem(1, seed=0)
    a, b = lqr.lifted(problem)
    r = problem.r * np.eye(b.shape[1])
    gains, _ = lqr.riccati(a, b, problem.q, r, problem.q, horizon=400)
    p = scipy.linalg.solve_discrete_are(a, b, problem.q, r)
    gain = np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)
    np.testing.assert_allclose(gains[0], gain, rtol=1e-6, atol=1e-8)
