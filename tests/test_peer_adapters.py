"""Our side of the peer adapters (benchmarks/peers): no peer library is imported here.

The one-block dynamics must reproduce ``model.rollout`` (whatever the predictor's history), the
trajectory energy must be our objective, the scorer must give a plan's energy as our planners
compute it, every planner must get the same budget, and the runner must work end to end with our
planners alone.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lewm_mpc as lm
from conftest import tiny_config
from lewm_mpc.energies import Objective

PEERS = Path(__file__).parents[1] / "benchmarks" / "peers"


@pytest.fixture(scope="module")
def peers():
    """The adapters and runner modules (loaded from benchmarks/peers, then unloaded)."""
    sys.path.insert(0, str(PEERS))
    try:
        yield importlib.import_module("adapters"), importlib.import_module("run_peers")
    finally:
        sys.path.remove(str(PEERS))
        for name in ("adapters", "run_peers"):
            sys.modules.pop(name, None)


def random_model(seed: int = 0, **overrides) -> lm.WorldModel:
    """A tiny model with every weight random (AdaLN-zero init would hide history/actions)."""
    torch.manual_seed(seed)
    model = lm.WorldModel(tiny_config(**overrides)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    model.set_action_stats(torch.tensor([0.1, -0.2]), torch.tensor([0.5, 0.8]))
    return model.requires_grad_(False)


PREDICTORS = {
    "mlp-h1": {},
    "mlp-h3": {"history": 3},
    "transformer-h3": {
        "predictor": "transformer", "history": 3, "predictor_heads": 4, "predictor_depth": 2,
    },
}  # fmt: skip


def plans(model: lm.WorldModel, num: int = 6, horizon: int = 5, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    width = model.action_block * model.action_dim
    return torch.rand(num, horizon, width, generator=gen) * 2 - 1  # (N, H, bA) in bounds


@pytest.mark.parametrize("predictor", list(PREDICTORS))
def test_block_dynamics_reproduces_rollout(peers, predictor):
    adapters, _ = peers
    model = random_model(**PREDICTORS[predictor])
    dynamics = adapters.BlockDynamics(model)
    actions = plans(model)
    z0 = torch.randn(actions.shape[0], model.latent_dim)
    expected = model.rollout(z0, actions)  # (N, H+1, D)

    state = dynamics.initial_state(z0)
    assert state.shape == (actions.shape[0], dynamics.state_dim)
    stepped = [dynamics.latent(state)]
    for t in range(actions.shape[1]):
        state = dynamics(state, actions[:, t], t)
        stepped.append(dynamics.latent(state))
    torch.testing.assert_close(torch.stack(stepped, dim=1), expected, atol=1e-5, rtol=1e-5)

    latents = torch.zeros_like(expected)
    latents[:, 0] = z0
    blocks = torch.zeros_like(actions)
    for t in range(actions.shape[1]):
        latents, blocks = dynamics.step_trajectory(latents, blocks, actions[:, t], t)
    torch.testing.assert_close(latents, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(blocks, actions)


def test_state_is_the_latent_without_history(peers):
    adapters, _ = peers
    model = random_model()
    dynamics = adapters.BlockDynamics(model)
    assert dynamics.state_dim == model.latent_dim
    z0 = torch.randn(3, model.latent_dim)
    torch.testing.assert_close(dynamics.initial_state(z0), z0)


def test_history_needs_the_window(peers):
    """A one-step model of z_t alone is not the rollout when the predictor has history 3."""
    model = random_model(history=3)
    actions = plans(model)
    z0 = torch.randn(actions.shape[0], model.latent_dim)
    expected = model.rollout(z0, actions)
    z = z0
    for t in range(actions.shape[1]):
        z = model.rollout(z, actions[:, t : t + 1])[:, 1]  # forgets the window
    assert not torch.allclose(z, expected[:, -1], atol=1e-3)
    adapters, _ = peers
    assert adapters.BlockDynamics(model).state_dim == 3 * model.latent_dim + 2 * 10


@pytest.mark.parametrize("predictor", ["mlp-h1", "transformer-h3"])
def test_trajectory_energy_is_our_objective(peers, predictor):
    adapters, _ = peers
    model = random_model(**PREDICTORS[predictor])
    dynamics = adapters.BlockDynamics(model)
    energy = lm.GoalDistance(running_weight=0.5)
    trajectory_energy = adapters.TrajectoryEnergy(dynamics, energy)
    actions = plans(model)
    z0, goal = torch.randn(1, model.latent_dim), torch.randn(1, model.latent_dim)
    num = actions.shape[0]
    latents = model.rollout(z0.expand(num, -1), actions)
    expected = Objective(energy)(latents, actions, goal.expand(num, -1)).total

    state = dynamics.initial_state(z0.expand(num, -1))
    states = []
    for t in range(actions.shape[1]):
        state = dynamics(state, actions[:, t], t)
        states.append(state)
    got = trajectory_energy.of_states(z0[0], torch.stack(states, dim=1), actions, goal[0])
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(trajectory_energy.of_latents(latents, actions, goal), expected)


def test_scorer_gives_the_planners_energy(peers):
    adapters, _ = peers
    model = random_model()
    scorer = adapters.PlanScorer(model)
    rng = np.random.default_rng(0)
    obs, goal = (rng.integers(0, 256, model.obs_shape, dtype=np.uint8) for _ in range(2))
    planner = lm.CEM(model, num_samples=16, iterations=3, topk=4, seed=0)
    result = planner.plan(obs, goal)
    z0, z_goal = scorer.encode(obs, goal)
    scored = scorer.score(z0, z_goal, result.actions)  # (H * block, A) layout
    assert scored.energy == pytest.approx(result.energy, rel=1e-4)
    assert scored.out_of_bounds == 0.0
    blocks = result.actions.reshape(planner.config.horizon, -1)  # (H, block * A) layout
    assert scorer.score(z0, z_goal, torch.from_numpy(blocks)).energy == pytest.approx(
        scored.energy, rel=1e-6
    )


def test_scorer_projects_out_of_bounds_plans(peers):
    adapters, _ = peers
    model = random_model()
    scorer = adapters.PlanScorer(model)
    z0, z_goal = torch.randn(1, model.latent_dim), torch.randn(1, model.latent_dim)
    plan = plans(model, num=1)[0] * 3  # (H, bA), some entries beyond [-1, 1]
    scored = scorer.score(z0, z_goal, plan)
    expected_outside = (plan.abs() > 1).float().mean().item()
    assert scored.out_of_bounds == pytest.approx(expected_outside)
    assert 0 < scored.out_of_bounds < 1
    clipped = scorer.score(z0, z_goal, plan.clamp(-1, 1))
    assert scored.energy == pytest.approx(clipped.energy)
    assert np.abs(scored.actions).max() <= 1.0
    with pytest.raises(ValueError, match="H, 10"):
        scorer.score(z0, z_goal, np.zeros((5, 7)))


def test_budget_validation(peers):
    adapters, _ = peers
    for bad in ({"topk": 0}, {"topk": 301}, {"num_samples": 0}, {"horizon": 0},
                {"grad_lr": 0.0}, {"mppi_lambda": -1.0}):  # fmt: skip
        with pytest.raises(ValueError):
            adapters.Budget(**bad)
    with pytest.raises(ValueError, match="family"):
        adapters.PeerBudget("x", "random", {}, 1)


def test_every_planner_gets_the_same_budget(peers):
    adapters, _ = peers
    budget = adapters.Budget(num_samples=64, iterations=4, topk=8, horizon=3,
                             grad_restarts=3, grad_iterations=7)  # fmt: skip
    rows = adapters.peer_budgets(budget)
    assert {r.family for r in rows.values()} == set(adapters.FAMILIES)
    ours = [r for r in rows.values() if r.name.startswith("ours/")]
    assert sorted(r.family for r in ours) == sorted(adapters.FAMILIES)
    for row in rows.values():
        expected = 64 * 4 if row.family != "gradient" else 3 * 7
        assert row.energy_evals == expected, row.name
        if not row.name.startswith("ours/"):
            assert row.notes, f"{row.name} documents no mismatch"
    assert dict(rows["ours/CEM"].kwargs) == dict(horizon=3, num_samples=64, iterations=4, topk=8)
    swm = rows["swm/CEM"].kwargs
    assert (swm["num_samples"], swm["n_steps"], swm["topk"]) == (64, 4, 8)
    torchrl = rows["torchrl/CEM"].kwargs
    assert (torchrl["num_candidates"], torchrl["optim_steps"], torchrl["top_k"]) == (64, 4, 8)
    assert torchrl["planning_horizon"] == 3
    mppi = rows["pytorch_mppi/MPPI"].kwargs
    assert (mppi["num_samples"], mppi["commands"], mppi["horizon"]) == (64, 4, 3)
    grad = rows["swm/gradient"].kwargs
    assert (grad["num_samples"], grad["n_steps"]) == (3, 7)
    assert dict(rows["ours/gradient"].kwargs)["restarts"] == 3


def test_runner_with_our_planners(peers, tiny_dataset, tmp_path, monkeypatch):
    _, run_peers = peers
    model_dir = lm.WorldModel(tiny_config()).save(tmp_path / "model")
    args = run_peers.Args(
        model=model_dir, data=tiny_dataset, out=tmp_path / "results", planners="ours",
        pairs=2, repeats=1, warmup=1, num_samples=8, iterations=2, topk=2,
        grad_restarts=2, grad_iterations=2,
    )  # fmt: skip
    result = run_peers.main(args)
    saved = json.loads((tmp_path / "results" / "peers.json").read_text())
    assert saved == json.loads(json.dumps(result))
    names = [row["name"] for row in saved["rows"]]
    assert names == ["ours/CEM", "ours/MPPI", "ours/gradient"]
    for row in saved["rows"]:
        assert row["latency_ratio_to_ours"] == 1.0
        assert row["plans_timed"] == 2 and np.isfinite(row["energy_mean"])
    assert "ours/CEM" in (tmp_path / "results" / "peers.md").read_text()

    # A rerun with the same settings keeps the finished rows instead of measuring again.
    def fail(*_, **__):
        raise AssertionError("measured a planner that was already done")

    monkeypatch.setattr(run_peers, "measure", fail)
    rerun = run_peers.main(args)
    assert [row["energy_mean"] for row in rerun["rows"]] == [
        row["energy_mean"] for row in saved["rows"]
    ]
    with pytest.raises(ValueError, match="unknown planners"):
        run_peers.main(run_peers.Args(model=model_dir, data=tiny_dataset, planners="nope/CEM"))


def test_runner_interleaves_planners_slot_by_slot_and_pairs_latency_ratios(peers):
    adapters, run_peers = peers
    calls: list[tuple[str, int]] = []

    class Logged:
        def __init__(self, name: str) -> None:
            self.name = name

        def reset(self, seed: int) -> None:
            self.seed = seed

        def plan(self, obs, goal):
            calls.append((self.name, self.seed))
            return np.zeros((2, 2))

    class Scorer:
        def encode(self, obs, goal):
            return obs, goal

        def score(self, z0, z_goal, actions):
            return adapters.ScoredPlan(energy=1.0, out_of_bounds=0.0, actions=actions)

    pairs = [(np.zeros(1), np.zeros(1))] * 3
    args = run_peers.Args(pairs=3, repeats=2, warmup=1, seed=0)
    contenders = {name: Logged(name) for name in ("a", "b", "c")}
    stats = run_peers.measure(contenders, Scorer(), pairs, args, _NullBar())
    timed = calls[3:]  # after one warm-up plan each
    slots = [timed[i : i + 3] for i in range(0, len(timed), 3)]
    assert len(slots) == 6
    for index, slot in enumerate(slots):
        assert sorted(name for name, _ in slot) == ["a", "b", "c"]  # each planner once a slot
        assert {seed for _, seed in slot} == {index}  # same pair, same seed for all of them
    assert [slot[0][0] for slot in slots[:3]] == ["a", "b", "c"]  # order rotated
    assert all(row["plans_timed"] == 6 for row in stats.values())

    ours = {"seconds_per_slot": [1.0, 2.0, 4.0], "latency_p50_s": 2.0}
    peer = {"seconds_per_slot": [2.0, 2.0, 12.0], "latency_p50_s": 2.0}
    assert run_peers._paired_latency_ratio(peer, ours) == 2.0  # median of (2, 1, 3)
    assert run_peers._paired_latency_ratio({"latency_p50_s": 3.0}, ours) == 1.5


class _NullBar:
    def update(self, _: int) -> None:
        pass
