"""Planner contract, run through a user-defined model that only satisfies the protocol.

The toy system: latent = position in R^2, each model step adds ``GAIN * sum(block actions)``.
With energy ``|z_H - g|^2 + LAM * |actions|^2`` the optimum is known in closed form: every
env action equals ``a* = GAIN (g - z0) / (GAIN^2 n + LAM)`` with n = horizon * block.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import lewm_mpc as lm

GAIN, LAM = 0.1, 0.01
PLANNERS = [lm.CEM]


class PointMass:
    """Satisfies lewm_mpc.LatentWorldModel without inheriting from anything."""

    latent_dim = 2
    action_dim = 2
    action_block = 2
    obs_shape = (2,)
    obs_dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self, low: float = -1.0, high: float = 1.0) -> None:
        self.action_low = torch.full((2,), low)
        self.action_high = torch.full((2,), high)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float()

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        steps = actions.view(*actions.shape[:2], self.action_block, 2).sum(2) * GAIN  # (S, H, 2)
        return torch.cat([z0[:, None], z0[:, None] + steps.cumsum(1)], dim=1)


def regularized_goal_energy(latents, actions, goal):
    return (latents[:, -1] - goal).pow(2).sum(-1) + LAM * actions.pow(2).sum((1, 2))


def optimum(z0, goal, horizon, block):
    n = horizon * block
    action = GAIN * (goal - z0) / (GAIN**2 * n + LAM)
    energy = np.sum((z0 + GAIN * n * action - goal) ** 2) + LAM * n * np.sum(action**2)
    return action, energy


def make(cls, model=None, **kwargs):
    kwargs.setdefault("energy", regularized_goal_energy)
    return cls(model or PointMass(), horizon=4, seed=0, **kwargs)


@pytest.mark.parametrize("cls", PLANNERS)
def test_reaches_the_known_optimum_of_a_quadratic(cls):
    z0, goal = np.array([0.0, 0.0], np.float32), np.array([0.5, -0.3], np.float32)
    result = make(cls).plan(z0, goal)
    action, energy = optimum(z0, goal, 4, 2)
    assert result.energy == pytest.approx(energy, rel=0.02)
    assert np.allclose(result.actions.mean(0), action, atol=0.02)
    assert result.actions.shape == (8, 2) and result.latents.shape == (5, 2)
    assert result.terms == {"task": pytest.approx(result.energy)}
    assert result.feasible is True
    assert result.history.shape == (result.iterations,)
    assert np.all(np.diff(result.history) <= 1e-6)  # best-so-far never worsens


@pytest.mark.parametrize("cls", PLANNERS)
def test_actions_stay_within_bounds(cls):
    model = PointMass(low=-0.2, high=0.3)  # the optimum (far goal) lies outside the bounds
    result = make(cls, model).plan(np.zeros(2, np.float32), np.array([9.0, -9.0], np.float32))
    assert result.actions.min() >= -0.2 - 1e-6 and result.actions.max() <= 0.3 + 1e-6
    assert np.allclose(result.actions[:, 0], 0.3, atol=0.01)
    assert np.allclose(result.actions[:, 1], -0.2, atol=0.01)


@pytest.mark.parametrize("cls", PLANNERS)
def test_deterministic_under_a_seed(cls):
    obs, goal = np.zeros(2, np.float32), np.array([0.4, 0.1], np.float32)
    first, second = make(cls).plan(obs, goal), make(cls).plan(obs, goal)
    assert np.array_equal(first.actions, second.actions)
    other = cls(PointMass(), horizon=4, seed=1, energy=regularized_goal_energy).plan(obs, goal)
    assert not np.array_equal(first.actions, other.actions)


@pytest.mark.parametrize("cls", PLANNERS)
def test_warm_start_shifts_the_previous_plan_and_reset_clears_it(cls):
    planner = make(cls, iterations=1, num_samples=2, topk=1, init_std=1e-3, min_std=0.0)
    obs, goal = np.zeros(2, np.float32), np.array([0.4, 0.1], np.float32)
    planner.plan(obs, goal)
    previous = planner._previous.clone()  # (1, H, block*A)
    init = planner._initial_mean(1)
    assert torch.equal(init[:, :-1], previous[:, 1:])
    assert torch.equal(init[:, -1], planner.center.expand(1, -1))
    planner.reset()
    assert torch.equal(planner._initial_mean(1), planner.center.expand(1, 4, -1))


@pytest.mark.parametrize("cls", PLANNERS)
def test_batched_planning_matches_per_env_optimum(cls):
    obs = np.array([[0.0, 0.0], [0.2, 0.2], [-0.3, 0.1]], np.float32)
    goal = np.array([[0.5, -0.3], [0.2, 0.6], [0.0, 0.0]], np.float32)
    result = make(cls).plan(obs, goal)
    assert result.batched and result.actions.shape == (3, 8, 2)
    assert result.energy.shape == (3,) and result.feasible.shape == (3,)
    for i in range(3):
        _action, energy = optimum(obs[i], goal[i], 4, 2)
        assert result.energy[i] == pytest.approx(energy, rel=0.02)


@pytest.mark.parametrize("cls", PLANNERS)
def test_deadline_is_honoured_with_at_least_one_iteration(cls):
    class SlowPointMass(PointMass):
        def rollout(self, z0, actions):
            time.sleep(0.02)
            return super().rollout(z0, actions)

    planner = make(cls, SlowPointMass(), iterations=1000)
    result = planner.plan(np.zeros(2, np.float32), np.ones(2, np.float32), deadline_s=0.1)
    assert 1 <= result.iterations < 1000
    assert result.history.shape == (result.iterations,)
    tiny = planner.plan(np.zeros(2, np.float32), np.ones(2, np.float32), deadline_s=1e-6)
    assert tiny.iterations == 1


@pytest.mark.parametrize("cls", PLANNERS)
@pytest.mark.parametrize(
    ("obs", "goal", "message"),
    [
        (np.zeros(3, np.float32), np.zeros(3, np.float32), "shape"),
        (np.zeros((2, 2, 2), np.float32), np.zeros((2, 2, 2), np.float32), "shape"),
        (np.array([np.nan, 0], np.float32), np.zeros(2, np.float32), "NaN or inf"),
        (np.zeros(2, np.float32), np.array([np.inf, 0], np.float32), "NaN or inf"),
        (np.zeros(2, np.float32), np.zeros((1, 2), np.float32), "same shape"),
        (np.array(["a", "b"]), np.zeros(2, np.float32), "dtype"),
        ([0.0, 0.0], np.zeros(2, np.float32), "numpy array or torch tensor"),
        (np.zeros(2, bool), np.zeros(2, np.float32), "dtype"),
    ],
)
def test_bad_inputs_raise_value_errors(cls, obs, goal, message):
    with pytest.raises(ValueError, match=message):
        make(cls).plan(obs, goal)


def test_pixel_model_rejects_wrong_dtype_and_a_state_goal():
    from conftest import tiny_config

    planner = lm.CEM(lm.WorldModel(tiny_config()).eval(), num_samples=8, iterations=1, topk=2)
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="expected uint8"):
        planner.plan(image.astype(np.float32), image)
    with pytest.raises(ValueError, match=r"goal has shape \(2,\)"):
        planner.plan(image, np.zeros(2, np.float32))
    assert planner.plan(image, image).actions.shape == (25, 2)


@pytest.mark.parametrize("cls", PLANNERS)
def test_nan_energy_is_an_error_not_a_silent_plan(cls):
    def broken(latents, actions, goal):
        return torch.full((latents.shape[0],), float("nan"))

    with pytest.raises(ValueError, match="NaN"):
        make(cls, energy=broken).plan(np.zeros(2, np.float32), np.ones(2, np.float32))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"horizon": -1}, "horizon"),
        ({"topk": 400}, "topk"),
        ({"num_samples": 1}, "num_samples"),
        ({"iterations": 0}, "iterations"),
        ({"receding_horizon": 9}, "receding_horizon"),
        ({"init_std": 0.0}, "init_std"),
    ],
)
def test_invalid_cem_configs_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lm.CEM(PointMass(), **kwargs)


def test_model_missing_protocol_members_is_refused():
    with pytest.raises(ValueError, match="LatentWorldModel protocol"):
        lm.CEM(object())


def test_hard_guardrail_ranks_feasible_plans_first():
    # Keep x-position of the final latent <= 0.1 while the goal lies at x = 0.5.
    def x_over(latents, actions, goal):
        return (latents[:, -1, 0] - 0.1).clamp_min(0.0)

    guard = lm.Guardrail(x_over, name="x_limit", weight=0.0, hard=True)
    planner = make(lm.CEM, guardrails=[guard])
    result = planner.plan(np.zeros(2, np.float32), np.array([0.5, 0.0], np.float32))
    assert result.feasible is True and result.terms["x_limit"] == 0.0
    assert result.latents[-1, 0] == pytest.approx(0.1, abs=0.02)
