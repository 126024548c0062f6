"""Scene symmetries: the square's eight maps, PushT's physics and frames unchanged under them,
and training on windows augmented with them (sampler, action statistics, resume)."""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_config
from lewm_mpc import WorldModel
from lewm_mpc.data import EpisodeDataset, WindowSampler, action_stats
from lewm_mpc.data.collection import collect_dataset
from lewm_mpc.envs import get_env_spec
from lewm_mpc.envs.pusht import PushTEnv
from lewm_mpc.envs.pusht_expert import PushTExpert
from lewm_mpc.envs.pusht_geometry import ARENA_CENTER, transform_state, wrap_angle
from lewm_mpc.envs.symmetry import PlanarSymmetry, SceneSymmetries, square_symmetries
from lewm_mpc.models.run_dir import checkpoint_dir, committed_checkpoints
from lewm_mpc.state_targets import StateTargets
from lewm_mpc.training import TrainConfig, train
from lewm_mpc.training.trainer import Trainer
from test_bad_input_table import assert_clear_cli_error, run_cli

ELEMENTS = square_symmetries()
FAST = dict(batch_size=8, num_frames=3, val_every=10, val_batches=2, checkpoint_every=2,
            keep_checkpoints=2, sigreg_projections=32, warmup_steps=2,
            bn_calibration_batches=2)  # fmt: skip


@pytest.fixture(scope="module")
def pusht_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("pusht") / "pusht.h5"
    return collect_dataset("pusht", path, 6, 30, seed=0, progress=False)


def test_the_eight_maps_form_the_square_group():
    matrices = {element.matrix for element in ELEMENTS}
    assert len(matrices) == 8 and ELEMENTS[0].matrix == ((1, 0), (0, 1))
    for a, b in itertools.product(ELEMENTS, repeat=2):  # closed under composition
        product = tuple(map(tuple, (a.array @ b.array).astype(int)))
        assert product in matrices
    for element in ELEMENTS:
        assert np.array_equal(element.inverse().array @ element.array, np.eye(2))
    assert [element.is_rotation for element in ELEMENTS] == [True] * 4 + [False] * 4
    assert [element.name for element in ELEMENTS[:4]] == [
        "rotate 0", "rotate 90", "rotate 180", "rotate 270"
    ]  # fmt: skip


@pytest.mark.parametrize("matrix", [((1, 0), (0, 0)), ((1, 1), (0, 1)), ((2, 0), (0, 1)),
                                    ((1, 0, 0), (0, 1, 0))])  # fmt: skip
def test_a_matrix_that_is_not_a_square_symmetry_is_refused(matrix):
    with pytest.raises(ValueError, match="orthogonal 2 x 2 matrix"):
        PlanarSymmetry(matrix)


@pytest.mark.parametrize("element", ELEMENTS, ids=lambda e: e.name)
def test_frames_move_a_pixel_where_the_points_map_it(element):
    size = 7
    frames = np.zeros((2, size, size, 3), np.uint8)  # (T, H, W, C)
    frames[:, 1, 5] = (10, 20, 30)  # row y = 1, column x = 5
    moved = element.images(frames)
    x, y = element.points(np.array([5.0, 1.0]), (size - 1) / 2)
    assert moved.shape == frames.shape and moved.flags["C_CONTIGUOUS"]
    assert np.argwhere(moved[0].any(-1)).tolist() == [[round(y), round(x)]]
    assert moved[1, round(y), round(x)].tolist() == [10, 20, 30]


def test_actions_map_every_xy_pair_of_a_block():
    element = ELEMENTS[1]  # rotate 90: x -> -y, y -> x
    block = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)  # two xy actions
    assert element.actions(block).tolist() == [[-2.0, 1.0, -4.0, 3.0]]
    assert element.actions(block).dtype == np.float32
    with pytest.raises(ValueError, match="whole number of xy pairs"):
        element.actions(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="squares"):
        element.images(np.zeros((4, 5, 3)))


def test_scene_symmetries_start_with_the_identity():
    with pytest.raises(ValueError, match="start with the identity"):
        SceneSymmetries(ELEMENTS[1:], transform_state)


def _contact_trajectory(steps: int = 40) -> tuple[np.ndarray, np.ndarray]:
    env = PushTEnv(obs_mode="state")
    env.reset(seed=3)
    env.set_state(np.array([170.0, 265.0, 256.0, 250.0, 0.3, 0, 0, 0, 0, 0]))
    expert = PushTExpert.from_env(env)
    expert.reset(np.random.default_rng(3))
    states, actions = [env.get_state()], []
    for _ in range(steps):
        actions.append(np.asarray(expert.act(states[-1]), np.float32))
        env.step(actions[-1])
        states.append(env.get_state())
    env.close()
    return np.array(states), np.array(actions)


@pytest.mark.parametrize("element", ELEMENTS, ids=lambda e: e.name)
def test_pusht_physics_is_unchanged_by_every_symmetry(element):
    states, actions = _contact_trajectory()
    assert np.abs(np.diff(states[:, 4])).sum() > 0.05  # the block turns: contacts happen
    env = PushTEnv(obs_mode="state")
    env.reset(seed=0)
    for state, action, following in zip(states[:-1], actions, states[1:], strict=True):
        env.set_state(transform_state(state, element))
        env.step(element.actions(action))
        expected, reached = transform_state(following, element), env.get_state()
        assert np.allclose(reached[[0, 1, 2, 3, 5, 6, 7, 8, 9]],
                           expected[[0, 1, 2, 3, 5, 6, 7, 8, 9]], atol=1e-6)  # fmt: skip
        assert abs(wrap_angle(reached[4] - expected[4])) < 1e-9
    env.close()


@pytest.mark.parametrize("element", ELEMENTS, ids=lambda e: e.name)
def test_pusht_frames_of_a_transformed_state_are_the_transformed_frames(element):
    env = PushTEnv(obs_mode="pixels")
    env.reset(seed=0)
    state = np.array([120.0, 300.0, 210.0, 180.0, 0.7, 0, 0, 0, 0, 0])
    drawn = env.render_state(transform_state(state, element)).astype(int)
    moved = element.images(env.render_state(state)).astype(int)
    # the arena's centre is half a 512-px pixel off the image's: at 64 px, 1/16 px of blur
    assert np.abs(drawn - moved).mean() < 1.0
    other = env.render_state(transform_state(state, ELEMENTS[(ELEMENTS.index(element) + 1) % 8]))
    assert np.abs(other.astype(int) - moved).mean() > 5 * np.abs(drawn - moved).mean()
    env.close()


def test_transform_state_keeps_the_centre_and_checks_the_shape():
    centre = np.array([ARENA_CENTER, ARENA_CENTER, ARENA_CENTER, ARENA_CENTER, 0.0, 0, 0, 0, 0, 1])
    mirrored = transform_state(centre, ELEMENTS[4])  # mirror x
    assert np.allclose(mirrored[:4], ARENA_CENTER) and mirrored[9] == -1.0
    with pytest.raises(ValueError, match="must end in 10"):
        transform_state(np.zeros(5), ELEMENTS[1])


def test_an_augmenting_sampler_draws_recorded_windows_under_random_symmetries(pusht_dataset):
    dataset = EpisodeDataset.load(pusht_dataset)
    symmetries = get_env_spec("pusht").definition.symmetries
    ids = dataset.episode_ids
    sampler = WindowSampler(dataset, ids, 3, 2, 32, seed=5, symmetries=symmetries)
    twin = WindowSampler(dataset, ids, 3, 2, 32, seed=5, symmetries=symmetries)
    seen = set()
    for _ in range(3):
        batch = sampler.sample()
        again = twin.sample()
        assert np.array_equal(batch.obs, again.obs) and np.array_equal(batch.actions, again.actions)
        recorded = sampler.gather(batch.rows)
        for index in range(len(batch.rows)):
            matches = [element for element in symmetries.elements
                       if np.array_equal(element.images(recorded.obs[index]), batch.obs[index])
                       and np.allclose(element.actions(recorded.actions[index]),
                                       batch.actions[index])]  # fmt: skip
            assert matches, index
            seen.add(matches[0].matrix)
    assert len(seen) >= 6  # 96 windows: every symmetry is drawn (not only the identity)
    states = WindowSampler(dataset, ids, 3, 2, 8, "state", seed=1, symmetries=symmetries)
    batch = states.sample()
    assert batch.obs.shape == (8, 3, 10) and batch.obs.dtype == np.float32


def test_augmented_action_statistics_are_those_of_the_symmetric_data(pusht_dataset):
    dataset = EpisodeDataset.load(pusht_dataset)
    symmetries = get_env_spec("pusht").definition.symmetries
    mean, std = action_stats(dataset, symmetries=symmetries)
    plain_mean, plain_std = action_stats(dataset)
    assert np.allclose(mean, 0.0, atol=1e-6) and std[0] == pytest.approx(std[1])
    assert std[0] == pytest.approx(np.sqrt(np.mean(plain_std**2 + plain_mean**2)), rel=1e-5)


def test_state_targets_of_transformed_windows_are_the_transformed_states_features(
    pusht_dataset, tmp_path
):
    dataset = EpisodeDataset.load(pusht_dataset)
    spec = get_env_spec("pusht")
    symmetries = spec.definition.symmetries
    targets = StateTargets.from_dataset(dataset, dataset.episode_ids, symmetries)
    centre = ARENA_CENTER / 20.0  # positions in units of the 20-px success distance
    assert np.allclose(targets.mean[:4], centre) and np.allclose(targets.mean[4:], 0, atol=1e-9)
    sampler = WindowSampler(dataset, dataset.episode_ids, 3, 2, 16, seed=2, symmetries=symmetries)
    batch = sampler.sample()
    got = targets.for_windows(dataset, batch.rows, 3, 2, batch.symmetry)  # (B, T, F)
    frames = batch.rows[:, None] + 2 * np.arange(3)  # (B, T)
    for index in range(16):
        element = symmetries.elements[batch.symmetry[index]]
        states = transform_state(dataset.state[frames[index]], element)
        expected = (spec.goal_features(states) - targets.mean) / targets.std
        assert np.allclose(got[index], expected, atol=1e-5)
    with pytest.raises(ValueError, match="made with symmetries"):
        StateTargets.from_dataset(dataset, dataset.episode_ids).for_windows(
            dataset, batch.rows, 3, 2, batch.symmetry)  # fmt: skip
    config = TrainConfig(steps=2, augment=True, state_loss_weight=1.0, **FAST)
    summary = train(pusht_dataset, tmp_path / "run", tiny_config(), config, progress=False)
    assert summary.steps == 2 and np.isfinite(summary.train_loss)


def test_augmented_training_resumes_bit_identically(pusht_dataset, tmp_path, monkeypatch):
    config = TrainConfig(steps=4, augment=True, **FAST)
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    train(pusht_dataset, reference, tiny_config(), config, progress=False)
    shutil.copytree(reference, resumed)
    newest = checkpoint_dir(resumed)
    assert [step for step, _ in committed_checkpoints(resumed)] == [2, 4]
    shutil.rmtree(newest)  # as if killed before the last checkpoint: resume from step 2
    steps_taken, real_step = [], Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step",
                        lambda self: steps_taken.append(self.step) or real_step(self))  # fmt: skip
    train(pusht_dataset, resumed, tiny_config(), config, progress=False)
    assert steps_taken == [2, 3]  # resumed at step 2, not retrained from the start
    monkeypatch.undo()
    expected = load_file(str(checkpoint_dir(reference) / "model.safetensors"))
    got = load_file(str(checkpoint_dir(resumed) / "model.safetensors"))
    assert all(torch.equal(got[name], expected[name]) for name in expected)
    training = WorldModel.load(resumed).run_meta.training
    assert training.augment is True and training.state_loss_weight == 0.0
    plain = tmp_path / "plain"
    train(pusht_dataset, plain, tiny_config(), TrainConfig(steps=4, **FAST), progress=False)
    unaugmented = load_file(str(checkpoint_dir(plain) / "model.safetensors"))
    assert not all(torch.equal(unaugmented[name], expected[name]) for name in expected)


def test_augmenting_an_env_without_symmetries_is_a_clear_error(tiny_dataset, tmp_path, capsys):
    code, output = run_cli(("train", "--data", str(tiny_dataset), "--out", str(tmp_path / "cli"),
                            "--steps", "2", "--augment"), capsys)  # fmt: skip
    assert_clear_cli_error(code, output, "tworoom declares none")
    assert not (tmp_path / "cli").exists()
    with pytest.raises(ValueError, match="tworoom declares none"):
        train(tiny_dataset, tmp_path / "run", tiny_config(), TrainConfig(steps=2, augment=True,
              **FAST), progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="augment must be True or False"):
        TrainConfig(augment=1)
