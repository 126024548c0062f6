"""Planner contract, run through a user-defined model that only satisfies the protocol.

The toy system: latent = position in R^2, each model step adds ``GAIN * sum(block actions)``.
With energy ``|z_H - g|^2 + LAM * |actions|^2`` the optimum is known in closed form: every
env action equals ``a* = GAIN (g - z0) / (GAIN^2 n + LAM)`` with n = horizon * block.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest
import torch

import lewm_mpc as lm

GAIN, LAM = 0.1, 0.01
PLANNERS = [
    lm.CEM,
    lm.MPPI,
    lm.CMAES,
    lm.GradientPlanner,
    lm.GradientPlanner.hybrid,
    functools.partial(lm.CEM, polish_steps=0),
    functools.partial(lm.MPPI, polish_steps=0),
]
# cem / mppi: the defaults (a few rounds, then an L-BFGS polish); *-sampling: no polish
PLANNER_IDS = ["cem", "mppi", "cmaes", "gradient", "hybrid", "cem-sampling", "mppi-sampling"]
# The smallest budget of each planner (one iteration, almost no exploration).
TINY = {
    "cem": {"iterations": 1, "num_samples": 2, "topk": 1, "init_std": 1e-3, "min_std": 0.0,
            "polish_steps": 1},
    "mppi": {"iterations": 1, "num_samples": 2, "noise_std": 1e-3, "min_std": 0.0,
             "polish_steps": 1},
    "cmaes": {"iterations": 1, "num_samples": 2, "init_std": 1e-3},
    "gradient": {"iterations": 1, "restarts": 1},
    "hybrid": {"iterations": 1, "restarts": 1, "cem_iterations": 1, "cem_samples": 2,
               "cem_topk": 1},
    "cem-sampling": {"iterations": 1, "num_samples": 2, "topk": 1, "init_std": 1e-3,
                     "min_std": 0.0},
    "mppi-sampling": {"iterations": 1, "num_samples": 2, "noise_std": 1e-3, "min_std": 0.0},
}  # fmt: skip
planners = pytest.mark.parametrize("cls", PLANNERS, ids=PLANNER_IDS)


def tiny_budget(cls):
    return TINY[PLANNER_IDS[PLANNERS.index(cls)]]


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


@planners
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


@planners
def test_a_weighted_energy_sum_reaches_its_weighted_optimum(cls):
    # |z_H - g|^2 + 3 |z_H - b|^2 (b: a fixed target through a probe) is least at (g + 3b) / 4.
    target = np.array([-0.4, 0.4], np.float32)
    towards_target = lm.energies.ProbedGoalDistance(lambda z: z, running_weight=0.0, target=target)
    energy = lm.EnergySum((lm.GoalDistance(running_weight=0.0), towards_target), (1.0, 3.0))
    goal = np.array([0.4, 0.0], np.float32)
    result = make(cls, energy=energy).plan(np.zeros(2, np.float32), goal)
    assert np.allclose(result.latents[-1], (goal + 3 * target) / 4, atol=0.02)


@planners
def test_actions_stay_within_bounds(cls):
    model = PointMass(low=-0.2, high=0.3)  # the optimum (far goal) lies outside the bounds
    result = make(cls, model).plan(np.zeros(2, np.float32), np.array([9.0, -9.0], np.float32))
    assert result.actions.min() >= -0.2 - 1e-6 and result.actions.max() <= 0.3 + 1e-6
    assert np.allclose(result.actions[:, 0], 0.3, atol=0.01)
    assert np.allclose(result.actions[:, 1], -0.2, atol=0.01)


@planners
def test_deterministic_under_a_seed(cls):
    # Gradient restart 0 starts deterministically from the warm start and, on this convex
    # problem, reaches the same plan as every other restart: the seed shows in the random
    # restarts before they converge.
    kwargs = {"iterations": 1, "restarts": 16} if cls is lm.GradientPlanner else {}
    obs, goal = np.zeros(2, np.float32), np.array([0.4, 0.1], np.float32)
    first, second = make(cls, **kwargs).plan(obs, goal), make(cls, **kwargs).plan(obs, goal)
    assert np.array_equal(first.actions, second.actions)
    other = cls(PointMass(), horizon=4, seed=1, energy=regularized_goal_energy, **kwargs)
    assert not np.array_equal(first.actions, other.plan(obs, goal).actions)


@planners
def test_warm_start_shifts_the_previous_plan_and_reset_clears_it(cls):
    planner = make(cls, **tiny_budget(cls))
    obs, goal = np.zeros(2, np.float32), np.array([0.4, 0.1], np.float32)
    planner.plan(obs, goal)
    previous = planner._previous.clone()  # (1, H, block*A)
    init = planner._initial_mean(1)
    assert torch.equal(init[:, :-1], previous[:, 1:])
    assert torch.equal(init[:, -1], planner.center.expand(1, -1))
    planner.reset()
    assert torch.equal(planner._initial_mean(1), planner.center.expand(1, 4, -1))


@planners
def test_batched_planning_matches_per_env_optimum(cls):
    obs = np.array([[0.0, 0.0], [0.2, 0.2], [-0.3, 0.1]], np.float32)
    goal = np.array([[0.5, -0.3], [0.2, 0.6], [0.0, 0.0]], np.float32)
    result = make(cls).plan(obs, goal)
    assert result.batched and result.actions.shape == (3, 8, 2)
    assert result.energy.shape == (3,) and result.feasible.shape == (3,)
    for i in range(3):
        _action, energy = optimum(obs[i], goal[i], 4, 2)
        assert result.energy[i] == pytest.approx(energy, rel=0.02)


@planners
def test_deadline_is_a_hard_bound(cls, monkeypatch):
    """On a clock that only the model's rollouts advance (20 ms each), a plan returns before
    its deadline; with no time for one iteration it scores and returns the warm start."""
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])

    class SlowPointMass(PointMass):
        def rollout(self, z0, actions):
            now[0] += 0.02
            return super().rollout(z0, actions)

    planner = make(cls, SlowPointMass(), iterations=1000)
    start, goal = np.zeros(2, np.float32), np.ones(2, np.float32)
    result = planner.plan(start, goal, deadline_s=0.1)
    assert 1 <= result.iterations < 1000 and result.solve_s <= 0.1
    assert result.history.shape == (result.iterations,)
    again = planner.plan(start, goal, deadline_s=0.1)  # iteration times known from the start
    assert again.solve_s <= 0.1
    warm = planner._initial_mean(1).numpy().reshape(-1, 2)  # what the next plan starts from
    tiny = planner.plan(start, goal, deadline_s=0.01)
    assert tiny.iterations == 0 and tiny.history.shape == (0,) and tiny.energy_evals == 1
    np.testing.assert_allclose(tiny.actions, warm)
    assert np.isfinite(tiny.energy) and tiny.solve_s <= 0.02  # one rollout past the deadline


@planners
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


@planners
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


def x_over(latents, actions, goal, limit=0.1):
    """Hard-guardrail violation: x-position of the final latent above ``limit``."""
    return (latents[:, -1, 0] - limit).clamp_min(0.0)


@planners
def test_hard_guardrail_ranks_feasible_plans_first(cls):
    # Keep x-position of the final latent <= 0.1 while the goal lies at x = 0.5.
    guard = lm.Guardrail(x_over, name="x_limit", weight=0.0, hard=True)
    planner = make(cls, guardrails=[guard])
    result = planner.plan(np.zeros(2, np.float32), np.array([0.5, 0.0], np.float32))
    assert result.feasible is True and result.terms["x_limit"] == 0.0
    assert result.latents[-1, 0] == pytest.approx(0.1, abs=0.02)


@planners
def test_constrained_optimum_lies_on_the_constraint(cls):
    # min |z_H - g|^2 s.t. z_H[0] <= 0.1 with g[0] = 0.5: the solution is z_H = (0.1, g[1]).
    # The guardrail has no soft weight: only the planner's hard-constraint handling (feasible
    # first ranking, or the augmented Lagrangian for gradient planners) keeps it feasible.
    guard = lm.Guardrail(x_over, name="x_limit", weight=0.0, hard=True)
    planner = make(cls, energy=lm.GoalDistance(running_weight=0.0), guardrails=[guard])
    goal = np.array([0.5, -0.2], np.float32)
    result = planner.plan(np.zeros(2, np.float32), goal)
    assert result.feasible is True and result.terms["x_limit"] == 0.0
    assert result.latents[-1, 0] == pytest.approx(0.1, abs=0.01)
    assert result.latents[-1, 1] == pytest.approx(goal[1], abs=0.01)
    assert result.energy == pytest.approx(0.4**2, abs=0.01)


def test_augmented_lagrangian_turns_an_infeasible_start_feasible():
    # Restart 0 starts at the unconstrained optimum's side of the constraint; the growing
    # multiplier must push every restart back inside it.
    guard = lm.Guardrail(x_over, name="x_limit", weight=0.0, hard=True)
    planner = make(lm.GradientPlanner, energy=lm.GoalDistance(0.0), guardrails=[guard],
                   restarts=1)  # fmt: skip
    planner._previous = torch.full((1, 4, 4), 0.9)  # warm start far beyond z_H[0] = 0.1
    result = planner.plan(np.zeros(2, np.float32), np.array([0.5, -0.2], np.float32))
    assert result.feasible is True
    assert result.latents[-1] == pytest.approx([0.1, -0.2], abs=0.01)


class LinearLatentModel(torch.nn.Module):
    """A protocol model with trainable parameters: z' = z + W (sum of block actions)."""

    latent_dim = action_dim = action_block = 2
    obs_shape = (2,)
    obs_dtype = torch.float32
    action_low, action_high = torch.full((2,), -1.0), torch.full((2,), 1.0)

    def __init__(self) -> None:
        super().__init__()
        self.mix = torch.nn.Linear(2, 2, bias=False)
        torch.nn.init.eye_(self.mix.weight)
        self.mix.weight.data *= GAIN

    @property
    def device(self) -> torch.device:
        return self.mix.weight.device

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float()

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        blocks = actions.view(*actions.shape[:2], self.action_block, 2).sum(2)  # (S, H, 2)
        return torch.cat([z0[:, None], z0[:, None] + self.mix(blocks).cumsum(1)], dim=1)


@pytest.mark.parametrize("hybrid", [False, True], ids=["gradient", "hybrid"])
def test_gradient_planner_leaves_no_gradients_and_no_graph(hybrid):
    model = LinearLatentModel()
    make_planner = lm.GradientPlanner.hybrid if hybrid else lm.GradientPlanner
    planner = make_planner(model, horizon=4, iterations=20, energy=regularized_goal_energy)
    obs, goal = np.zeros(2, np.float32), np.array([0.5, -0.3], np.float32)
    with torch.no_grad():  # planning still works inside a caller's no_grad block
        planner.plan(obs, goal)
    for _ in range(3):
        result = planner.plan(obs, goal)
    assert all(parameter.grad is None for parameter in model.parameters())
    assert isinstance(result.actions, np.ndarray) and isinstance(result.energy, float)
    state = [value for value in vars(planner).values() if isinstance(value, torch.Tensor)]
    assert state and all(not t.requires_grad and t.grad_fn is None for t in state)
    _action, energy = optimum(obs, goal, 4, 2)
    assert result.energy == pytest.approx(energy, rel=0.02)


@planners
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_reduced_precision_rollout_still_reaches_the_known_optimum(cls, dtype):
    planner = make(cls, LinearLatentModel(), rollout_dtype=dtype)
    z0, goal = np.zeros(2, np.float32), np.array([0.5, -0.3], np.float32)
    result = planner.plan(z0, goal)
    action, energy = optimum(z0, goal, 4, 2)
    assert result.energy == pytest.approx(energy, rel=0.05)
    assert np.allclose(result.actions.mean(0), action, atol=0.03)
    assert result.latents.dtype == np.float32 and isinstance(result.energy, float)


@planners
def test_bfloat16_rollout_runs_the_world_model_in_reduced_precision(cls):
    from conftest import tiny_config

    torch.manual_seed(0)
    model = lm.WorldModel(tiny_config()).eval()
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    planner = cls(model, horizon=3, rollout_dtype="bfloat16", **tiny_budget(cls))
    result = planner.plan(image, image)
    assert all(parameter.grad is None for parameter in model.parameters())
    assert result.latents.dtype == np.float32
    blocks = torch.from_numpy(result.actions).reshape(1, 3, -1)  # (1, H, block * A)
    with torch.no_grad():
        exact = model.rollout(model.encode(torch.from_numpy(image)[None]), blocks)[0].numpy()
    error = np.abs(result.latents - exact).max()
    assert 0 < error < 0.1 * np.abs(exact).max()  # bfloat16 rounding: visible, but small


def test_gradient_planner_through_the_pixel_world_model_keeps_parameters_clean():
    from conftest import tiny_config

    model = lm.WorldModel(tiny_config()).eval()
    planner = lm.GradientPlanner(model, horizon=2, iterations=3, restarts=2)
    image = np.zeros((64, 64, 3), np.uint8)
    result = planner.plan(image, image)
    assert result.actions.shape == (10, 2) and result.energy_evals == 6
    assert all(parameter.grad is None for parameter in model.parameters())


def test_hybrid_counts_cem_and_gradient_work():
    planner = make(lm.GradientPlanner.hybrid, cem_iterations=3, cem_samples=20, cem_topk=4,
                   iterations=5, restarts=2)  # fmt: skip
    result = planner.plan(np.zeros(2, np.float32), np.ones(2, np.float32))
    assert result.iterations == 8 and result.history.shape == (8,)
    assert result.energy_evals == 3 * 20 + 5 * 2
    assert planner.config.cem_iterations == 3
    assert lm.GradientPlanner.hybrid(PointMass()).config == lm.GradientConfig.hybrid()


def test_mppi_lower_temperature_moves_the_mean_closer_to_the_best_candidate():
    def gap(temperature):
        planner = make(lm.MPPI, iterations=1, num_samples=64, temperature=temperature,
                       polish_steps=0)  # fmt: skip
        result = planner.plan(np.zeros(2, np.float32), np.array([0.5, -0.3], np.float32))
        mean = planner._previous[0].reshape(-1, 2).numpy()  # (H * block, A)
        return np.abs(mean - result.actions).max()

    greedy, middle, flat = gap(1e-3), gap(0.1), gap(100.0)
    assert greedy < 1e-3 < middle < flat


def test_mppi_topk_one_moves_the_mean_onto_the_best_candidate():
    planner = make(lm.MPPI, iterations=1, num_samples=32, topk=1, polish_steps=0)
    result = planner.plan(np.zeros(2, np.float32), np.array([0.5, -0.3], np.float32))
    assert np.array_equal(planner._previous[0].reshape(-1, 2).numpy(), result.actions)


def test_cem_keep_elites_carries_the_previous_elites_over():
    planner = make(lm.CEM, iterations=2, num_samples=10, topk=4, keep_elites=0.5)
    scored = []
    evaluate = planner._evaluate

    def recording(z0, z_goal, candidates):
        scored.append(candidates.clone())
        return evaluate(z0, z_goal, candidates)

    planner._evaluate = recording
    planner.plan(np.zeros(2, np.float32), np.array([0.5, -0.3], np.float32))
    first, second = scored
    energies = regularized_goal_energy(
        PointMass().rollout(torch.zeros(10, 2), first[0]), first[0], torch.tensor([0.5, -0.3])
    )
    elites = first[0, torch.argsort(energies)[:2]]  # round(0.5 * 4) = 2 kept
    assert torch.equal(second[0, -2:], elites)


@pytest.mark.parametrize("cls", [lm.CEM, lm.MPPI], ids=["cem", "mppi"])
def test_full_covariance_sampling_is_optimal_bounded_batched_and_deterministic(cls):
    z0, goal = np.zeros(2, np.float32), np.array([0.5, -0.3], np.float32)
    first = make(cls, covariance="full").plan(z0, goal)
    assert np.array_equal(first.actions, make(cls, covariance="full").plan(z0, goal).actions)
    assert first.energy == pytest.approx(optimum(z0, goal, 4, 2)[1], rel=0.02)
    assert not np.array_equal(first.actions, make(cls).plan(z0, goal).actions)
    bounded = make(cls, PointMass(low=-0.2, high=0.3), covariance="full")
    far = bounded.plan(z0, np.array([9.0, -9.0], np.float32))
    assert far.actions.min() >= -0.2 - 1e-6 and far.actions.max() <= 0.3 + 1e-6
    starts = np.array([[0.0, 0.0], [0.2, 0.2]], np.float32)
    goals = np.array([[0.5, -0.3], [0.0, 0.0]], np.float32)
    batched = make(cls, covariance="full").plan(starts, goals)
    for i in range(2):
        assert batched.energy[i] == pytest.approx(optimum(starts[i], goals[i], 4, 2)[1], rel=0.02)


@pytest.mark.parametrize(("beta", "lag_one"), [(0.0, (-0.1, 0.1)), (2.0, (0.6, 1.0))])
def test_colored_noise_has_unit_variance_and_the_expected_correlation(beta, lag_one):
    from lewm_mpc.planners.cem import colored_noise

    noise = colored_noise((4000, 20), beta, torch.Generator().manual_seed(0))
    assert noise.shape == (4000, 20) and noise.dtype == torch.float32
    assert noise.var(dim=0).mean().item() == pytest.approx(1.0, abs=0.05)
    correlation = (noise[:, 1:] * noise[:, :-1]).mean().item()
    assert lag_one[0] < correlation < lag_one[1]
    again = colored_noise((4000, 20), beta, torch.Generator().manual_seed(0))
    assert torch.equal(noise, again)


def test_cem_with_icem_options_stays_bounded_deterministic_and_optimal():
    options = {"noise_beta": 2.0, "keep_elites": 0.3}
    z0, goal = np.zeros(2, np.float32), np.array([0.5, -0.3], np.float32)
    first, second = make(lm.CEM, **options).plan(z0, goal), make(lm.CEM, **options).plan(z0, goal)
    assert np.array_equal(first.actions, second.actions)
    assert first.actions.shape == (8, 2) and np.abs(first.actions).max() <= 1.0
    assert first.energy == pytest.approx(optimum(z0, goal, 4, 2)[1], rel=0.02)
    plain = make(lm.CEM).plan(z0, goal)
    assert not np.array_equal(first.actions, plain.actions)
    bounded = make(lm.CEM, PointMass(low=-0.2, high=0.3), **options)
    far = bounded.plan(z0, np.array([9.0, -9.0], np.float32))
    assert far.actions.min() >= -0.2 - 1e-6 and far.actions.max() <= 0.3 + 1e-6


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (lm.MPPI, {"horizon": -1}, "horizon"),
        (lm.MPPI, {"topk": 400}, "topk"),
        (lm.MPPI, {"topk": 0}, "topk"),
        (lm.MPPI, {"temperature": 0.0}, "temperature"),
        (lm.MPPI, {"temperature": -1.0}, "temperature"),
        (lm.MPPI, {"noise_std": 0.0}, "noise_std"),
        (lm.MPPI, {"num_samples": 1}, "num_samples"),
        (lm.GradientPlanner, {"horizon": -1}, "horizon"),
        (lm.GradientPlanner, {"lr": 0.0}, "lr"),
        (lm.GradientPlanner, {"lr": -0.1}, "lr"),
        (lm.GradientPlanner, {"restarts": 0}, "restarts"),
        (lm.GradientPlanner, {"iterations": 0}, "iterations"),
        (lm.GradientPlanner, {"final_lr": 0.0}, "final_lr"),
        (lm.GradientPlanner, {"multiplier_every": 0}, "multiplier_every"),
        (lm.GradientPlanner, {"rho_growth": 0.5}, "rho_growth"),
        (lm.GradientPlanner, {"cem_iterations": -1}, "cem_iterations"),
        (lm.GradientPlanner, {"cem_iterations": 2, "cem_topk": 500}, "cem_topk"),
        (lm.CMAES, {"parents": 31}, "parents"),
        (lm.CMAES, {"parents": 0}, "parents"),
        (lm.CMAES, {"init_std": 0.0}, "init_std"),
        (lm.CMAES, {"num_samples": 1}, "num_samples"),
        (lm.CEM, {"polish_steps": -1}, "polish_steps"),
        (lm.CEM, {"noise_beta": -1.0}, "noise_beta"),
        (lm.CEM, {"keep_elites": 1.5}, "keep_elites"),
        (lm.CEM, {"keep_elites": 1.0, "topk": 300}, "keep_elites"),
        (lm.CEM, {"rollout_dtype": "int8"}, "rollout_dtype"),
        (lm.CEM, {"covariance": "dense"}, "covariance"),
        (lm.MPPI, {"covariance_smoothing": 0.0}, "covariance_smoothing"),
        (lm.MPPI, {"covariance": "full", "adapt_std": False}, "adapt_std"),
        (lm.CEM, {"covariance": "full", "noise_beta": 2.0}, "exclusive"),
        (lm.GradientPlanner, {"rollout_dtype": "float64"}, "rollout_dtype"),
    ],
)
def test_invalid_planner_configs_raise(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(PointMass(), **kwargs)


def test_gradient_planner_refuses_a_non_differentiable_objective():
    def detached(latents, actions, goal):
        return regularized_goal_energy(latents, actions, goal).detach()

    with pytest.raises(ValueError, match="differentiabl"):
        make(lm.GradientPlanner, energy=detached).plan(
            np.zeros(2, np.float32), np.ones(2, np.float32)
        )


def test_mppi_weights_feasible_first_then_by_violation():
    from lewm_mpc.energies import ObjectiveValue

    guard = lm.Guardrail(x_over, name="x_limit", hard=True)
    planner = make(lm.MPPI, guardrails=[guard], temperature=1.0)
    total = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    violation = torch.tensor([[0.5, 0.0, 0.0, 0.1], [0.3, 0.2, 0.1, 0.4]])
    value = ObjectiveValue(total, violation, {"task": total, "x_limit": violation})
    weights = planner._weights(value, planner._ranking(value))
    assert torch.allclose(weights.sum(1), torch.ones(2))
    # Env 0: only the feasible candidates 1 and 2 weigh, the lower energy more.
    assert weights[0, 0] == 0 and weights[0, 3] == 0 and weights[0, 1] > weights[0, 2] > 0
    # Env 1: none is feasible, so the smaller violation weighs more.
    assert weights[1, 2] > weights[1, 1] > weights[1, 0] > weights[1, 3] > 0


@planners
def test_planner_repr_is_one_line_with_its_budget(cls):
    guard = lm.Guardrail(x_over, name="x_limit", hard=True)
    text = repr(make(cls, guardrails=[guard], **tiny_budget(cls)))
    assert "\n" not in text and "tensor" not in text and len(text) < 300
    name = getattr(cls, "func", cls)  # a functools.partial names its class
    assert text.startswith(f"{name.__name__ if isinstance(name, type) else 'GradientPlanner'}(")
    assert "horizon=4" in text and "iterations=1" in text and "x_limit" in text
    if name in (lm.CEM, lm.MPPI):  # the default polishes, the sampling-only variant not
        assert f"polish_steps={0 if isinstance(cls, functools.partial) else 1}" in text


def test_cem_repr_shows_the_reference_budget():
    assert repr(lm.CEM(PointMass())) == "CEM(horizon=5, num_samples=300, polish_steps=50, topk=30)"
    assert repr(lm.CEM(PointMass(), iterations=30, polish_steps=0)) == (
        "CEM(horizon=5, num_samples=300, iterations=30, polish_steps=0, topk=30)"
    )
    assert "seed=3" in repr(lm.MPPI(PointMass(), seed=3))  # changed fields are shown
    assert repr(lm.make_planner("hybrid", PointMass())) == (
        "GradientPlanner(horizon=5, restarts=8, iterations=50, cem_iterations=10)"
    )


@pytest.mark.parametrize("batch", [None, 3])
def test_plan_result_repr_is_a_one_line_summary(batch):
    planner = make(lm.CEM, **TINY["cem"])
    obs, goal = np.zeros(2, np.float32), np.array([0.4, 0.1], np.float32)
    if batch is not None:
        obs, goal = np.stack([obs] * batch), np.stack([goal] * batch)
    result = planner.plan(obs, goal)
    text = repr(result)
    assert "\n" not in text and "array" not in text and "tensor" not in text and len(text) < 300
    assert f"actions={result.actions.shape}" in text and f"latents={result.latents.shape}" in text
    assert f"iterations={result.iterations}" in text and "energy=" in text and "solve_s=" in text
    assert ("feasible=True" if batch is None else f"feasible={batch}/{batch}") in text


@planners
def test_plan_latent_from_the_encoded_observation_is_plan(cls):
    obs, goal = np.array([0.1, -0.2], np.float32), np.array([0.5, 0.3], np.float32)
    expected = make(cls).plan(obs, goal)
    planner = make(cls)
    z0, z_goal = planner.encode_pair(torch.from_numpy(obs)[None], torch.from_numpy(goal)[None])
    result = planner.plan_latent(z0[0], z_goal[0])
    np.testing.assert_array_equal(result.actions, expected.actions)
    assert result.energy == expected.energy
    with pytest.raises(ValueError, match="latents of one shape"):
        planner.plan_latent(z0[0], z_goal)


@planners
def test_refine_latent_corrects_a_plan_for_a_moved_start(cls):
    planner = make(cls)
    goal = np.array([0.5, -0.3], np.float32)
    made = planner.plan(np.zeros(2, np.float32), goal)  # for the start the model predicted
    moved = np.array([0.15, 0.1], np.float32)  # the start then observed
    z0, z_goal = planner.encode_pair(torch.from_numpy(moved)[None], torch.from_numpy(goal)[None])
    blocks = torch.from_numpy(made.actions).reshape(1, 4, 4)  # (1, H, block*A)
    stale = float(regularized_goal_energy(PointMass().rollout(z0, blocks), blocks, z_goal))
    result = planner.refine_latent(z0[0], z_goal[0], made.actions, steps=50)
    action, energy = optimum(moved, goal, 4, 2)
    assert stale > 1.5 * energy  # the plan made for the other start is off
    assert result.energy == pytest.approx(energy, rel=0.02)
    assert np.allclose(result.actions, action, atol=0.02)
    assert result.actions.min() >= -1 and result.actions.max() <= 1
    np.testing.assert_allclose(planner._previous.reshape(8, 2), result.actions)  # warm start
    again = planner.refine_latent(z0[0], z_goal[0], steps=3)  # default: the warm start
    assert again.energy <= result.energy + 1e-6 and again.energy_evals <= 3
    with pytest.raises(ValueError, match=r"plan must be finite env-space actions \(8, 2\)"):
        planner.refine_latent(z0[0], z_goal[0], made.actions[:4])
    with pytest.raises(ValueError, match="plan must be finite"):
        planner.refine_latent(z0[0], z_goal[0], np.full((8, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        planner.refine_latent(z0[0], z_goal[0], made.actions, steps=0)
    frozen = PointMass()
    frozen.differentiable = False
    with pytest.raises(ValueError, match="PointMass is not differentiable"):  # gradient
        make(cls, frozen).refine_latent(z0[0], z_goal[0], made.actions)  # planners: at once


def test_cmaes_and_polished_sampling_solve_an_ill_conditioned_quadratic():
    """A rotated quadratic over the 8 plan coordinates with curvatures 1..1e4: CMA-ES learns
    the valley's shape and reaches the minimum; the diagonal samplers stall at the same 9,000
    evaluations."""

    class FreeActions(PointMass):
        action_block = 1

    dim = 4 * 2  # horizon * action_dim
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    hessian = torch.as_tensor(rotation @ np.diag(np.geomspace(1, 1e4, dim)) @ rotation.T)
    target = torch.as_tensor(rng.uniform(-0.5, 0.5, dim))

    def valley(latents, actions, goal):
        error = actions.reshape(actions.shape[0], dim).double() - target  # (S, d)
        return torch.einsum("si,ij,sj->s", error, hessian, error).float()

    zero = np.zeros(2, np.float32)

    def energy(cls, **config):
        return cls(FreeActions(), horizon=4, seed=0, energy=valley, **config).plan(zero, zero)

    solved = energy(lm.CMAES, polish_steps=0)
    assert solved.energy < 1e-6 and solved.energy_evals == 9000
    np.testing.assert_allclose(solved.actions.ravel(), target.numpy(), atol=1e-3)
    # sampling alone, 300 x 30, stays far off; the defaults' L-BFGS polish finds the optimum
    for cls in (lm.CEM, lm.MPPI):
        assert energy(cls, iterations=30, polish_steps=0).energy > 0.1
        polished = energy(cls)
        assert polished.energy < 1e-6 and polished.energy_evals < 9000 / 5


def test_cmaes_adapts_its_covariance_to_the_valley():
    """After a plan on a quadratic stretched along one diagonal direction, the covariance's
    widest axis is that (flat) direction."""

    class FreeActions(PointMass):
        action_block = 1

    flat = torch.tensor([1.0, 1.0]) / 2**0.5

    def stretched(latents, actions, goal):
        plan = actions.reshape(actions.shape[0], -1, 2)  # (S, H, 2)
        along = (plan * flat).sum(-1)
        across = (plan[..., 0] - plan[..., 1]) / 2**0.5
        return (0.01 * along.square() + 100 * across.square()).sum(-1)

    planner = lm.CMAES(FreeActions(), horizon=1, seed=0, energy=stretched, iterations=40)
    state = planner.initial_state(planner.center.expand(1, 1, -1).clone())
    for _ in range(40):
        noise = planner.noise(state, 30)
        candidates = planner.clamp(state.mean.unsqueeze(1) + state.std.unsqueeze(1) * noise)
        _latents, value = planner.evaluate(torch.zeros(1, 2), torch.zeros(1, 2), candidates)
        state = planner.update(state, candidates, value, planner.rank(value))
    widest = state.basis[0, :, -1]  # eigenvector of the largest eigenvalue
    assert abs(float(widest @ flat.double())) > 0.99
    assert state.scale[0, -1] / state.scale[0, 0] > 10


@planners
def test_plans_the_same_under_a_callers_inference_mode(cls):
    """``lewm-mpc eval`` plans under ``torch.inference_mode()``; gradients still flow."""
    obs, goal = np.zeros(2, np.float32), np.array([0.4, 0.1], np.float32)
    expected = make(cls).plan(obs, goal)
    with torch.inference_mode():
        result = make(cls).plan(obs, goal)
    np.testing.assert_array_equal(result.actions, expected.actions)
    assert result.energy_evals == expected.energy_evals
