"""Evaluation protocol, control loop, video writing, CLI and a tiny end-to-end run."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest

import lewm_mpc as lm
from conftest import tiny_config
from lewm_mpc.cli import main
from lewm_mpc.control import run_episode
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.envs import get_env_spec
from lewm_mpc.evaluation import (
    EvalConfig,
    Pair,
    evaluate,
    evaluate_pairs,
    heldout_pairs,
    pair_episode_ids,
    sample_pairs,
    wilson_interval,
)
from lewm_mpc.render import write_episode_video
from lewm_mpc.training import TrainConfig, train


@pytest.fixture(scope="module")
def tiny_model(tiny_dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("model") / "run"
    config = TrainConfig(
        steps=10,
        batch_size=8,
        num_frames=3,
        val_every=10,
        val_batches=1,
        checkpoint_every=10,
        sigreg_projections=32,
        warmup_steps=2,
    )
    train(tiny_dataset, run, tiny_config(), config, progress=False)
    return run


def test_wilson_interval():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(45, 50)
    assert 0.78 < low < 0.9 < high < 0.97
    assert wilson_interval(50, 50)[1] == pytest.approx(1.0)


def test_pairs_come_from_validation_episodes_and_skip_solved_starts(tiny_dataset):
    dataset = EpisodeDataset.load(tiny_dataset)
    spec = get_env_spec("tworoom")
    _, val_ids = dataset.split(0.25, seed=0)
    config = EvalConfig(num_pairs=6, goal_offset=10, val_fraction=0.25)
    pairs, _ = sample_pairs(dataset, val_ids, spec, config)
    assert len(pairs) == 6 and len({(p.episode, p.start_step) for p in pairs}) == 6
    for pair in pairs:
        assert pair.episode in set(val_ids.tolist())
        rows = dataset.episode_slice(pair.episode)
        goal_row = rows.start + pair.start_step + 10
        assert np.array_equal(pair.goal_state, dataset.state[goal_row])
        assert not spec.is_success(pair.start_state, pair.goal_state)
    with pytest.raises(ValueError, match="non-trivial pairs"):
        sample_pairs(dataset, val_ids, spec, EvalConfig(num_pairs=500, goal_offset=10))


def test_kept_solved_starts_are_drawn_in_the_same_order_as_skipped_ones(tiny_dataset, monkeypatch):
    dataset = EpisodeDataset.load(tiny_dataset)
    spec = get_env_spec("tworoom")
    # A success test that holds for about half the pairs: the start left of the goal.
    monkeypatch.setattr(type(spec), "is_success", lambda self, start, goal: start[0] < goal[0])
    _, val_ids = dataset.split(0.25, seed=0)
    skip = EvalConfig(num_pairs=8, goal_offset=10, val_fraction=0.25)
    skipped_pairs, skipped = sample_pairs(dataset, val_ids, spec, skip)
    keep = EvalConfig(num_pairs=8, goal_offset=10, val_fraction=0.25, solved_starts="keep")
    kept_pairs, none_skipped = sample_pairs(dataset, val_ids, spec, keep)
    solved = [p for p in kept_pairs if p.start_state[0] < p.goal_state[0]]
    assert skipped > 0 and none_skipped == 0 and 0 < len(solved) < 8
    assert not any(p.start_state[0] < p.goal_state[0] for p in skipped_pairs)
    unsolved = [(p.episode, p.start_step) for p in kept_pairs if p not in solved]
    assert unsolved == [(p.episode, p.start_step) for p in skipped_pairs[: len(unsolved)]]
    with pytest.raises(ValueError, match="solved_starts"):
        EvalConfig(solved_starts="drop")


def test_a_kept_solved_start_counts_as_solved_without_a_plan(tiny_model):
    spec = get_env_spec("tworoom")
    (pair,), _ = heldout_pairs(spec, 1, seed=0)
    solved = Pair(pair.episode, pair.start_step, pair.start_state, pair.start_state)
    planner = lm.CEM(lm.WorldModel.load(tiny_model), horizon=2, num_samples=8, iterations=1,
                     topk=2, seed=0)  # fmt: skip
    config = EvalConfig(budget=5, solved_starts="keep")
    report = evaluate_pairs(planner, [solved, pair], spec, config, progress=False)
    first = report.pairs[0]
    assert first.success and first.steps_to_success == 0 and first.plan_seconds == ()
    assert report.pairs[1].plan_seconds != ()  # the unsolved pair is planned as usual
    assert "kept 1 solved starts" in report.summary()
    assert report.to_dict()["config"]["solved_starts"] == "keep"


def test_pairs_from_train_or_val_come_only_from_that_split(tiny_dataset):
    dataset = EpisodeDataset.load(tiny_dataset)
    spec = get_env_spec("tworoom")
    train_ids, val_ids = dataset.split(0.25, seed=0)
    for pairs_from, expected in (("val", val_ids), ("train", train_ids)):
        config = EvalConfig(num_pairs=20, goal_offset=10, val_fraction=0.25, pairs_from=pairs_from)
        np.testing.assert_array_equal(pair_episode_ids(dataset, config), expected)
        np.testing.assert_array_equal(pair_episode_ids(dataset, config, val_ids), expected)
        pairs, _ = sample_pairs(dataset, pair_episode_ids(dataset, config), spec, config)
        assert {pair.episode for pair in pairs} <= set(expected.tolist())
    with pytest.raises(ValueError, match="pairs_from"):
        EvalConfig(pairs_from="test")


def test_control_loop_executes_receding_blocks_until_the_budget(tiny_model):
    model = lm.WorldModel.load(tiny_model)
    planner = lm.CEM(model, num_samples=16, iterations=2, topk=4, receding_horizon=2)
    env = get_env_spec("tworoom").make(obs_mode="pixels")
    obs, info = env.reset(seed=0)
    goal = env.unwrapped.render_state(env.unwrapped.goal_state)
    episode = run_episode(env, planner, obs, info, goal, max_steps=23, stop_on_success=False)
    assert episode.actions.shape == (23, 2) and episode.observations.shape[0] == 24
    assert episode.plan_steps == (0, 10, 20)  # 2 blocks of 5 actions per plan
    assert np.array_equal(episode.observations[0], obs)
    # The recorded states are what the simulator went through.
    replay = get_env_spec("tworoom").make(obs_mode="state")
    replay.reset(options={"state": episode.states[0]})
    for action, state in zip(episode.actions, episode.states[1:], strict=True):
        assert np.allclose(replay.step(action)[0], state)


def test_evaluate_reports_and_saves_json(tiny_model, tiny_dataset, tmp_path):
    planner = lm.CEM(lm.WorldModel.load(tiny_model), num_samples=16, iterations=2, topk=4,
                     polish_steps=0)  # fmt: skip
    config = EvalConfig(num_pairs=2, goal_offset=10, budget=10)
    report = evaluate(
        planner, EpisodeDataset.load(tiny_dataset), get_env_spec("tworoom"), config, progress=False
    )
    assert report.num_pairs == 2 and 0 <= report.success_rate <= 1
    assert report.latency_p50_s > 0 and report.energy_evals_per_plan == 32
    saved = json.loads(report.save(tmp_path / "r.json").read_text())
    assert saved["num_pairs"] == 2 and saved["planner"]["class"] == "CEM"
    assert "success" in report.summary()


def test_eval_cli_pairs_from_train(tiny_model, tiny_dataset, tmp_path, capsys):
    from lewm_mpc.runs import load_run

    run = load_run(tiny_model, tiny_dataset)
    flags = ["eval", "--model", str(tiny_model), "--data", str(tiny_dataset), "--pairs", "3",
             "--goal-offset", "10", "--budget", "5", "--samples", "8", "--iterations", "1",
             "--topk", "2"]  # fmt: skip
    for pairs_from, ids in (("train", run.train_ids), ("val", run.val_ids)):
        out = tmp_path / f"{pairs_from}.json"
        assert main([*flags, "--pairs-from", pairs_from, "--out", str(out)]) == 0
        report = json.loads(out.read_text())
        assert report["pairs_from"] == report["config"]["pairs_from"] == pairs_from
        assert {pair["episode"] for pair in report["pairs"]} <= set(ids.tolist())
    assert "pairs from training episodes" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*flags, "--pairs-from", "test"])  # argparse: not a choice


def test_eval_cli_pairs_from_regenerated_are_the_shipped_models_pairs(tiny_model, tmp_path,
                                                                      capsys):  # fmt: skip
    from lewm_mpc.evaluation import heldout_pairs

    out = tmp_path / "regenerated.json"
    flags = ["eval", "--model", str(tiny_model), "--pairs", "3", "--budget", "5", "--samples",
             "8", "--iterations", "1", "--topk", "2", "--pairs-from", "regenerated"]  # fmt: skip
    assert main([*flags, "--out", str(out)]) == 0
    assert "from regenerated held-out tworoom episodes" in capsys.readouterr().out
    model = lm.WorldModel.load(tiny_model)
    expected, _ = heldout_pairs(get_env_spec("tworoom"), 3, 0, "scripted",
                                model.run_meta.env_config)  # fmt: skip
    report = json.loads(out.read_text())
    assert [(p["episode"], p["start_step"]) for p in report["pairs"]] == [
        (pair.episode, pair.start_step) for pair in expected
    ]


def test_video_has_one_frame_per_step_plus_hold(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (7, 64, 64, 3), dtype=np.uint8)
    success = [False] * 5 + [True] * 2
    for name, num_frames in (("e.mp4", 7 + 3), ("e.gif", 7)):
        path = write_episode_video(tmp_path / name, frames, frames[-1], success, hold_last=3)
        video = iio.imread(path, index=None)
        assert video.shape[0] == num_frames and video.shape[-1] == 3
        assert video.shape[1] == 64 * 4 + 16  # upscaled, with a border
    with pytest.raises(ValueError, match=r"mp4 or \.gif"):
        write_episode_video(tmp_path / "e.avi", frames, frames[-1], success)


def test_cli_errors_are_one_line_with_nonzero_exit(tmp_path, capsys):
    code = main(["eval", "--model", str(tmp_path / "missing"), "--data", str(tmp_path / "x.h5")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("lewm-mpc eval: error:")
    assert main(["collect", "nosuchenv", "--out", str(tmp_path / "d.h5")]) == 2
    assert "tworoom" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train"])  # argparse: missing required arguments


def test_tiny_end_to_end_collect_train_plan(tmp_path):
    """2 episodes, a few training steps, one plan: the whole path through the CLI."""
    data = tmp_path / "d.h5"
    assert main(["collect", "tworoom", "--out", str(data), "--episodes", "2", "--steps", "30"]) == 0
    dataset = EpisodeDataset.load(data)
    assert dataset.num_episodes == 2
    run = tmp_path / "run"
    config = TrainConfig(
        steps=3,
        batch_size=4,
        num_frames=2,
        val_fraction=0.5,
        val_every=3,
        val_batches=1,
        checkpoint_every=3,
        sigreg_projections=16,
    )
    train(data, run, tiny_config(), config, progress=False)
    planner = lm.CEM(lm.WorldModel.load(run), num_samples=16, iterations=2, topk=4)
    result = planner.plan(dataset.pixels[0], dataset.pixels[20])
    assert result.actions.shape == (25, 2) and np.abs(result.actions).max() <= 1.0


def test_env_config_travels_from_dataset_to_training_and_evaluation(tmp_path):
    from lewm_mpc.data.collection import collect_dataset

    path = collect_dataset(
        "tworoom", tmp_path / "d.h5", 4, 30, progress=False, env_config={"image_size": 32}
    )
    dataset = EpisodeDataset.load(path)
    assert dataset.image_shape == (32, 32, 3) and dataset.meta.env_config["image_size"] == 32
    config = TrainConfig(
        steps=2,
        batch_size=4,
        num_frames=2,
        val_fraction=0.25,
        val_every=2,
        val_batches=1,
        checkpoint_every=2,
        sigreg_projections=16,
    )
    train(path, tmp_path / "run", tiny_config(), config, progress=False)
    model = lm.WorldModel.load(tmp_path / "run")
    assert model.obs_shape == (32, 32, 3)
    planner = lm.CEM(model, num_samples=8, iterations=1, topk=2)
    report = evaluate(
        planner,
        dataset,
        get_env_spec("tworoom"),
        EvalConfig(num_pairs=1, goal_offset=10, budget=5, val_fraction=0.25),
        progress=False,
    )
    assert report.num_pairs == 1


def test_random_goal_pairs_are_seeded_anywhere_and_unsolved():
    from lewm_mpc.envs import get_env_spec
    from lewm_mpc.evaluation import random_goal_pairs

    spec = get_env_spec("tworoom")
    pairs, skipped = random_goal_pairs(spec, 20, seed=3)
    again, _ = random_goal_pairs(spec, 20, seed=3)
    assert len(pairs) == 20 and skipped >= 0
    for a, b in zip(pairs, again, strict=True):
        np.testing.assert_array_equal(a.goal_state, b.goal_state)
    assert not any(spec.is_success(p.start_state, p.goal_state) for p in pairs)
    rooms = {bool(p.start_state[0] < 0.5) != bool(p.goal_state[0] < 0.5) for p in pairs}
    assert rooms == {True, False}  # some goals are in the other room, some in the same
