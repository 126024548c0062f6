"""Collection in blocks of K env actions per stored frame (``action_block``)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import lewm_mpc as lm
from conftest import tiny_config
from lewm_mpc.cli import main
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.data.collection import collect_dataset
from lewm_mpc.envs import get_env_spec
from lewm_mpc.evaluation import EvalConfig, sample_pairs
from lewm_mpc.training import TrainConfig, train

BLOCK = 5


def _needs(*modules: str) -> pytest.MarkDecorator:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")


@pytest.mark.parametrize(
    ("env", "episodes", "steps"),
    [
        ("tworoom", 3, 40),
        pytest.param("pusht", 2, 20, marks=_needs("pymunk", "pygame")),
        pytest.param("cube", 1, 10, marks=_needs("ogbench")),
    ],
)
def test_blocks_are_subsampled_single_steps(tmp_path, env, episodes, steps):
    """Same seed: the K = 5 file holds every 5th frame and state of the K = 1 file and its
    actions grouped by 5 (the same trajectories, rendered only at stored frames)."""
    single = EpisodeDataset.load(
        collect_dataset(env, tmp_path / "k1.h5", episodes, steps, seed=7, progress=False)
    )
    blocks = EpisodeDataset.load(
        collect_dataset(
            env, tmp_path / "k5.h5", episodes, steps, seed=7, progress=False, action_block=BLOCK
        )
    )
    assert blocks.meta.action_block == BLOCK and blocks.meta.episode_steps == steps
    assert blocks.meta.control_hz == pytest.approx(single.meta.control_hz / BLOCK)
    assert blocks.action_dim == BLOCK * single.action_dim
    np.testing.assert_array_equal(blocks.episode_lengths, steps // BLOCK + 1)
    for episode in range(episodes):
        one, five = single.episode_slice(episode), blocks.episode_slice(episode)
        np.testing.assert_array_equal(blocks.pixels[five], single.pixels[one][::BLOCK])
        np.testing.assert_array_equal(blocks.state[five], single.state[one][::BLOCK])
        grouped = single.action[one][:-1].reshape(-1, BLOCK * single.action_dim)  # (L/K, K*A)
        np.testing.assert_array_equal(blocks.action[five][:-1], grouped)
        assert np.isnan(blocks.action[five][-1]).all()


def test_only_stored_frames_are_rendered(tmp_path, monkeypatch):
    env_class = get_env_spec("tworoom").env_class
    draws = []
    real_draw = env_class._draw

    def counting_draw(self, state, size):
        draws.append(size)
        return real_draw(self, state, size)

    monkeypatch.setattr(env_class, "_draw", counting_draw)
    collect_dataset("tworoom", tmp_path / "d.h5", 2, 20, progress=False, action_block=BLOCK)
    assert len(draws) == 2 * (20 // BLOCK + 1)


def test_block_settings_are_checked(tmp_path):
    path = tmp_path / "d.h5"
    with pytest.raises(ValueError, match="multiple of action_block"):
        collect_dataset("tworoom", path, 2, 12, progress=False, action_block=BLOCK)
    collect_dataset("tworoom", path, 2, 10, progress=False, action_block=BLOCK)
    with pytest.raises(ValueError, match=r"different settings.*action_block"):
        collect_dataset("tworoom", path, 3, 10, progress=False, action_block=2)
    assert EpisodeDataset.load(path).num_episodes == 2  # untouched
    code = main(["collect", "tworoom", "--out", str(tmp_path / "c.h5"), "--episodes", "2",
                 "--steps", "10", "--action-block", str(BLOCK), "--workers", "1"])  # fmt: skip
    assert code == 0
    assert EpisodeDataset.load(tmp_path / "c.h5").meta.action_block == BLOCK


def test_train_plan_and_evaluate_on_block_data(tmp_path):
    """The default model's action block (5) over K = 5 rows: one row per model step."""
    path = collect_dataset("tworoom", tmp_path / "d.h5", 4, 40, progress=False, action_block=5)
    single = EpisodeDataset.load(collect_dataset("tworoom", tmp_path / "s.h5", 4, 40, seed=0,
                                                 progress=False))  # fmt: skip
    dataset = EpisodeDataset.load(path)
    config = TrainConfig(
        steps=2, batch_size=4, num_frames=3, val_fraction=0.25, val_every=2, val_batches=1,
        checkpoint_every=2, sigreg_projections=16,
    )  # fmt: skip
    model_config = tiny_config()
    assert model_config.action_block == BLOCK
    train(path, tmp_path / "run", model_config, config, progress=False)
    model = lm.WorldModel.load(tmp_path / "run")
    planner = lm.CEM(model, num_samples=8, iterations=1, topk=2)
    result = planner.plan(dataset.pixels[0], dataset.pixels[4])
    assert result.actions.shape == (25, 2) and np.abs(result.actions).max() <= 1.0
    # Pairs: goal_offset counts env steps; rows are 5 env steps apart.
    spec = get_env_spec("tworoom")
    eval_config = EvalConfig(num_pairs=3, goal_offset=10)
    pairs, _ = sample_pairs(dataset, dataset.episode_ids, spec, eval_config)
    for pair in pairs:
        row = single.episode_slice(pair.episode).start + pair.start_step
        np.testing.assert_array_equal(pair.start_state, single.state[row])
        np.testing.assert_array_equal(pair.goal_state, single.state[row + 10])
    with pytest.raises(ValueError, match="multiple of the dataset's action_block"):
        sample_pairs(dataset, dataset.episode_ids, spec, EvalConfig(num_pairs=1, goal_offset=12))
