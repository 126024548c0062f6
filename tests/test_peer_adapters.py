"""Our side of the peer adapters (benchmarks/peers): no peer library is imported here.

The one-block dynamics must reproduce ``model.rollout`` (whatever the predictor's history), the
trajectory energy must be our objective (fused over whole plans or over stepped states), the
scorer must give a plan's energy as our planners compute it, every planner must get the same
budget (and the sweep, tuned and stepped rows only their own knobs changed), the report's ratios
and time-to-quality interpolation must be right, and the runner must work end to end with our
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


MODULES = ("adapters", "report", "tuning", "run_peers")


@pytest.fixture(scope="module")
def peers():
    """The adapters and runner modules (loaded from benchmarks/peers, then unloaded)."""
    sys.path.insert(0, str(PEERS))
    try:
        yield importlib.import_module("adapters"), importlib.import_module("run_peers")
    finally:
        sys.path.remove(str(PEERS))
        for name in MODULES:
            sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def report(peers):
    """benchmarks/peers/report.py (pure functions over result rows)."""
    return sys.modules["report"]


@pytest.fixture(scope="module")
def tuning(peers):
    """benchmarks/peers/tuning.py."""
    return sys.modules["tuning"]


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
    # The fused path (one model.rollout over whole plans, as the peers' loops call it at their
    # last step) from a (D,), (1, D) or (N, D) start: the same energies.
    for start in (z0[0], z0, z0.expand(num, -1)):
        torch.testing.assert_close(trajectory_energy.of_plans(start, actions, goal[0]), expected)


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


def test_every_planner_gets_the_same_budget(peers, report):
    adapters, _ = peers
    budget = adapters.Budget(num_samples=64, iterations=4, topk=8, horizon=3,
                             grad_restarts=3, grad_iterations=7)  # fmt: skip
    rows = adapters.peer_budgets(budget)
    assert {r.family for r in rows.values()} == set(adapters.FAMILIES)
    ours = [r for r in rows.values() if r.name in report.OURS_REFERENCES]
    assert sorted(r.family for r in ours) == sorted(adapters.FAMILIES)
    # Our planners at their defaults: their own sampling rounds, then the polish's descents.
    defaults = lm.CEMConfig()
    at_defaults = (64 * defaults.rounds(polishing=True)
                   + defaults.polish_restarts * budget.polish_steps)  # fmt: skip
    for row in rows.values():
        expected = 64 * 4 if row.family != "gradient" else 3 * 7
        if row.variant_name == "default":
            expected = at_defaults
            assert "iterations" not in row.kwargs and row.iterations == budget.polish_steps
        assert row.energy_evals == expected, row.name
        if not row.name.startswith("ours/"):
            assert row.notes, f"{row.name} documents no mismatch"
    assert dict(rows["ours/CEM"].kwargs) == dict(horizon=3, num_samples=64, iterations=4, topk=8,
                                                 polish_steps=0)  # fmt: skip
    polished = dict(rows["ours/CEM+polish"].kwargs)
    assert polished == dict(
        horizon=3, num_samples=64, iterations=4, topk=8, polish_steps=budget.polish_steps
    )
    assert dict(rows["ours/MPPI+polish"].at(2).kwargs)["iterations"] == 2
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
    assert mppi["rollout"] == torchrl["rollout"] == "fused"
    assert adapters.peer_budgets(budget, "stepped")["torchrl/CEM"].kwargs["rollout"] == "stepped"
    with pytest.raises(ValueError, match="rollout"):
        adapters.peer_budgets(budget, "unrolled")


def test_sweep_tuned_and_stepped_rows_change_only_their_knobs(peers):
    adapters, _ = peers
    rows = adapters.peer_budgets(adapters.Budget(num_samples=64, iterations=4, topk=8))
    for row in rows.values():
        small = row.at(2)
        assert small.iterations == 2, row.name
        scaled = small.energy_evals - row.fixed_evals, row.energy_evals - row.fixed_evals
        assert scaled[0] * row.iterations == 2 * scaled[1], row.name
        changed = {k for k in row.kwargs if row.kwargs[k] != small.kwargs[k]}
        assert changed == {row.iterations_key}, row.name
        assert (small.name, small.family, small.notes) == (row.name, row.family, row.notes)
    swm = rows["swm/MPPI"]
    tuned = swm.tuned({"temperature": 0.02})
    assert tuned.name == "swm/MPPI tuned" and tuned.base == "swm/MPPI"
    assert tuned.variant_name == "tuned" and swm.variant_name == ""
    assert tuned.kwargs == {**swm.kwargs, "temperature": 0.02}
    assert tuned.energy_evals == swm.energy_evals and tuned.notes[-1].endswith("temperature=0.02")
    assert (tuned.library, tuned.kind) == ("swm", "MPPI")
    for bad in ({"n_steps": 3}, {"not_a_knob": 1}):
        with pytest.raises(ValueError, match="cannot vary"):
            swm.tuned(bad)
    stepped = rows["pytorch_mppi/MPPI"].stepped()
    assert stepped.kwargs["rollout"] == "stepped" and stepped.name == "pytorch_mppi/MPPI stepped"
    assert adapters.LOOP_NOTES["stepped"] in stepped.notes
    assert adapters.LOOP_NOTES["fused"] not in stepped.notes
    with pytest.raises(ValueError, match="iterations"):
        swm.at(0)


def test_runner_with_our_planners(peers, report, tiny_dataset, tmp_path, monkeypatch):
    _, run_peers = peers
    model_dir = lm.WorldModel(tiny_config()).save(tmp_path / "model")
    args = run_peers.Args(
        model=str(model_dir), data=str(tiny_dataset), out=tmp_path / "results", planners="ours",
        pairs=2, repeats=1, warmup=1, num_samples=8, iterations=2, topk=2,
        grad_restarts=2, grad_iterations=3, sweep="1", grad_sweep="1,2", polish_steps=2,
        polish_sweep="1",
    )  # fmt: skip
    result = run_peers.main(args)
    saved = json.loads((tmp_path / "results" / "peers.json").read_text())
    assert saved == json.loads(json.dumps(result))
    names = [row["name"] for row in saved["rows"]]
    assert names == ["ours/CEM", "ours/MPPI", "ours/CEM+polish", "ours/MPPI+polish",
                     "ours/CEM default", "ours/MPPI default", "ours/gradient"]  # fmt: skip
    for row in saved["rows"]:
        # The "+polish" and "default" rows are compared with the plain ones; with 2 rounds
        # (the defaults' own) they sample as the plain ones do, then polish.
        plain = row["name"] in report.OURS_REFERENCES
        assert row["ours"] == row["name"].partition("+")[0].partition(" ")[0]
        assert (row["latency_ratio_to_ours"] == 1.0) is plain
        ratios = (row["energy_ratio_to_ours"], row["energy_mean_ratio_to_ours"])
        if plain:
            assert ratios == (1.0, 1.0)
        else:  # the same sampling rounds (same seeds), then a polish that never scores worse
            assert all(0 < ratio <= 1.0 + 1e-6 for ratio in ratios)
        assert row["plans_timed"] == 2 and np.isfinite(row["energy_mean"])
        assert row["config"]["num_samples" if row["family"] != "gradient" else "restarts"] in (8, 2)
        sweep = [point["iterations"] for point in row["sweep"]]
        assert sweep == ([1, 2] if row["family"] != "gradient" else [1, 2, 3])
        full = row["sweep"][-1]
        assert (full["energy_mean"], full["latency_p50_s"]) == (
            row["energy_mean"],
            row["latency_p50_s"],
        )  # the row is its sweep's full budget
        assert all(point["plans_timed"] == 2 for point in row["sweep"])
    assert saved["time_to_quality"] == [] and saved["tuning"] == {}  # no peer, nothing tuned
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
        run_peers.main(run_peers.Args(model=str(model_dir), planners="nope/CEM"))
    with pytest.raises(ValueError, match="sweep"):
        run_peers.Args(iterations=4, sweep="2,8").sweep_of(run_peers.peer_budgets(
            run_peers.Budget(iterations=4))["ours/CEM"])  # fmt: skip


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

    # Groups (e.g. every planner at one budget) run back to back, both levels rotated.
    calls.clear()
    contenders = {name: Logged(name) for name in ("a@1", "b@1", "a@2", "b@2", "c@2")}
    groups = [["a@1", "b@1"], ["a@2", "b@2", "c@2"]]
    run_peers.measure(contenders, Scorer(), pairs[:1], args, _NullBar(), groups)
    timed = [name for name, _ in calls[5:]]
    assert timed[:5] == ["a@1", "b@1", "a@2", "b@2", "c@2"]
    assert timed[5:] == ["b@2", "c@2", "a@2", "b@1", "a@1"]


def test_latency_and_energy_ratios(report):
    ours = {"seconds_per_slot": [1.0, 2.0, 4.0], "latency_p50_s": 2.0}
    peer = {"seconds_per_slot": [2.0, 2.0, 12.0], "latency_p50_s": 2.0}
    assert report.paired_latency_ratio(peer, ours) == 2.0  # median of (2, 1, 3)
    assert report.paired_latency_ratio({"latency_p50_s": 3.0}, ours) == 1.5
    # An easy pair (0.1 vs 0.4) and a hard one (20 vs 22): the geometric mean weighs both,
    # the ratio of means is the hard pair's.
    assert report.geometric_mean_ratio([0.4, 22.0], [0.1, 20.0]) == pytest.approx(
        (4.0 * 1.1) ** 0.5
    )
    assert report.arithmetic_mean_ratio([0.4, 22.0], [0.1, 20.0]) == pytest.approx(22.4 / 20.1)


def _curve(*points):
    return [
        {"iterations": it, "latency_p50_s": s, "energy_mean": e} for it, s, e in points
    ]  # fmt: skip


def test_time_to_energy_interpolates_in_log_time(report):
    curve = _curve((1, 0.01, 20.0), (2, 0.02, 10.0), (4, 0.04, 6.0), (8, 0.08, 5.0))
    at = report.time_to_energy(curve, 8.0)  # halfway from 10 (2 it, 20 ms) to 6 (4 it, 40 ms)
    assert at.bound == "interpolated"
    assert at.seconds == pytest.approx(0.02 * 2**0.5) and at.iterations == pytest.approx(2**1.5)
    exact = report.time_to_energy(curve, 6.0)
    assert exact.seconds == pytest.approx(0.04) and exact.iterations == pytest.approx(4)
    first = report.time_to_energy(curve, 30.0)
    assert (first.seconds, first.iterations, first.bound) == (0.01, 1, "at most")
    never = report.time_to_energy(curve, 4.0)
    assert (never.seconds, never.bound) == (None, "not reached")
    # Not monotone: the first budget at or below the target counts.
    bumpy = _curve((1, 0.01, 9.0), (2, 0.02, 7.0), (4, 0.04, 8.0))
    assert report.time_to_energy(bumpy, 7.5).iterations < 2


def test_time_to_quality_pairs_each_of_ours_with_each_peer(report):
    def row(name, energy, seconds, sweep=None, variant=""):
        return {"name": name, "energy_mean": energy, "latency_p50_s": seconds,
                "sweep": sweep, "variant": variant}  # fmt: skip

    rows = [
        row("ours/CEM", 5.0, 0.4, _curve((15, 0.2, 7.0), (30, 0.4, 5.0))),
        row("ours/MPPI", 6.0, 0.4, _curve((15, 0.2, 8.0), (30, 0.4, 6.0))),
        row("swm/CEM", 7.0, 0.5),
        row("swm/CEM tuned", 4.0, 0.5, variant="tuned"),
        row("torchrl/CEM stepped", 9.0, 0.6, variant="stepped"),
    ]
    entries = {(e["ours"], e["peer"]): e for e in report.time_to_quality(rows)}
    assert set(entries) == {(o, p) for o in ("ours/CEM", "ours/MPPI")
                            for p in ("swm/CEM", "swm/CEM tuned")}  # fmt: skip
    assert entries[("ours/CEM", "swm/CEM")]["speedup"] == pytest.approx(0.5 / 0.2)
    assert entries[("ours/CEM", "swm/CEM tuned")]["speedup"] is None  # 4.0 never reached
    assert entries[("ours/MPPI", "swm/CEM")]["iterations"] == pytest.approx(15 * 2**0.5)
    text = report.markdown(_result(rows, report.time_to_quality(rows)))
    assert "2.50x (200 ms, 300x15)" in text and "(283 ms, 300x21.2)" in text
    assert "not reached" in text


def _result(rows, entries):
    for row in rows:
        row.update(library="x", family="cem", energy_evals_per_plan=1, notes=[],
                   latency_ratio_to_ours=1.0, ours="ours/CEM", energy_ratio_to_ours=1.0,
                   energy_mean_ratio_to_ours=1.0, out_of_bounds_fraction=0.0)  # fmt: skip
    setup = {"model": "m", "pairs": 1, "repeats": 1, "peer_rollout": "fused"}
    budget = {"num_samples": 300, "iterations": 30, "topk": 30, "horizon": 5,
              "grad_restarts": 8, "grad_iterations": 100}  # fmt: skip
    machine = {"torch_threads": 1, "processor": "cpu", "torch": "2"}
    return {"setup": setup, "budget": budget, "machine": machine, "rows": rows,
            "time_to_quality": entries}  # fmt: skip


def test_tuning_tries_the_grid_on_its_pairs_and_keeps_the_best(peers, tuning):
    adapters, _ = peers
    row = adapters.peer_budgets(adapters.Budget(num_samples=16, topk=4))["swm/CEM"]
    settings = tuning.grid_settings(row)
    assert {s["topk"] for s in settings} == {10}  # elites above 16 samples dropped
    assert {s["var_scale"] for s in settings} == set(tuning.GRIDS["swm/CEM"]["var_scale"])

    class Fixed:
        def __init__(self, energy):
            self.energy = energy

        def reset(self, seed):
            pass

        def plan(self, obs, goal):
            return self.energy

    class Scorer:
        def encode(self, obs, goal):
            return obs, goal

        def score(self, z0, z_goal, energy):
            return adapters.ScoredPlan(energy=energy * z0, out_of_bounds=0.0, actions=None)

    built = []

    def make(tuned_row):
        built.append(tuned_row)
        return Fixed(tuned_row.kwargs["var_scale"])

    plans = []
    result = tuning.tune(row, make, Scorer(), [(1.0, 0), (4.0, 0)], seed=0,
                         on_plan=lambda: plans.append(1))  # fmt: skip
    assert len(plans) == 2 * len(settings) and all(r.name == "swm/CEM tuned" for r in built)
    assert result.best == {"topk": 10, "var_scale": 0.5}
    assert result.scores[result.settings.index(result.best)] == pytest.approx(0.5 * 2.0)
    assert result.default == {"topk": 4, "var_scale": 1.0} and result.default_score is None
    assert tuning.Tuning.from_dict(json.loads(json.dumps(result.to_dict()))) == result


class _NullBar:
    def update(self, _: int) -> None:
        pass
