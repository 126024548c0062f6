"""Smoke runs of the benchmark scripts at tiny budgets: each writes its results files.

The numbers mean nothing at these sizes; what is checked is that every entry point runs end to
end (collect, train, probe, plan, report) and writes well-formed results where it was told to.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lewm_mpc as lm
from conftest import BENCHMARKS, load_benchmark, tiny_config
from lewm_mpc.data import EpisodeDataset, WindowSampler
from lewm_mpc.envs import get_env_spec

load = load_benchmark


@pytest.fixture(scope="module")
def tworoom_run(tmp_path_factory) -> tuple[Path, Path]:
    """``benchmarks/tworoom_cem.py`` on 12 episodes, 40 training steps (enough for a probe to
    locate the agent, which the keep-out benchmark needs), 2 pairs: (work, out)."""
    root = tmp_path_factory.mktemp("tworoom_bench")
    work, out = root / "work", root / "out"
    script = load("tworoom_cem")
    script.main(
        script.Args(
            work=work,
            out=out,
            episodes=12,
            steps=40,
            pairs=2,
            latency_plans=1,
            samples=16,
            iterations=2,
        )
    )
    return work, out


def test_tworoom_cem_writes_its_results(tworoom_run) -> None:
    work, out = tworoom_run
    result = json.loads((out / "tworoom_cem.json").read_text())
    assert result["model"]["train_steps"] == 40 and (work / "model").is_dir()
    assert "| metric | value |" in (out / "tworoom_cem.md").read_text()


def test_tworoom_planners_runs_every_planner(tworoom_run) -> None:
    work, out = tworoom_run
    script = load("tworoom_planners")
    args = script.Args(work=work, out=out, pairs=2, samples=8, iterations=3, restarts=4)
    script.main(args)
    rows = json.loads((out / "tworoom_planners.json").read_text())["rows"]
    assert len(rows) == len(script.SLUGS) == 14 and all(row["pairs"] == 2 for row in rows)
    script.main(script.Args(work=work, out=out, pairs=1, samples=8, iterations=3, restarts=4,
                            only="gradient,gradient-adam", tag="subset"))  # fmt: skip
    subset = json.loads((out / "tworoom_planners_subset.json").read_text())["rows"]
    assert [row["planner"] for row in subset] == ["Gradient", "Gradient (Adam)"]


def test_tworoom_guardrails_calibrates_and_counts_entries(tworoom_run) -> None:
    work, out = tworoom_run
    script = load("tworoom_guardrails")
    args = script.Args(work=work, out=out, pairs=2, planners="CEM", probe="linear",
                       probe_samples=300, min_distance=0.15, box_half=0.03,
                       iterations=2)  # fmt: skip
    result = script.main(args)
    assert result["margin"]["calibration"]["windows"] > 0 and result["margin"]["value"] > 0
    assert [row["guardrail"] for row in result["rows"]] == [False, True]
    assert "Safety margin" in (out / "tworoom_guardrails.md").read_text()


def test_env_success_runs_every_stage_and_resumes(tmp_path) -> None:
    script = load("env_success")
    args = script.Args(env="tworoom", work=tmp_path / "work", out=tmp_path / "out", pairs=2,
                       oracle_pairs=1, oracle_samples=8, oracle_iterations=1, episodes=12,
                       train_steps=3, samples=16, iterations=2)  # fmt: skip
    result = script.main(args)
    assert result["recipe"]["episodes"] == 12 and result["recipe"]["train_steps"] == 3
    for stage in ("cem", "random", "oracle", "learned_at_oracle_budget"):
        assert 0.0 <= result[stage]["success_rate"] <= 1.0
    written = tmp_path / "out" / "env_success_tworoom_12ep_3steps.json"
    assert json.loads(written.read_text())["cem"] == _plain(result["cem"])
    assert "| tworoom |" in (tmp_path / "out" / "env_success.md").read_text()
    # Every stage is cached: a rerun recomputes nothing and reports the same.
    stages = json.loads((tmp_path / "work" / "tworoom_12ep_3steps" / "stages.json").read_text())
    assert stages["cem_16x2"] == _plain(result["cem"])
    assert _plain(script.main(args)["cem"]) == _plain(result["cem"])


def _plain(value):
    """As read back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def test_robot_loop_benchmarks_run_on_a_shipped_model(tmp_path) -> None:
    """deadlines, default_latency, async_control and surprise on pretrained:pointmass at tiny
    sizes."""
    script = load("deadlines")
    script.main(script.Args(envs="pointmass", deadlines_ms="30", plans=2, threads=0,
                            out=tmp_path))  # fmt: skip
    rows = json.loads((tmp_path / "deadlines.json").read_text())["rows"]
    assert len(rows) == 6 and all(row["deadline_ms"] == 30 for row in rows)
    script = load("default_latency")
    script.main(script.Args(envs="pointmass", pairs=1, threads=0, out=tmp_path))
    rows = json.loads((tmp_path / "default_latency.json").read_text())["rows"]
    assert [row["plans"] for row in rows] == [2] * 5  # each planner: cold, then warm
    assert "polish_steps=50" in rows[1]["config"] and "iterations=30" in rows[0]["config"]
    assert "iterations=4" in rows[2]["config"] and "polish_restarts=1" in rows[2]["config"]
    script = load("async_control")
    script.main(script.Args(envs="pointmass", pairs=1, steps=4, reanchor_ms="0,50", out=tmp_path))
    rows = json.loads((tmp_path / "async_control.json").read_text())["rows"]
    assert [row["mode"] for row in rows] == [
        "synchronous",
        "asynchronous at 10 Hz",
        "asynchronous at 10 Hz, re-anchored (gradient) within 50 ms",
    ]
    script = load("surprise")
    args = script.Args(envs="pointmass", pairs=1, calibration_pairs=1, steps=6, first=2, last=3,
                       out=tmp_path, work=tmp_path / "work")  # fmt: skip
    script.main(args)
    rows = json.loads((tmp_path / "surprise.json").read_text())["rows"]
    assert [row["monitor"] for row in rows] == [True, False]
    assert rows[0]["unperturbed"]["blocks"] >= 1 and "unperturbed" not in rows[1]
    assert "detected within one block" in (tmp_path / "surprise.md").read_text()
    assert "replanning every 5 blocks" in (tmp_path / "surprise.md").read_text()
    result = json.loads((tmp_path / "surprise.json").read_text())
    assert "confidence" not in script.markdown(result)
    result["args"]["confidence"] = "0.95"  # as a run with --confidence 0.95 records it
    assert "1% per block with 95% confidence" in script.markdown(result)
    result["args"].update(offset_scale="0.25", motion_power="0.5")
    assert "(0.25 median motion + motion)^0.5" in script.markdown(result)
    paired = script.Args(**{**vars(args), "pair_seeds": True, "tag": "paired"})
    assert len(script.main(paired)["rows"]) == 2  # the planner reseeded per pair
    probed = script.Args(**{**vars(args), "readout": "probe", "tag": "probe"})
    rows = script.main(probed)["rows"]  # surprise through a linear probe of the agent's state
    assert len(rows[0]["readout_r2"]) == 2 and rows[0]["threshold"]["readout"]
    assert "through a linear probe" in (tmp_path / "surprise_probe.md").read_text()
    whitened = script.Args(**{**vars(args), "readout": "whiten", "tag": "whiten"})
    rows = script.main(whitened)["rows"]  # surprise in units of the model's one-block error
    assert rows[0]["threshold"]["readout"] and "readout_r2" not in rows[0]
    assert "Mahalanobis" in (tmp_path / "surprise_whiten.md").read_text()
    run = lm.load_run("pretrained:pointmass", regenerate=True)
    whitening = script.residual_whitening(run, seed=0, windows=500, shrinkage=1e-9)
    frameskip = run.model.action_block // run.dataset.action_block
    sampler = WindowSampler(run.dataset, run.train_ids, num_frames=2, frameskip=frameskip,
                            batch_size=500, obs_mode=run.obs_mode)  # fmt: skip
    rows = np.random.default_rng(0).choice(sampler.window_rows, 500, replace=False)
    batch = sampler.gather(np.sort(rows))  # the windows it was fitted on
    obs = torch.from_numpy(batch.obs)  # (500, 2, H, W, 3) uint8
    with torch.inference_mode():
        start, observed = run.model.encode(obs[:, 0]), run.model.encode(obs[:, 1])
        predicted = run.model.rollout(start, torch.from_numpy(batch.actions[:, :1]))[:, -1]
        residual = (whitening(predicted) - whitening(observed)).double()  # (500, D)
    identity = torch.eye(residual.shape[1], dtype=torch.float64)
    torch.testing.assert_close(torch.cov(residual.T), identity, atol=1e-3, rtol=0)
    script.env_surprise = None  # a finished env is not run again
    assert script.main(args)["rows"] == json.loads((tmp_path / "surprise.json").read_text())["rows"]


def test_model_exploitation_replays_the_expert_to_its_goal(tmp_path) -> None:
    script = load("model_exploitation")
    args = script.Args(envs="tworoom", pairs=3, regenerated_episodes=4, samples=8, iterations=2,
                       out=tmp_path)  # fmt: skip
    (row,) = script.main(args)["rows"]
    # The recorded blocks from start to goal reach the goal when replayed: the pair's own path.
    assert row["pairs"] == 3 and row["open_loop_success"]["expert"] == 3
    assert all(pair["expert"]["final_distance"] < 1 for pair in row["per_pair"])
    preferred = [p for p in row["per_pair"] if p["plan"]["energy"] < p["expert"]["energy"]]
    assert row["plan_energy_below_expert"] == len(preferred)
    assert row["preferred_plans_that_fail"] == sum(not p["plan"]["success"] for p in preferred)
    assert "| tworoom | 3 |" in (tmp_path / "model_exploitation.md").read_text()


def test_shipped_planners_runs_each_lever_once(tmp_path) -> None:
    script = load("shipped_planners")
    args = script.Args(env="pointmass", pairs=1, budget=4, iterations=1, only="cem,cmaes",
                       work=tmp_path / "work", out=tmp_path)  # fmt: skip
    script.main(args)
    rows = json.loads((tmp_path / "shipped_planners_pointmass.json").read_text())["rows"]
    assert [row["slug"] for row in rows] == ["cem", "cmaes"]
    assert rows[1]["report"]["planner"]["num_samples"] == 30  # CMA-ES's own default
    assert "smoke run" in (tmp_path / "shipped_planners_pointmass.md").read_text()
    first = (tmp_path / "work" / "pointmass" / "cmaes.json").stat().st_mtime_ns
    script.main(args)  # finished levers are not rerun
    assert (tmp_path / "work" / "pointmass" / "cmaes.json").stat().st_mtime_ns == first


def test_shipped_planners_counts_pairs_won_and_lost_against_the_reference() -> None:
    script = load("shipped_planners")

    def report(*outcomes):
        return {"pairs": [{"episode": e, "start_step": s, "success": ok} for e, s, ok in outcomes]}

    reference = report((0, 5, True), (1, 0, False), (2, 7, True), (3, 1, False))
    lever = report((0, 5, False), (1, 0, True), (2, 7, True), (3, 1, True), (9, 9, True))
    assert script.paired(lever, reference) == (2, 1)  # pair (9, 9) is not in the reference
    assert script.paired(lever, None) == (None, None)
    assert script.paired(report((4, 4, True)), reference) == (None, None)  # no pair in common


def test_far_goals_compares_flat_and_hierarchical(tmp_path) -> None:
    script = load("far_goals")
    script.main(script.Args(env="tworoom", pairs=1, offsets="25", graph_episodes=8,
                            random_budget=10, out=tmp_path, work=tmp_path / "work"))  # fmt: skip
    rows = json.loads((tmp_path / "far_goals_tworoom.json").read_text())["rows"]
    assert [(row["goals"], row["planner"]) for row in rows] == [
        ("25 steps ahead", "flat"), ("25 steps ahead", "hierarchical"),
        ("random goal", "flat"), ("random goal", "hierarchical"),
    ]  # fmt: skip


def test_far_goals_resumes_a_killed_run_with_the_same_results(tmp_path) -> None:
    script = load("far_goals")
    args = script.Args(env="tworoom", pairs=2, offsets="25", random=False, graph_episodes=8,
                       out=tmp_path, work=tmp_path / "work")  # fmt: skip
    script.main(args)
    log = tmp_path / "work" / "far_goals_tworoom.jsonl"
    full = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(json.loads(e["key"])["planner"], e["index"]) for e in full] == [
        ("flat", 0), ("flat", 1), ("hierarchical", 0), ("hierarchical", 1),
    ]  # fmt: skip
    # killed after the first pair, in the middle of writing the second line
    log.write_text(log.read_text().splitlines()[0] + "\n" + '{"key": "cut')
    script.main(args)
    rerun = [json.loads(line) for line in log.read_text().splitlines()[2:]]
    assert len(rerun) == 3  # the first pair was not run again

    def outcome(entry: dict) -> tuple:
        result = {k: v for k, v in entry["result"].items() if k != "plan_seconds"}
        return entry["key"], entry["index"], result, entry["rng"]

    assert [outcome(e) for e in rerun] == [outcome(e) for e in full[1:]]


def test_far_goals_adds_rows_to_a_table_and_resumes_from_its_committed_pairs(tmp_path) -> None:
    script = load("far_goals")
    base = dict(env="tworoom", pairs=1, graph_episodes=8, random_budget=10, out=tmp_path)
    script.main(script.Args(**base, offsets="25", random=False, work=tmp_path / "a"))
    script.main(script.Args(**base, offsets="", random=True, work=tmp_path / "b"))
    table = json.loads((tmp_path / "far_goals_tworoom.json").read_text())["rows"]
    assert [(row["goals"], row["planner"]) for row in table] == [
        ("25 steps ahead", "flat"), ("25 steps ahead", "hierarchical"),
        ("random goal", "flat"), ("random goal", "hierarchical"),
    ]  # fmt: skip
    committed = [json.loads(line) for line in
                 (tmp_path / "far_goals_tworoom.pairs.jsonl").read_text().splitlines()]  # fmt: skip
    assert len(committed) == 4 and all(entry["rng"] for entry in committed)  # one pair per row
    # a fresh work folder resumes every pair from the committed file: nothing is planned again
    script.main(script.Args(**base, offsets="25", random=True, work=tmp_path / "c"))
    again = json.loads((tmp_path / "far_goals_tworoom.json").read_text())["rows"]
    assert again == table  # same latencies: the episodes were not rerun
    # more pairs extend a row: only the new pair is planned
    script.main(script.Args(**{**base, "pairs": 2}, offsets="25", random=False,
                            work=tmp_path / "c"))  # fmt: skip
    rows = json.loads((tmp_path / "far_goals_tworoom.json").read_text())["rows"]
    assert [(row["goals"], row["pairs"]) for row in rows] == [
        ("25 steps ahead", 2), ("25 steps ahead", 2), ("random goal", 1), ("random goal", 1),
    ]  # fmt: skip
    log = [json.loads(line) for line in (tmp_path / "c" / "far_goals_tworoom.jsonl").read_text()
           .splitlines()]  # fmt: skip
    assert [entry["index"] for entry in log] == [0, 0, 0, 0, 1, 1]
    # fewer pairs than logged: the table's rows come from the log's first pairs
    script.main(script.Args(**base, offsets="25", random=False, work=tmp_path / "e"))
    rows = json.loads((tmp_path / "far_goals_tworoom.json").read_text())["rows"]
    assert [(row["goals"], row["pairs"]) for row in rows] == [
        ("25 steps ahead", 1), ("25 steps ahead", 1), ("random goal", 1), ("random goal", 1),
    ]  # fmt: skip


def test_ddp_scaling_times_one_and_two_processes(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the script imports its helpers by name
    load("ddp_scaling").main(["--smoke", "--work", str(tmp_path)])
    rows = json.loads((tmp_path / "ddp_scaling.json").read_text())["rows"]
    assert [(row["processes"], row["threads"]) for row in rows] == [(1, 1), (1, 2), (2, 1)]
    assert all(row["seconds_per_step"] > 0 for row in rows)


@pytest.mark.slow  # about 1.5 min: the paper config (18M parameters, 224 px) on a CPU
def test_paper_gpu_pipeline_writes_both_configs(tmp_path) -> None:
    script = load("paper_gpu")
    script.main(script.Args(smoke=True, out=tmp_path / "work", results=tmp_path / "results"))
    result = json.loads((tmp_path / "results" / "paper_gpu_pusht.json").read_text())
    assert [row["config"] for row in result["rows"]] == ["paper", "cpu"]
    assert all(
        row["report"]["num_pairs"] == 1 and row["train_steps"] >= 2 for row in result["rows"]
    )
    assert "mean nothing" in (tmp_path / "results" / "paper_gpu_pusht.md").read_text()


def test_train_step_profile_times_sampling_copy_and_step(tiny_dataset, tmp_path) -> None:
    script = load("train_step_profile")
    script.main(script.Args(data=tiny_dataset, config="cpu", batch_size=4, steps=1,
                            device="cpu", out=tmp_path))  # fmt: skip
    rows = json.loads((tmp_path / "train_step_profile_cpu.json").read_text())["rows"]
    assert [row["precision"] for row in rows] == ["bfloat16", "float32"]
    assert all(row["step_ms"] > 0 and row["sample_ms"] > 0 for row in rows)
    with pytest.raises(SystemExit, match="--data must be a dataset"):
        script.main(script.Args(data=tmp_path / "missing.h5", out=tmp_path))


def test_gradient_step_times_both_paths_for_every_batch(tmp_path) -> None:
    model_dir = lm.WorldModel(tiny_config()).save(tmp_path / "model")
    script = load("gradient_step")
    result = script.main(script.Args(model=str(model_dir), batches="1,3", steps=2, slots=2,
                                     out=tmp_path))  # fmt: skip
    rows = json.loads((tmp_path / "gradient_step.json").read_text())["rows"]
    assert rows == result["rows"] and [row["batch"] for row in rows] == [1, 3]
    for row in rows:
        assert set(row["ms"]) == set(script.PATHS) and all(ms > 0 for ms in row["ms"].values())
    assert "| 3 |" in (tmp_path / "gradient_step.md").read_text()


def _blocks(script, rng, episodes: int, per_episode: int, pushed_at: int = -1):
    latents = rng.normal(size=(episodes * per_episode, 3, 4))  # (N, 3, D)
    episode = np.repeat(np.arange(episodes), per_episode)
    step = 5 * (1 + np.tile(np.arange(per_episode), episodes))
    return script.Blocks(latents, episode, step, np.full(episodes, pushed_at))


def test_surprise_scores_calibrate_the_library_scores_as_the_library_does():
    script = load("surprise_scores")
    rng = np.random.default_rng(0)
    sets = {"calibration": _blocks(script, rng, 40, 10), "quiet": _blocks(script, rng, 10, 10),
            "perturbed": _blocks(script, rng, 10, 4, pushed_at=10)}  # fmt: skip
    rows = {row["score"]: row for row in script.compare(sets, 5, script.Args(false_alarm=0.05))}
    assert set(rows) == {score.name for score in script.SCORES}
    calibration, quiet = sets["calibration"], sets["quiet"]
    surprise = np.linalg.norm(calibration.residual(), axis=1)
    motions = calibration.motion()
    library = {"relative c=1 g=1": {"motions": motions}, "distance": {},
               "combined": {"motions": motions, "combine": True}}  # fmt: skip
    for name, options in library.items():
        threshold = lm.SurpriseThreshold.from_scores(surprise, 0.05, **options)
        assert rows[name]["threshold"] == pytest.approx(threshold.value)
        alarms = threshold.score(np.linalg.norm(quiet.residual(), axis=1), quiet.motion())
        assert rows[name]["false_alarm_rate"] == pytest.approx(np.mean(alarms > threshold.value))
    # a residual that persists from block to block has no innovation after an episode's first
    steady = _blocks(script, rng, 1, 4)
    steady.latents[:, 1] = steady.latents[:, 2] - 1.0  # residual (1, 1, 1, 1) at every block
    innovation = script.Score("innovation")(steady, {"motion": 1.0})
    assert innovation[0] > 0 and np.allclose(innovation[1:], 0.0)


def test_surprise_scores_benchmark_records_once_and_rescores(tmp_path, monkeypatch) -> None:
    script = load("surprise_scores")
    args = script.Args(envs="pointmass", pairs=2, calibration_pairs=3, steps=10,
                       work=tmp_path / "work", out=tmp_path / "out")  # fmt: skip
    rows = script.main(args)["rows"]
    assert len(rows) == len(script.SCORES)
    assert all(row["perturbed"] == 2 and 0 <= row["detection"] <= 1 for row in rows)
    assert "relative c=1 g=1" in (tmp_path / "out" / "surprise_scores.md").read_text()

    def no_episodes(*_args, **_kwargs):
        raise AssertionError("the recorded blocks should have been reused")

    monkeypatch.setattr(script, "record", no_episodes)  # another rate: the same episodes
    again = script.main(script.Args(**{**vars(args), "false_alarm": 0.2}))["rows"]
    assert [row["blocks"] for row in again] == [row["blocks"] for row in rows]


def test_state_dynamics_adds_collected_episodes_and_resumes(tiny_dataset, tmp_path) -> None:
    script = load("state_dynamics")
    args = script.Args(
        data=tiny_dataset,
        extra_episodes="0,2",
        train_steps=5,
        pairs=1,
        samples=8,
        iterations=1,
        work=tmp_path / "work",
        out=tmp_path / "out",
    )
    rows = script.main(args)["rows"]
    assert [row["extra_episodes"] for row in rows] == [0, 2]
    assert rows[1]["train_episodes"] == rows[0]["train_episodes"] + 2
    steps = 40 - args.block + 1  # per 40-step episode, every start with a full block after it
    assert rows[1]["transitions"] - rows[0]["transitions"] == 2 * steps
    assert (tmp_path / "out" / "state_dynamics_tworoom.md").exists()
    cached = json.loads((tmp_path / "work" / "state_dynamics_tworoom_2.json").read_text())
    again = script.main(dataclasses.replace(args, train_steps=1))["rows"]  # finished rows reused
    assert again[1] == cached == json.loads(json.dumps(rows[1]))


def test_state_dynamics_model_rolls_out_its_dynamics_from_exact_latents(tiny_dataset) -> None:
    script = load("state_dynamics")
    dataset = EpisodeDataset.load(tiny_dataset)
    spec = get_env_spec("tworoom")
    parts = script.dataset_trajectories(dataset, dataset.episode_ids[:2])
    starts, actions, ends = script.transitions(spec, parts, 5)
    dynamics = script.Dynamics(starts, actions, ends, hidden=16)
    features = spec.goal_features(dataset.state[:1]).shape[-1]
    bounds = (dataset.meta.action_low, dataset.meta.action_high)
    model = script.StateDynamicsModel(spec, dynamics, 5, bounds, features)
    z0 = model.encode(torch.as_tensor(np.array(dataset.state[:3])))
    assert torch.allclose(z0[:, :features], torch.as_tensor(
        spec.goal_features(dataset.state[:3]), dtype=torch.float32))  # fmt: skip
    plans = torch.zeros(3, 2, 5 * dataset.action_dim)
    latents = model.rollout(z0, plans)
    assert model.action_dim == dataset.action_dim
    assert latents.shape == (3, 3, model.latent_dim)
    with torch.no_grad():
        assert torch.equal(latents[:, 2], dynamics(dynamics(z0, plans[:, 0]), plans[:, 1]))


def test_state_dynamics_augments_with_every_symmetry_of_the_scene(tiny_dataset) -> None:
    script = load("state_dynamics")
    from lewm_mpc.envs.pusht_geometry import transform_state

    spec = get_env_spec("pusht")
    rng = np.random.default_rng(0)
    states, actions = rng.uniform(100, 400, (2, 4, 10)), rng.uniform(-1, 1, (2, 3, 2))
    copies = script.symmetric_copies(spec, [script.Trajectories(states, actions)])
    elements = spec.definition.symmetries.elements
    assert len(copies) == len(elements) - 1 == 7
    for element, copy in zip(elements[1:], copies, strict=True):
        assert np.array_equal(copy.states, transform_state(states, element))
        assert np.array_equal(copy.actions, element.actions(actions))
    parts = script.dataset_trajectories(EpisodeDataset.load(tiny_dataset), np.array([0]))
    with pytest.raises(ValueError, match="tworoom declares no scene symmetries"):
        script.symmetric_copies(get_env_spec("tworoom"), parts)


def test_pusht_failures_finds_the_closest_step_and_bins_pairs_by_turn() -> None:
    from types import SimpleNamespace

    script = load("pusht_failures")
    goal = np.zeros(10)
    goal[:4] = 100.0
    states = np.tile(goal, (3, 1))
    states[0, 2], states[0, 4] = 160.0, np.radians(30)  # start: 60 px and 30° off
    states[1, 2], states[1, 4] = 110.0, np.radians(25)  # closest: 10 px, 25°
    states[2, 2], states[2, 4] = 100.0, np.radians(60)  # 0 px but 60°: farther in the sum
    row = script.pair_row(SimpleNamespace(states=states, succeeded=False), goal)
    assert row["closest_step"] == 1
    assert row["start_px"] == pytest.approx(60.0) and row["start_degrees"] == pytest.approx(30.0)
    assert row["closest_px"] == pytest.approx(10.0) and row["closest_degrees"] == pytest.approx(
        25.0
    )
    solved = {**row, "success": True, "start_degrees": 5.0}
    totals = script.summary([row, solved], script.Args())
    assert [(b["pairs"], b["solved"]) for b in totals["by_turn"]] == [(1, 1), (1, 0), (0, 0)]
    assert (totals["failures"], totals["near_misses"], totals["failures_position_met"]) == (1, 1, 1)
    assert totals["failures_angle_met"] == 0
