"""Tests for the Cube environment (OGBench cube-single) and its scripted expert.

Compiling the scene takes ~2 s per env and rendering is slow, so most tests share one
state-observation env and one tiny-image pixel env.
"""

from __future__ import annotations

import importlib.util
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from lewm_mpc.envs import ENV_SPECS, get_env_spec
from lewm_mpc.envs.cube import (
    CUBE_POS,
    SPEC,
    STATE_DIM,
    SUCCESS_RADIUS,
    CubeConfig,
    CubeEnv,
    cube_position,
    is_success,
    make_env,
)
from lewm_mpc.envs.cube_expert import CubeExpert

SMALL = CubeConfig(image_size=16)  # rendering is the slow part: tiny frames where possible


@pytest.fixture(scope="module")
def state_env():
    env = CubeEnv(obs_mode="state")
    yield env
    env.close()


@pytest.fixture(scope="module")
def pixel_env():
    env = CubeEnv(SMALL, obs_mode="pixels", render_mode="rgb_array")
    yield env
    env.close()


def _actions(seed: int, count: int, bound: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-bound, bound, (count, 5)).astype(np.float32)


def _rollout(env: CubeEnv, actions: np.ndarray, **reset_kwargs) -> tuple[list, list]:
    obs, info = env.reset(**reset_kwargs)
    observations, infos = [obs], [info]
    for action in actions:
        obs, _, _, _, info = env.step(action)
        observations.append(obs)
        infos.append(info)
    return observations, infos


def _with_cube_at(state: np.ndarray, position: np.ndarray) -> np.ndarray:
    moved = state.copy()
    moved[CUBE_POS] = position
    return moved


@pytest.mark.filterwarnings("ignore:.*Box observation space m:UserWarning")  # unbounded state
@pytest.mark.parametrize("obs_mode", ["pixels", "state"])
def test_check_env(obs_mode: str) -> None:
    env = gym.make(SPEC.gym_id, obs_mode=obs_mode, config=SMALL, render_mode="rgb_array")
    check_env(env.unwrapped)  # unwrapped keeps the spec, so render modes are checked too
    env.close()


def test_spaces_and_step_contract(state_env: CubeEnv, pixel_env: CubeEnv) -> None:
    assert state_env.action_space == gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
    obs, info = state_env.reset(seed=0)
    assert obs.shape == (STATE_DIM,) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs, info["state"].astype(np.float32))
    obs, reward, terminated, truncated, info = state_env.step(np.zeros(5, np.float32))
    assert state_env.observation_space.contains(obs)
    assert not terminated and not truncated and reward in (0.0, 1.0)
    assert set(info) >= {"state", "goal", "success", "distance", "cube_pos", "goal_pos"}
    assert info["state"].dtype == np.float64 and info["state"].shape == (STATE_DIM,)
    assert isinstance(info["success"], bool) and isinstance(info["distance"], float)
    np.testing.assert_array_equal(info["cube_pos"], cube_position(info["state"]))
    obs, _ = pixel_env.reset(seed=0)
    assert obs.shape == (16, 16, 3) and obs.dtype == np.uint8
    assert pixel_env.observation_space.contains(obs)
    np.testing.assert_array_equal(pixel_env.render(), obs)
    assert pixel_env.render_state(pixel_env.get_state(), size=24).shape == (24, 24, 3)


def test_invalid_arguments_raise(state_env: CubeEnv) -> None:
    with pytest.raises(ValueError, match="obs_mode"):
        CubeEnv(obs_mode="rgb")
    with pytest.raises(ValueError, match="render_mode"):
        CubeEnv(render_mode="human")
    with pytest.raises(ValueError, match="image_size"):
        CubeConfig(image_size=8)
    with pytest.raises(ValueError, match="success_radius"):
        CubeConfig(success_radius=-0.1)
    with pytest.raises(ValueError, match="env_config"):
        make_env(env_config={"colour": "red"})
    with pytest.raises(RuntimeError, match="reset"):
        CubeEnv().get_state()
    with pytest.raises(ValueError, match="reset options"):
        state_env.reset(options={"start": np.zeros(STATE_DIM)})
    state_env.reset(seed=0)
    before = state_env.get_state()
    for action in (np.array([np.nan, 0, 0, 0, 0]), np.zeros(4), np.zeros((1, 5))):
        with pytest.raises(ValueError, match="action"):
            state_env.step(action)
    bad_states = [np.zeros(STATE_DIM - 1), np.full(STATE_DIM, np.nan), before[None]]
    bad_states.append(before.copy())
    bad_states[-1][CUBE_POS.stop : CUBE_POS.stop + 4] = 0.0  # zero cube quaternion
    for bad in bad_states:
        with pytest.raises(ValueError):
            state_env.set_state(bad)
        with pytest.raises(ValueError):
            state_env.set_goal(bad)
        with pytest.raises(ValueError):
            state_env.reset(options={"state": bad})
    state_env.reset(seed=0)
    np.testing.assert_array_equal(state_env.get_state(), before)


def test_seeded_determinism(state_env: CubeEnv, pixel_env: CubeEnv) -> None:
    actions = _actions(0, 15)
    _, infos_a = _rollout(state_env, actions, seed=7)
    other = CubeEnv(obs_mode="state")
    _, infos_b = _rollout(other, actions, seed=7)
    other.close()
    for ia, ib in zip(infos_a, infos_b, strict=True):
        for key in ("state", "goal", "cube_pos", "effector_pos"):
            np.testing.assert_array_equal(ia[key], ib[key])
        assert ia["success"] == ib["success"] and ia["distance"] == ib["distance"]
    _, infos_c = _rollout(state_env, actions, seed=8)
    assert not np.array_equal(infos_a[0]["state"], infos_c[0]["state"])
    assert not np.array_equal(infos_a[0]["goal"], infos_c[0]["goal"])
    obs_a, _ = _rollout(pixel_env, actions[:4], seed=7)
    obs_b, _ = _rollout(pixel_env, actions[:4], seed=7)
    for oa, ob in zip(obs_a, obs_b, strict=True):
        np.testing.assert_array_equal(oa, ob)


def test_set_state_round_trip_reproduces_the_trajectory(state_env: CubeEnv) -> None:
    state_env.reset(seed=3)
    for action in _actions(1, 10):
        state_env.step(action)
    saved, goal = state_env.get_state(), state_env.goal_state
    later = _actions(2, 20)
    _, first = _rollout(state_env, later, options={"state": saved, "goal": goal})
    np.testing.assert_array_equal(first[0]["state"], saved)
    state_env.reset(seed=99)  # somewhere else entirely, then restore by set_state
    state_env.set_state(saved)
    state_env.set_goal(goal)
    np.testing.assert_array_equal(state_env.get_state(), saved)
    for action, expected in zip(later, first[1:], strict=True):
        _, _, _, _, info = state_env.step(action)
        np.testing.assert_array_equal(info["state"], expected["state"])
        assert info["distance"] == expected["distance"]


def test_goal_rendering_matches_set_state(pixel_env: CubeEnv) -> None:
    pixel_env.reset(seed=4)
    for action in _actions(3, 3):
        pixel_env.step(action)
    current, frame = pixel_env.get_state(), pixel_env.render()
    goal = pixel_env.goal_state
    goal_image = pixel_env.render_state(goal)
    np.testing.assert_array_equal(pixel_env.get_state(), current)  # episode undisturbed
    np.testing.assert_array_equal(pixel_env.render(), frame)
    assert not np.array_equal(goal_image, frame)
    obs, info = pixel_env.reset(options={"state": goal, "goal": goal})
    np.testing.assert_array_equal(obs, goal_image)
    np.testing.assert_array_equal(info["state"], goal)
    assert info["success"] and info["distance"] == 0.0


def test_random_goals_are_not_already_reached(state_env: CubeEnv) -> None:
    low, high = np.array([0.3, -0.3]), np.array([0.55, 0.3])  # OGBench's table area
    distances = []
    for seed in range(30):
        _, info = state_env.reset(seed=seed)
        distances.append(info["distance"])
        assert not info["success"]
        assert np.all(low - 1e-9 <= info["goal_pos"][:2]) and np.all(info["goal_pos"][:2] <= high)
        np.testing.assert_allclose(info["goal_pos"][2], 0.02)
        np.testing.assert_array_equal(state_env.goal_state[CUBE_POS], info["goal_pos"])
    assert np.median(distances) > 0.1


def test_is_success_threshold(state_env: CubeEnv) -> None:
    _, info = state_env.reset(seed=5)
    goal = info["goal"]
    direction = np.array([0.6, -0.8, 0.0])
    inside = _with_cube_at(goal, goal[CUBE_POS] + 0.99 * SUCCESS_RADIUS * direction)
    outside = _with_cube_at(goal, goal[CUBE_POS] + 1.01 * SUCCESS_RADIUS * direction)
    assert CubeEnv.is_success(inside, goal) and is_success(inside, goal)
    assert not CubeEnv.is_success(outside, goal) and not is_success(outside, goal)
    assert get_env_spec("cube").is_success(inside, goal)
    np.testing.assert_array_equal(
        CubeEnv.is_success_batch(np.stack([inside, outside]), goal), [True, False]
    )
    _, info = state_env.reset(options={"state": inside, "goal": goal})
    assert info["success"]
    np.testing.assert_allclose(info["distance"], 0.99 * SUCCESS_RADIUS)
    _, info = state_env.reset(options={"state": outside, "goal": goal})
    assert not info["success"]
    np.testing.assert_allclose(info["distance"], 1.01 * SUCCESS_RADIUS)
    wide = CubeEnv(CubeConfig(success_radius=0.1), obs_mode="state")
    assert wide.is_success(_with_cube_at(goal, goal[CUBE_POS] + [0.08, 0, 0]), goal)
    with pytest.raises(ValueError, match="shape"):
        CubeEnv.is_success(goal[:10], goal)


def test_actions_are_clipped(state_env: CubeEnv) -> None:
    state_env.reset(seed=6)
    start = state_env.get_state()
    results = []
    for scale in (1.0, 3.0):
        state_env.set_state(start)
        for _ in range(3):
            _, _, _, _, info = state_env.step(scale * np.array([1, -1, 1, -1, 1], np.float32))
        results.append(info["state"])
    np.testing.assert_array_equal(results[0], results[1])
    assert not np.array_equal(results[0], start)


def test_observations_do_not_share_memory(state_env: CubeEnv) -> None:
    obs, info = state_env.reset(seed=0)
    obs2, _, _, _, info2 = state_env.step(np.zeros(5, np.float32))
    state, goal = state_env.get_state(), state_env.goal_state
    for array in (obs, info["state"], info["goal"], state, goal):
        assert not np.shares_memory(array, obs2)
        assert not np.shares_memory(array, info2["state"])
    obs2[...] = 0.0
    info2["state"][...] = 0.0
    state[...] = 0.0
    goal[...] = 0.0
    assert np.any(state_env.get_state() != 0.0) and np.any(state_env.goal_state != 0.0)
    new_state = info["state"].copy()
    state_env.set_state(new_state)
    new_state[CUBE_POS] = 5.0
    assert np.all(state_env.get_state()[CUBE_POS] < 1.0)


def test_expert_picks_and_places_the_cube(state_env: CubeEnv) -> None:
    expert = CubeExpert(state_env, noise_std=0.0, random_action_prob=0.0)
    _, info = state_env.reset(seed=0)
    expert.reset(np.random.default_rng(0))
    start = info["cube_pos"]
    heights, travels = [], []
    for _ in range(150):
        action = expert.act(info["state"])
        assert action.shape == (5,) and action.dtype == np.float32
        assert np.all(np.abs(action) <= 1.0)
        _, _, _, _, info = state_env.step(action)
        heights.append(info["cube_pos"][2])
        travels.append(np.linalg.norm(info["cube_pos"][:2] - start[:2]))
    assert max(heights) > 0.06, "the cube was never lifted"
    assert max(travels) > 0.1, "the cube was never carried"
    # Placed: at some point after being carried it rests on the table again.
    carried = int(np.argmax(np.array(travels) > 0.1))
    assert min(heights[carried:]) < 0.025


def test_expert_is_deterministic_noisy_and_checks_its_input(state_env: CubeEnv) -> None:
    def run(seed: int) -> np.ndarray:
        _, info = state_env.reset(seed=1)
        expert.reset(np.random.default_rng(seed))
        actions = []
        for _ in range(40):
            actions.append(expert.act(info["state"]))
            _, _, _, _, info = state_env.step(actions[-1])
        return np.stack(actions)

    expert = CubeExpert(state_env, noise_std=0.3, random_action_prob=0.1)
    global_state = np.random.get_state()[1].copy()  # noqa: NPY002
    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))
    np.testing.assert_array_equal(np.random.get_state()[1], global_state)  # noqa: NPY002
    with pytest.raises(ValueError, match="current state"):
        expert.act(state_env.goal_state)
    with pytest.raises(RuntimeError, match="reset"):
        CubeExpert(state_env).act(state_env.get_state())
    with pytest.raises(TypeError):
        CubeExpert(gym.make(SPEC.gym_id, obs_mode="state"))


def test_registry_spec_and_time_limit() -> None:
    spec = get_env_spec("cube")
    assert spec is ENV_SPECS["cube"] and get_env_spec("lewm_mpc/Cube-v0") is spec
    assert spec.extra == "cube" and spec.default_episode_steps == 200
    env = spec.make(obs_mode="state")
    _, info = env.reset(seed=0)
    expert = spec.make_expert(env)
    expert.reset(np.random.default_rng(0))
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, info = env.step(expert.act(info["state"]))
        assert not terminated
        steps += 1
    assert steps == 200
    env.close()


def test_missing_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name.split(".")[0] == "ogbench"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "ogbench", None)
    path = importlib.util.find_spec("lewm_mpc.envs.cube").origin
    module_spec = importlib.util.spec_from_file_location("_cube_without_ogbench", path)
    with pytest.raises(ImportError, match=r"lewm-mpc\[cube\]"):
        module_spec.loader.exec_module(importlib.util.module_from_spec(module_spec))


def test_collect_train_plan_smoke(tmp_path) -> None:
    import lewm_mpc as lm
    from conftest import tiny_config
    from lewm_mpc.collection import collect_dataset
    from lewm_mpc.data import EpisodeDataset
    from lewm_mpc.training import TrainConfig, train

    path = collect_dataset("cube", tmp_path / "d.h5", 2, 20, progress=False)
    dataset = EpisodeDataset.load(path)
    assert dataset.image_shape == (64, 64, 3) and dataset.state_dim == STATE_DIM
    assert dataset.meta.env_config == {"image_size": 64, "success_radius": 0.04,
                                       "transparent_arm": True}  # fmt: skip
    config = TrainConfig(
        steps=2,
        batch_size=4,
        num_frames=2,
        val_fraction=0.5,
        val_every=2,
        val_batches=1,
        checkpoint_every=2,
        sigreg_projections=16,
    )
    for obs_key, observations in (("pixels", dataset.pixels), ("state", dataset.state)):
        run = tmp_path / f"run-{obs_key}"
        train(path, run, tiny_config(), config, obs_key=obs_key, progress=False)
        planner = lm.CEM(lm.WorldModel.load(run), num_samples=8, iterations=1, topk=2)
        obs, goal = observations[0], observations[15]
        if obs_key == "state":
            obs, goal = obs.astype(np.float32), goal.astype(np.float32)
        result = planner.plan(obs, goal)
        assert result.actions.shape[1] == 5 and np.abs(result.actions).max() <= 1.0
