"""A robot's own data: written from numpy arrays (no env id), trained and evaluated offline
through the CLI; the model finds its dataset again, and refuses one that changed."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from lewm_mpc import WorldModel
from lewm_mpc.cli import main
from lewm_mpc.data import DatasetMeta, Episode, EpisodeDataset, write_episodes
from lewm_mpc.models.run_dir import checkpoint_dir
from lewm_mpc.offline_eval import OfflineConfig, evaluate_offline
from lewm_mpc.runs import load_run

SIZE = 16  # pixels; the default CNN halves four times
BOUNDS = {"action_low": (-1.0, -1.0), "action_high": (1.0, 1.0)}


def point_bot_episodes(count: int, steps: int, seed: int = 0) -> list[Episode]:
    """A point moving in the unit square under random actions, seen from above."""
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(count):
        position = rng.uniform(0.2, 0.8, 2)
        actions = rng.uniform(-1.0, 1.0, (steps, 2))
        states = [position]
        for action in actions:
            states.append(np.clip(states[-1] + 0.05 * action, 0.0, 1.0))
        state = np.stack(states)  # (L, 2)
        pixels = np.zeros((steps + 1, SIZE, SIZE, 3), np.uint8)
        cells = np.round(state * (SIZE - 1)).astype(int)
        pixels[np.arange(steps + 1), cells[:, 1], cells[:, 0]] = 255
        action = np.vstack([actions, np.full((1, 2), np.nan)]).astype(np.float32)
        episodes.append(Episode(pixels=pixels, state=state, action=action))
    return episodes


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """PointBot data written from arrays and a model trained on it with ``lewm-mpc train``."""
    folder = tmp_path_factory.mktemp("own")
    meta = DatasetMeta(env_id="my_lab/PointBot-v0", control_hz=10.0, **BOUNDS)
    data = write_episodes(folder / "my.h5", point_bot_episodes(8, 30), meta)
    args = ["train", "--data", str(data), "--out", str(folder / "run"), "--steps", "4"]
    assert main([*args, "--batch-size", "8", "--device", "cpu"]) == 0
    return folder, data


def test_own_data_trains_with_no_env_and_records_its_dataset(trained):
    folder, data = trained
    meta = EpisodeDataset.load(data).meta
    assert meta.env_id == "my_lab/PointBot-v0" and meta.action_bounds() == ((-1.0,) * 2, (1.0,) * 2)
    assert meta.observation("pixels").shape == (SIZE, SIZE, 3) and meta.control_hz == 10.0
    run_meta = WorldModel.load(folder / "run").run_meta
    assert run_meta.env_id == "my_lab/PointBot-v0" and run_meta.obs_mode == "pixels"
    assert run_meta.dataset.path == str(data) and len(run_meta.dataset.sha256) == 64
    assert len(run_meta.split.val_episodes) == 1 and run_meta.training.steps == 4
    assert run_meta.step == 4


def test_offline_eval_through_the_cli_finds_the_dataset(trained, capsys):
    folder, _ = trained
    out = folder / "offline.json"
    args = ["eval", "--offline", "--model", str(folder / "run"), "--offline-horizon", "3"]
    assert main([*args, "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "prediction error" in printed and "R²" in printed
    report = json.loads(out.read_text())
    assert len(report["prediction_error"]) == 3 and report["num_val_episodes"] == 1
    assert all(math.isfinite(value) and value >= 0 for value in report["prediction_error"])


def test_offline_report_is_typed(trained):
    folder, data = trained
    run = load_run(folder / "run", data)
    assert run.env_spec is None and tuple(run.val_ids) == run.meta.split.val_episodes
    assert run.val_ids[0] not in run.train_ids and len(run.train_ids) == 7
    report = evaluate_offline(run, OfflineConfig(horizon=2, max_windows=8))
    assert report.num_windows == 8 and len(report.hold_baseline) == 2
    assert len(report.probe_r2) == 2 and "held-out R²" in report.table()


def test_closed_loop_eval_of_own_data_says_to_use_offline(trained, capsys):
    folder, _ = trained
    assert main(["eval", "--model", str(folder / "run"), "--device", "cpu"]) == 2
    assert "--offline" in capsys.readouterr().err


def test_a_changed_or_missing_dataset_is_refused_clearly(trained, tmp_path, capsys):
    folder, data = trained
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("config.json", "model.safetensors"):
        (copy / name).write_bytes((checkpoint_dir(folder / "run") / name).read_bytes())
    moved = tmp_path / "my.h5"
    moved.write_bytes(data.read_bytes())
    config = json.loads((copy / "config.json").read_text())
    config["run_meta"]["dataset"]["path"] = str(moved)
    (copy / "config.json").write_text(json.dumps(config))
    with h5py.File(moved, "r+") as file:
        file["state"][0, 0] += 1.0  # the data changed after training
    assert main(["eval", "--offline", "--model", str(copy), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "has changed since" in error and f"--data {moved}" in error
    # --data says to use it anyway
    assert main(["eval", "--offline", "--model", str(copy), "--data", str(moved)]) == 0
    moved.unlink()
    with pytest.raises(FileNotFoundError, match=r"does not exist.*--data PATH"):
        load_run(copy)


def test_train_history_flag_gives_a_model_that_conditions_on_that_many_frames(trained, tmp_path):
    _, data = trained
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "2"]
    assert main([*args, "--batch-size", "8", "--device", "cpu", "--history", "3"]) == 0
    model = WorldModel.load(tmp_path / "run")
    assert model.history == 3 and model.config.history == 3


def test_blocked_rows_train_with_a_matching_model_block(tmp_path):
    """Rows recorded in blocks of 5 env actions: the model's blocks are 5 actions too."""
    episodes = []
    for episode in point_bot_episodes(6, 30):
        action = episode.action[:-1].reshape(6, 10)  # 6 blocks of 5 two-d actions
        action = np.vstack([action, np.full((1, 10), np.nan, np.float32)])
        episodes.append(Episode(episode.pixels[::5], episode.state[::5], action))
    meta = DatasetMeta(action_block=5, **BOUNDS)
    data = write_episodes(tmp_path / "blocked.h5", episodes, meta)
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "2"]
    assert main([*args, "--batch-size", "4", "--device", "cpu"]) == 0
    model = WorldModel.load(tmp_path / "run")
    assert model.action_block == 5 and model.action_dim == 2 and model.run_meta.env_id is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "action_low and action_high are required"),
        ({"action_low": (-1.0,), "action_high": (1.0, 1.0)}, "same length"),
        ({"action_low": (1.0, -1.0), "action_high": (1.0, 1.0)}, "action_low < action_high"),
        ({"action_low": (-np.inf, -1.0), "action_high": (1.0, 1.0)}, "finite"),
        ({"action_low": (), "action_high": ()}, "one entry per action dimension"),
        ({"action_low": (-1.0,), "action_high": None}, "both"),
        ({**BOUNDS, "action_block": 0}, "action_block"),
        ({**BOUNDS, "env_id": ""}, "env_id"),
        ({**BOUNDS, "control_hz": 0.0}, "control_hz"),
        ({**BOUNDS, "control_hz": math.nan}, "control_hz"),
        ({**BOUNDS, "episode_steps": 0}, "episode_steps"),
        ({**BOUNDS, "seed": -1}, "seed"),
        ({**BOUNDS, "format_version": 9}, "newer"),
    ],
)
def test_dataset_meta_validation(fields, message):
    fields.setdefault("action_low", None)
    fields.setdefault("action_high", None)
    with pytest.raises(ValueError, match=message):
        DatasetMeta(**fields)


def test_write_refuses_a_meta_that_disagrees_with_the_episodes(tmp_path):
    episodes = point_bot_episodes(2, 5)
    wide = DatasetMeta(action_low=(-1.0,) * 3, action_high=(1.0,) * 3)
    with pytest.raises(ValueError, match="action rows are 2 wide"):
        write_episodes(tmp_path / "bad.h5", episodes, wide)
    assert not (tmp_path / "bad.h5").exists()
