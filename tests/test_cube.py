"""Cube specifics: OGBench's scene and oracle, goal sampling, the cube-distance success radius and
state validity (the generic env contract is in test_env_contract.py).

Compiling the scene takes ~2 s per env, so the tests share one state-observation env.
"""

from __future__ import annotations

import importlib.util
import sys

import gymnasium as gym
import numpy as np
import pytest

from lewm_mpc.envs import get_env_spec
from lewm_mpc.envs.cube import (
    CUBE_POS,
    CUBE_QUAT,
    SUCCESS_RADIUS,
    CubeConfig,
    CubeEnv,
    cube_position,
)
from lewm_mpc.envs.cube_expert import CubeExpert


@pytest.fixture(scope="module")
def state_env():
    env = CubeEnv(obs_mode="state")
    yield env
    env.close()


def _with_cube_at(state: np.ndarray, position: np.ndarray) -> np.ndarray:
    moved = state.copy()
    moved[CUBE_POS] = position
    return moved


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="image_size"):
        CubeConfig(image_size=8)
    with pytest.raises(ValueError, match="success_radius"):
        CubeConfig(success_radius=-0.1)
    with pytest.raises(ValueError, match="transparent_arm"):
        CubeConfig(transparent_arm=1)
    for cell in (-0.001, 0.06, float("nan"), True, "0.005"):
        with pytest.raises(ValueError, match="mesh_cell"):
            CubeConfig(mesh_cell=cell)


def test_coarse_meshes_keep_the_simulation_and_nearly_the_frames() -> None:
    from lewm_mpc.envs.mujoco_rendering import simplify_meshes

    detailed, coarse = CubeEnv(), CubeEnv(CubeConfig(mesh_cell=0.005))
    try:
        first, _ = detailed.reset(seed=3)
        second, _ = coarse.reset(seed=3)
        rng = np.random.default_rng(0)
        differences = [np.abs(first.astype(int) - second.astype(int)).mean()]
        for _ in range(25):  # stepped with pixel observations: every frame is drawn
            action = rng.uniform(-1, 1, 5).astype(np.float32)
            first, *_ = detailed.step(action)
            second, *_ = coarse.step(action)
            assert np.array_equal(detailed.get_state(), coarse.get_state())  # bit for bit
            differences.append(np.abs(first.astype(int) - second.astype(int)).mean())
        assert 0 < np.mean(differences) < 2.0  # of 255 intensity levels, per pixel
        model = coarse.sim.model
        triangles = int(model.mesh_facenum.sum())
        assert triangles < 0.2 * int(detailed.sim.model.mesh_facenum.sum())
        assert simplify_meshes(model, 0.005) == (triangles, triangles)  # idempotent
        with pytest.raises(ValueError, match="cell"):
            simplify_meshes(model, 0.0)
    finally:
        detailed.close()
        coarse.close()


def test_a_zero_cube_quaternion_is_rejected(state_env: CubeEnv) -> None:
    state_env.reset(seed=0)
    before, goal = state_env.get_state(), state_env.goal_state
    bad = before.copy()
    bad[CUBE_QUAT] = 0.0
    for call in (state_env.set_state, state_env.set_goal,
                 lambda s: state_env.reset(options={"state": s})):  # fmt: skip
        with pytest.raises(ValueError, match="quaternion"):
            call(bad)
    np.testing.assert_array_equal(state_env.get_state(), before)
    np.testing.assert_array_equal(state_env.goal_state, goal)


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
        np.testing.assert_array_equal(info["cube_pos"], cube_position(info["state"]))
    assert np.median(distances) > 0.1


def test_is_success_threshold(state_env: CubeEnv) -> None:
    _, info = state_env.reset(seed=5)
    goal = info["goal"]
    direction = np.array([0.6, -0.8, 0.0])
    inside = _with_cube_at(goal, goal[CUBE_POS] + 0.99 * SUCCESS_RADIUS * direction)
    outside = _with_cube_at(goal, goal[CUBE_POS] + 1.01 * SUCCESS_RADIUS * direction)
    assert state_env.is_success(inside, goal) and not state_env.is_success(outside, goal)
    assert get_env_spec("cube").is_success(inside, goal)
    np.testing.assert_array_equal(
        CubeEnv.success_mask(np.stack([inside, outside]), goal, CubeConfig()), [True, False]
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
        state_env.is_success(goal[:10], goal)


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
        CubeExpert(gym.make(get_env_spec("cube").gym_id, obs_mode="state"))


def test_lewm_expert_scales_its_noise_per_entry_and_takes_no_random_actions(
    state_env: CubeEnv,
) -> None:
    lewm = CubeExpert.lewm(state_env)
    assert (lewm.noise_std, lewm.random_action_prob) == (0.1, 0.0)
    np.testing.assert_array_equal(lewm.noise_scale, [1, 1, 1, 3, 10])
    state_env.reset(seed=2)
    noises = []
    for scale in ((1, 1, 1, 1, 1), (1, 1, 1, 3, 10)):  # the same draws, scaled or not
        expert = CubeExpert(state_env, noise_std=0.01, random_action_prob=0.0,
                            noise_scale=scale)  # fmt: skip
        clean = CubeExpert(state_env, noise_std=0.0, random_action_prob=0.0)
        expert.reset(np.random.default_rng(5))
        clean.reset(np.random.default_rng(5))
        state = state_env.get_state()
        noises.append(expert.act(state).astype(np.float64) - clean.act(state))
    assert np.count_nonzero(noises[0]) >= 4  # the yaw sits at its bound: clipped
    np.testing.assert_allclose(noises[1], noises[0] * [1, 1, 1, 3, 10], rtol=1e-4, atol=1e-7)
    assert "ogbench-lewm" in get_env_spec("cube").expert_names
    with pytest.raises(ValueError, match="noise_scale"):
        CubeExpert(state_env, noise_scale=(1, 1, 1))
    with pytest.raises(ValueError, match="noise_scale"):
        CubeExpert(state_env, noise_scale=(1, 1, 1, -3, 10))


def test_missing_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name.split(".")[0] == "ogbench"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "ogbench", None)
    path = importlib.util.find_spec("lewm_mpc.envs.cube").origin
    module_spec = importlib.util.spec_from_file_location("_cube_without_ogbench", path)
    with pytest.raises(ImportError, match=r"lewm-mpc\[cube\]"):
        module_spec.loader.exec_module(importlib.util.module_from_spec(module_spec))
