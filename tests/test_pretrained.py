"""Shipped world models (``pretrained:<env>``), float16 checkpoints and dataset-free evaluation."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import lewm_mpc as lm
from conftest import tiny_config
from lewm_mpc.cli import main
from lewm_mpc.data.regenerated import CACHE_VARIABLE
from lewm_mpc.envs import ENV_SPECS, get_env_spec
from lewm_mpc.evaluation import HELDOUT_SEED_BASE, EvalConfig, evaluate_pairs, heldout_pairs
from lewm_mpc.models import CheckpointError, WorldModel
from lewm_mpc.models.pretrained import (
    CARD_FILE,
    ROOT_VARIABLE,
    ModelCard,
    export_pretrained,
    pretrained_names,
    pretrained_root,
    read_card,
    resolve_model_path,
)
from lewm_mpc.models.run_meta import DatasetRef
from lewm_mpc.runs import load_run

SHA = "ab" * 32


def tiny_tworoom_model() -> WorldModel:
    """An untrained tiny pixel model that records Two-Room as its environment."""
    torch.manual_seed(0)
    model = WorldModel(tiny_config())
    gym_id = get_env_spec("tworoom").gym_id
    model.run_meta = dataclasses.replace(model.run_meta, env_id=gym_id)
    return model.eval()


def tworoom_card(**overrides) -> ModelCard:
    fields = dict(
        env="tworoom", data_policy="scripted", episodes=300, episode_steps=100, train_steps=3000,
        dataset_sha256=SHA, success_rate=0.8, eval_pairs=10,
    )  # fmt: skip
    return ModelCard(**{**fields, **overrides})


@pytest.fixture
def shipped(tmp_path, monkeypatch) -> Path:
    """A pretrained root (in a temporary folder) shipping a tiny Two-Room model."""
    root = tmp_path / "pretrained"
    monkeypatch.setenv(ROOT_VARIABLE, str(root))
    export_pretrained(tiny_tworoom_model(), tworoom_card())
    return root


def test_the_default_root_is_the_package_folder(monkeypatch):
    monkeypatch.delenv(ROOT_VARIABLE, raising=False)
    assert pretrained_root() == Path(lm.__file__).resolve().parent / "pretrained"


def test_unknown_and_unshipped_names_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv(ROOT_VARIABLE, str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown pretrained model 'pretrained:nosuch'; shipped"):
        WorldModel.load("pretrained:nosuch")
    with pytest.raises(ValueError, match=r"no pretrained model is shipped for reacher yet"):
        WorldModel.load("pretrained:reacher")
    export_pretrained(tiny_tworoom_model(), tworoom_card())
    with pytest.raises(ValueError, match=r"shipped: pretrained:tworoom"):
        lm.load_run("pretrained:nosuch")
    assert main(["eval", "--model", "pretrained:nosuch"]) == 2
    assert resolve_model_path("runs/x") == Path("runs/x")  # plain paths pass through


def test_float16_export_round_trips_and_plans(shipped):
    original = tiny_tworoom_model()
    assert pretrained_names() == ("tworoom",)
    folder = resolve_model_path("pretrained:Two-Room")
    assert folder == shipped / "tworoom"
    stored = load_file(str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    assert config["weights_dtype"] == "float16" and len(config["weights_sha256"]) == 64
    model = WorldModel.load("pretrained:tworoom")
    parameters = {name for name, _ in original.named_parameters()}
    for name, tensor in original.state_dict().items():
        loaded = model.state_dict()[name]
        if name in parameters:  # parameters: float16 on disk, float32 again once loaded
            assert stored[name].dtype == torch.float16 and loaded.dtype == torch.float32
            torch.testing.assert_close(loaded, tensor.half().float(), rtol=0, atol=0)
        else:  # buffers (action statistics and bounds) stay exact
            torch.testing.assert_close(loaded, tensor, rtol=0, atol=0)
    assert model.run_meta == original.run_meta
    env = get_env_spec("tworoom").make()
    obs, _ = env.reset(seed=0)
    goal, _ = env.reset(seed=1)
    env.close()
    result = lm.CEM(model, num_samples=16, iterations=2, topk=4, seed=0).plan(obs, goal)
    assert result.actions.shape == (25, 2) and np.isfinite(result.energy)
    # The SHA-256 check still guards the shipped file.
    raw = bytearray((folder / "model.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="SHA-256"):
        WorldModel.load("pretrained:tworoom")


def test_the_card_records_how_the_model_was_made(shipped):
    card = read_card("pretrained:tworoom")
    assert card == tworoom_card()
    assert json.loads((shipped / "tworoom" / CARD_FILE).read_text())["dataset_sha256"] == SHA
    model = tiny_tworoom_model()
    trained_on = DatasetRef("data/tworoom.h5", "cd" * 32)
    model.run_meta = dataclasses.replace(model.run_meta, dataset=trained_on)
    with pytest.raises(ValueError, match="differs from the dataset"):
        export_pretrained(model, tworoom_card())
    with pytest.raises(ValueError, match="no data policy 'nope'"):
        export_pretrained(tiny_tworoom_model(), tworoom_card(data_policy="nope"))
    with pytest.raises(ValueError, match="not a share of 10"):
        tworoom_card(success_rate=0.55)
    with pytest.raises(FileNotFoundError, match="pretrained:tworoom comes without its dataset"):
        load_run("pretrained:tworoom", regenerate=False)


def test_load_run_regenerates_a_cached_dataset_for_a_shipped_model(shipped, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_VARIABLE, str(cache))
    run = load_run("pretrained:tworoom", regenerated_episodes=8)
    assert run.regenerated and run.env_spec is get_env_spec("tworoom")
    assert run.data_path.parent == cache / "regenerated"
    assert run.data_path.name.startswith("tworoom-scripted-")  # the card's data policy
    meta = run.dataset.meta
    assert meta.data_policy == "scripted" and meta.seed == HELDOUT_SEED_BASE
    assert meta.action_block == 1 and run.dataset.num_episodes == 8
    np.testing.assert_array_equal(run.train_ids, np.arange(6))  # fit probes
    np.testing.assert_array_equal(run.val_ids, [6, 7])  # held-out pairs
    # The episodes are those heldout_pairs regenerates: none is a training episode.
    pairs, _ = heldout_pairs(run.env_spec, 3, policy="scripted", env_config=run.meta.env_config)
    for pair in pairs:
        row = run.dataset.episode_slice(pair.episode).start + pair.start_step
        np.testing.assert_array_equal(run.dataset.state[row], pair.start_state)
    # Same settings, same file: a second call reuses it without collecting.
    stamp = run.data_path.stat().st_mtime_ns

    def refuse(*args, **kwargs):
        raise AssertionError("collected again")

    with monkeypatch.context() as patch:
        patch.setattr(sys.modules["lewm_mpc.data.collect"], "collect_episode", refuse)
        again = load_run("pretrained:tworoom", regenerated_episodes=8)
    assert again.data_path == run.data_path and run.data_path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.dataset.pixels, run.dataset.pixels)
    assert load_run("pretrained:tworoom", regenerated_episodes=4).data_path != run.data_path
    with pytest.raises(ValueError, match=">= 2 episodes"):
        load_run("pretrained:tworoom", regenerated_episodes=1)
    with pytest.raises(ValueError, match="not both"):
        load_run("pretrained:tworoom", run.data_path, regenerate=True)
    # A model that records no dataset regenerates too (the env's default data policy).
    folder = tiny_tworoom_model().save(tmp_path / "model")
    unrecorded = load_run(folder, regenerated_episodes=4)
    assert unrecorded.regenerated and unrecorded.dataset.meta.data_policy == "scripted"


def test_heldout_pairs_are_seeded_valid_and_unsolved():
    spec = get_env_spec("tworoom")
    pairs, skipped = heldout_pairs(spec, 6, seed=3)
    again, skipped_again = heldout_pairs(spec, 6, seed=3)
    other, _ = heldout_pairs(spec, 6, seed=4)
    assert len(pairs) == 6 and skipped == skipped_again
    for first, second in zip(pairs, again, strict=True):
        assert (first.episode, first.start_step) == (second.episode, second.start_step)
        np.testing.assert_array_equal(first.start_state, second.start_state)
        np.testing.assert_array_equal(first.goal_state, second.goal_state)
    starts = [(a.start_state, b.start_state) for a, b in zip(pairs, other, strict=True)]
    assert any(not np.array_equal(a, b) for a, b in starts)  # another seed, other pairs
    env = spec.make(obs_mode="state")
    for pair in pairs:
        assert pair.start_step + 25 <= spec.default_episode_steps
        _, info = env.reset(options={"state": pair.start_state, "goal": pair.goal_state})
        np.testing.assert_allclose(env.unwrapped.get_state(), pair.start_state)
        assert not info["success"] and not spec.is_success(pair.start_state, pair.goal_state)
    env.close()
    assert HELDOUT_SEED_BASE > 1_000_000  # far above collection seeds
    # Goals beyond the registered time limit: the episode runs on, and shorter pairs keep theirs.
    far, _ = heldout_pairs(spec, 2, goal_offset=spec.max_episode_steps + 20)
    assert [pair.start_step for pair in far] == [0, 0]
    near, _ = heldout_pairs(spec, 2, seed=3, goal_offset=25)
    assert [pair.start_state.tolist() for pair in near] == [
        pair.start_state.tolist() for pair in pairs[:2]
    ]


def test_eval_of_a_pretrained_model_needs_no_dataset(shipped, tmp_path, capsys):
    out = tmp_path / "eval.json"
    budget = ["--budget", "5", "--horizon", "2", "--samples", "8", "--iterations", "1"]
    args = ["eval", "--model", "pretrained:tworoom", "--pairs", "2", *budget, "--topk", "2"]
    assert main([*args, "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "regenerated held-out tworoom episodes (scripted data policy" in printed
    assert "success" in printed and "/2 =" in printed
    report = json.loads(out.read_text())
    assert report["num_pairs"] == 2 and report["env_id"] == "lewm_mpc/TwoRoom-v0"
    assert report["planner"]["covariance"] == "diagonal"
    assert main([*args, "--solved-starts", "keep", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["config"]["solved_starts"] == "keep"
    assert "solved starts (counted as successes, as LeWM)" in capsys.readouterr().out
    assert main([*args, "--covariance", "full", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["planner"]["covariance"] == "full"
    assert main([*args, "--polish-steps", "3", "--out", str(out)]) == 0  # under inference mode
    polished = json.loads(out.read_text())
    assert polished["planner"]["polish_steps"] == 3
    assert polished["energy_evals_per_plan"] > 8  # the sampled candidates, then the polish
    gradient = ["eval", "--model", "pretrained:tworoom", "--pairs", "1", "--budget", "2",
                "--planner", "gradient", "--horizon", "2", "--iterations", "2"]  # fmt: skip
    assert main([*gradient, "--out", str(out)]) == 0  # gradients flow under eval's inference mode
    assert json.loads(out.read_text())["planner"]["restarts"] == 8
    # A checkpoint folder that records no dataset takes the same path; so does Python.
    folder = tiny_tworoom_model().save(tmp_path / "model")
    assert main(["eval", "--model", str(folder), "--pairs", "1", *budget, "--topk", "2"]) == 0
    model = WorldModel.load("pretrained:tworoom")
    pairs, skipped = heldout_pairs(get_env_spec("tworoom"), 1, seed=0)
    planner = lm.CEM(model, horizon=2, num_samples=8, iterations=1, topk=2, seed=0)
    report = evaluate_pairs(
        planner, pairs, get_env_spec("tworoom"), EvalConfig(budget=5), skipped_solved=skipped,
        progress=False,
    )  # fmt: skip
    assert report.num_pairs == 1 and report.skipped_solved == skipped
    # Resuming: results already there count as given; results of other pairs are refused.
    resumed = evaluate_pairs(planner, pairs, get_env_spec("tworoom"), EvalConfig(budget=5),
                             progress=False, done=report.pairs)  # fmt: skip
    assert resumed.pairs == report.pairs
    other = dataclasses.replace(report.pairs[0], start_step=report.pairs[0].start_step + 1)
    with pytest.raises(ValueError, match="done does not match pairs"):
        evaluate_pairs(planner, pairs, get_env_spec("tworoom"), progress=False, done=[other])


@pytest.mark.slow
@pytest.mark.parametrize("env", sorted(ENV_SPECS))
def test_shipped_models_plan_above_their_card_floor(env):
    """Each shipped model on 10 seeded held-out pairs, at the env's reference budget."""
    assert env in pretrained_names(), f"no pretrained weights are shipped for {env}"
    spec = get_env_spec(env)
    card = read_card(f"pretrained:{env}")
    assert card is not None and card.success_rate is not None, f"{env}: card lacks its success"
    model = WorldModel.load(f"pretrained:{env}")
    pairs, skipped = heldout_pairs(
        spec, 10, seed=0, policy=card.data_policy, env_config=model.run_meta.env_config
    )
    budget = dataclasses.asdict(spec.budget)
    planner = lm.CEM(model, energy=lm.GoalDistance(), seed=0, **budget)
    with torch.inference_mode():
        report = evaluate_pairs(
            planner, pairs, spec, EvalConfig(num_pairs=10), model.run_meta.obs_mode,
            model.run_meta.env_config, skipped, progress=False,
        )  # fmt: skip
    floor = card.success_rate / 2
    assert report.success_rate >= floor, f"{env}: {report.summary()} (floor {floor:.2f})"


def test_the_shipped_two_room_model_loads_and_plans() -> None:
    import lewm_mpc as lm
    from lewm_mpc.envs import get_env_spec
    from lewm_mpc.models.pretrained import pretrained_names, read_card

    assert "tworoom" in pretrained_names()
    card = read_card("pretrained:tworoom")
    assert card is not None and card.env == "tworoom" and card.eval_pairs > 0
    model = lm.WorldModel.load("pretrained:tworoom")
    assert model.run_meta.env_id == "lewm_mpc/TwoRoom-v0" and not model.training
    env = get_env_spec("tworoom").make(obs_mode="pixels")
    obs, info = env.reset(seed=1)
    goal = env.unwrapped.render_state(info["goal"])
    result = lm.CEM(model, num_samples=16, iterations=2, topk=4, seed=0).plan(obs, goal)
    env.close()
    assert result.actions.shape == (5 * model.action_block, 2)
    assert abs(result.actions).max() <= 1.0


def test_eval_with_random_goals_and_subgoals_needs_no_dataset(shipped, capsys):
    budget = ["--budget", "5", "--horizon", "2", "--samples", "8", "--iterations", "1"]
    args = ["eval", "--model", "pretrained:tworoom", "--pairs", "2", *budget, "--topk", "2"]
    assert main([*args, "--goals", "random", "--hierarchical"]) == 0
    printed = capsys.readouterr().out
    assert "goals anywhere in tworoom" in printed and "hierarchical: a graph of" in printed
    assert "(random goals): success" in printed and "/2 =" in printed
