"""Tests for the Reacher environment (dm_control physics) and its data policy."""

from __future__ import annotations

import importlib
import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from lewm_mpc.envs.reacher import (
    SPEC,
    SUCCESS_TOLERANCE,
    ReacherConfig,
    ReacherEnv,
    fingertip_position,
    is_success,
    joint_errors,
    make_env,
    make_expert,
)
from lewm_mpc.envs.reacher_expert import ReacherRandomPolicy

OBS_MODES = ["pixels", "state"]
WRIST_HIGH = np.deg2rad(160.0)


@pytest.fixture(scope="module")
def pixel_env():
    env = ReacherEnv(obs_mode="pixels", render_mode="rgb_array")
    yield env
    env.close()


@pytest.fixture(scope="module")
def state_env():
    env = ReacherEnv(obs_mode="state")
    yield env
    env.close()


def _actions(seed: int, steps: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=(steps, 2)).astype(np.float32)


def _rollout(env: gym.Env, seed: int, actions: np.ndarray) -> tuple[list, list]:
    obs, info = env.reset(seed=seed)
    observations, infos = [obs], [info]
    for action in actions:
        obs, _, _, _, info = env.step(action)
        observations.append(obs)
        infos.append(info)
    return observations, infos


@pytest.mark.filterwarnings("ignore:.*Box observation space m:UserWarning")  # velocities: inf
@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_check_env(obs_mode: str) -> None:
    env = gym.make("lewm_mpc/Reacher-v0", obs_mode=obs_mode, render_mode="rgb_array")
    check_env(env.unwrapped)  # unwrapped keeps the spec, so render modes are checked too
    env.close()


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_spaces_and_step_contract(obs_mode: str, pixel_env, state_env) -> None:
    env = pixel_env if obs_mode == "pixels" else state_env
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert not terminated and not truncated and reward in (0.0, 1.0)
    assert set(info) >= {"state", "goal", "success", "distance", "joint_errors", "fingertip"}
    assert info["state"].dtype == np.float64 and info["state"].shape == (4,)
    assert isinstance(info["success"], bool) and isinstance(info["distance"], float)
    assert info["distance"] == pytest.approx(info["joint_errors"].max())


def test_state_observation_features(state_env) -> None:
    obs, info = state_env.reset(seed=0, options={"state": [0.3, -1.2, 0.5, -0.7]})
    q0, q1, v0, v1 = info["state"]
    expected = [np.cos(q0), np.sin(q0), np.cos(q1), np.sin(q1), v0, v1]
    np.testing.assert_allclose(obs, np.array(expected, np.float32))


def test_missing_extra_is_named(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "dm_control.suite", None)  # as if dm-control were missing
    monkeypatch.delitem(sys.modules, "lewm_mpc.envs.reacher")
    with pytest.raises(ImportError, match=r"pip install 'lewm-mpc\[reacher\]'"):
        importlib.import_module("lewm_mpc.envs.reacher")
    with pytest.raises(ImportError, match=r"lewm-mpc\[reacher\]"):
        SPEC.make(obs_mode="state")


def test_suite_physics_and_timing() -> None:
    env = ReacherEnv(ReacherConfig(frame_skip=3), obs_mode="state")
    assert env.dt == pytest.approx(0.06)  # suite timestep 0.02 s x frame_skip
    np.testing.assert_allclose(env.model.actuator_ctrlrange, [[-1, 1], [-1, 1]])
    np.testing.assert_allclose(env.wrist_range, [-WRIST_HIGH, WRIST_HIGH])
    assert env.model.jnt_limited[0] == 0  # the shoulder turns freely
    env.close()


def test_registered_env_has_time_limit() -> None:
    env = make_env(obs_mode="state")
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(np.zeros(2, np.float32))
        assert not terminated
        steps += 1
    assert steps == SPEC.max_episode_steps == 200
    assert SPEC.default_episode_steps <= SPEC.max_episode_steps
    env.close()


def test_invalid_arguments_raise(state_env) -> None:
    with pytest.raises(ValueError, match="obs_mode"):
        ReacherEnv(obs_mode="rgb")
    with pytest.raises(ValueError, match="render_mode"):
        ReacherEnv(render_mode="human")
    with pytest.raises(ValueError, match="frame_skip"):
        ReacherConfig(frame_skip=0)
    with pytest.raises(ValueError, match="image_size"):
        ReacherConfig(image_size=8)
    with pytest.raises(ValueError, match="success_tolerance"):
        ReacherConfig(success_tolerance=float("nan"))
    with pytest.raises(ValueError, match="env_config"):
        make_env(env_config={"speed": 2.0})
    with pytest.raises(ValueError, match="reset options"):
        state_env.reset(options={"start": np.zeros(4)})
    with pytest.raises(RuntimeError):
        ReacherEnv(obs_mode="state").step(np.zeros(2))


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_seeded_determinism(obs_mode: str) -> None:
    actions = _actions(0, 30)
    envs = [ReacherEnv(obs_mode=obs_mode) for _ in range(2)]
    obs_a, infos_a = _rollout(envs[0], 7, actions)
    obs_b, infos_b = _rollout(envs[1], 7, actions)
    for oa, ob, ia, ib in zip(obs_a, obs_b, infos_a, infos_b, strict=True):
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ia["state"], ib["state"])
        np.testing.assert_array_equal(ia["goal"], ib["goal"])
        assert ia["success"] == ib["success"] and ia["distance"] == ib["distance"]
    obs_c, infos_c = _rollout(envs[1], 8, actions)
    assert not np.array_equal(infos_a[0]["state"], infos_c[0]["state"])
    assert not np.array_equal(infos_a[0]["goal"], infos_c[0]["goal"])
    assert not np.array_equal(obs_a[-1], obs_c[-1])
    for env in envs:
        env.close()


def test_default_reset_distribution(state_env) -> None:
    starts = np.stack([state_env.reset(seed=s)[1]["state"] for s in range(200)])
    assert np.all(starts[:, 2:] == 0.0)  # at rest
    assert np.all((-np.pi <= starts[:, 0]) & (starts[:, 0] < np.pi))
    assert np.all(np.abs(starts[:, 1]) <= WRIST_HIGH)
    assert starts[:, 0].min() < -2.5 and starts[:, 0].max() > 2.5
    assert starts[:, 1].min() < -2.0 and starts[:, 1].max() > 2.0


def test_reset_options_set_start_and_goal(state_env) -> None:
    start, goal = np.array([0.2, -0.3, 1.0, -2.0]), np.array([-2.0, 1.5, 0.0, 0.0])
    _, info = state_env.reset(seed=0, options={"state": start, "goal": goal})
    np.testing.assert_array_equal(info["state"], start)
    np.testing.assert_array_equal(info["goal"], goal)
    np.testing.assert_array_equal(state_env.goal_state, goal)
    _, info = state_env.reset(options={"goal": goal})  # random start, given goal
    np.testing.assert_array_equal(info["goal"], goal)
    assert not np.array_equal(info["state"], start)
    np.testing.assert_array_equal(ReacherEnv.state_from_angles([0.1, 0.2]), [0.1, 0.2, 0, 0])


@pytest.mark.parametrize("start", [None, [0.5, 2.7, 0.0, 4.0]])  # 2nd: driven into the wrist stop
def test_set_state_round_trip_reproduces_trajectory(start, state_env) -> None:
    actions = _actions(1, 40)
    actions[:, 1] = np.where(start is None, actions[:, 1], 1.0)
    options = None if start is None else {"state": np.array(start)}
    state_env.reset(seed=3, options=options)
    states = [state_env.get_state()]
    for action in actions:
        state_env.step(action)
        states.append(state_env.get_state())
    replay = ReacherEnv(obs_mode="pixels")
    replay.reset(seed=99)
    for _ in range(5):  # a different history: nothing of it may leak into the replay
        replay.step(np.ones(2, np.float32))
    replay.set_state(states[15])
    np.testing.assert_array_equal(replay.get_state(), states[15])
    for action, expected in zip(actions[15:], states[16:], strict=True):
        obs, *_ = replay.step(action)
        np.testing.assert_array_equal(replay.get_state(), expected)
    np.testing.assert_array_equal(obs, replay.render_state(states[-1]))
    if start is not None:  # the wrist limit was active (soft constraint, slightly exceeded)
        assert np.max(np.abs(np.stack(states)[:, 1])) > WRIST_HIGH - 1e-3
    replay.close()


def test_shoulder_angle_stays_wrapped(state_env) -> None:
    state_env.reset(seed=0, options={"state": [3.0, 0.0, 0.0, 0.0]})
    shoulder = []
    for _ in range(150):
        _, _, _, _, info = state_env.step(np.array([1.0, 0.0], np.float32))
        shoulder.append(info["state"][0])
    shoulder = np.array(shoulder)
    assert np.all((-np.pi <= shoulder) & (shoulder < np.pi))
    assert np.sum(np.diff(shoulder) < -np.pi) >= 2  # turned around more than twice
    state_env.set_state([7.0, 0.0, 0.0, 0.0])  # out-of-range shoulder angles are wrapped
    assert state_env.get_state()[0] == pytest.approx(7.0 - 2 * np.pi)


@pytest.mark.parametrize(
    "state",
    [
        [0.0, 3.2, 0.0, 0.0],  # wrist far past its stop
        [0.0, -3.2, 0.0, 0.0],
        [np.nan, 0.0, 0.0, 0.0],
        [0.0, 0.0, np.inf, 0.0],
        [0.0, 0.0],  # joint angles only: a state has velocities too
        [[0.0, 0.0, 0.0, 0.0]],
    ],
)
def test_set_state_rejects_bad_states(state: list, state_env) -> None:
    state_env.reset(seed=0)
    before, goal = state_env.get_state(), state_env.goal_state
    with pytest.raises(ValueError):
        state_env.set_state(np.array(state))
    with pytest.raises(ValueError):
        state_env.set_goal(np.array(state))
    with pytest.raises(ValueError):
        state_env.reset(options={"goal": np.array(state)})
    np.testing.assert_array_equal(state_env.get_state(), before)
    np.testing.assert_array_equal(state_env.goal_state, goal)


def test_goal_rendering_matches_set_state(pixel_env) -> None:
    _, info = pixel_env.reset(seed=5)
    goal, start = info["goal"], info["state"]
    goal_image = pixel_env.render_state(goal)
    np.testing.assert_array_equal(pixel_env.get_state(), start)  # rendering did not disturb
    obs, _ = pixel_env.reset(options={"state": goal, "goal": goal})
    np.testing.assert_array_equal(obs, goal_image)
    start_image = pixel_env.render_state(start)
    assert np.mean(np.any(start_image != goal_image, axis=-1)) > 0.005  # the arm moved
    assert goal_image.shape == (64, 64, 3) and goal_image.dtype == np.uint8
    assert pixel_env.render_state(goal, size=32).shape == (32, 32, 3)
    np.testing.assert_array_equal(pixel_env.render(), obs)


def test_pixel_observation_is_render_of_state(pixel_env) -> None:
    obs, _ = pixel_env.reset(seed=3)
    np.testing.assert_array_equal(obs, pixel_env.render_state(pixel_env.get_state()))
    for _ in range(3):
        obs, *_ = pixel_env.step(np.array([0.5, -0.3], np.float32))
    np.testing.assert_array_equal(obs, pixel_env.render_state(pixel_env.get_state()))
    # Velocities are invisible: the frame depends on the joint angles only.
    moving = pixel_env.get_state() + np.array([0.0, 0.0, 3.0, -2.0])
    np.testing.assert_array_equal(pixel_env.render_state(moving), obs)


def test_target_sphere_is_hidden(pixel_env) -> None:
    state = np.array([1.0, 0.5, 0.0, 0.0])
    before = pixel_env.render_state(state)
    target = mujoco.mj_name2id(pixel_env.model, mujoco.mjtObj.mjOBJ_GEOM, "target")
    position = pixel_env.model.geom_pos[target].copy()
    try:
        pixel_env.model.geom_pos[target] = [0.1, -0.1, 0.01]
        np.testing.assert_array_equal(pixel_env.render_state(state), before)
    finally:
        pixel_env.model.geom_pos[target] = position


def test_is_success_thresholds() -> None:
    goal = np.array([0.4, -1.0, 0.0, 0.0])
    inside, outside = 0.99 * SUCCESS_TOLERANCE, 1.01 * SUCCESS_TOLERANCE
    for joint in (0, 1):
        for sign in (1.0, -1.0):
            near, far = goal.copy(), goal.copy()
            near[joint] += sign * inside
            far[joint] += sign * outside
            assert is_success(near, goal) and ReacherEnv.is_success(near, goal)
            assert not is_success(far, goal)
    # Velocities do not matter; the shoulder wraps; the wrist does not.
    assert is_success(goal + np.array([0.0, 0.0, 5.0, -5.0]), goal)
    across = np.array([np.pi - 0.02, 0.0, 0, 0]), np.array([-np.pi + 0.02, 0.0, 0, 0])
    assert is_success(*across)
    np.testing.assert_allclose(joint_errors(*across), [0.04, 0.0], atol=1e-12)
    assert not is_success(np.array([0.0, 2.7, 0, 0]), np.array([0.0, -2.7, 0, 0]))
    assert is_success(np.array([0.0, 0.0, 0, 0]), np.array([2 * np.pi + 0.01, 0.0, 0, 0]))
    batch = np.stack([goal + np.array([inside, 0, 0, 0]), goal + np.array([0, outside, 0, 0])])
    np.testing.assert_array_equal(ReacherEnv.is_success_batch(batch, goal), [True, False])
    with pytest.raises(ValueError):
        is_success(np.zeros(2), np.zeros(2))
    env = ReacherEnv(ReacherConfig(success_tolerance=0.2), obs_mode="state")
    assert env.is_success(
        goal + np.array([0.15, 0.0, 0, 0]), goal
    )  # instance uses its own tolerance
    _, info = env.reset(seed=0, options={"state": goal + np.array([0.0, 0.15, 0, 0]), "goal": goal})
    assert info["success"]
    env.close()


def test_info_reports_success_and_distance(state_env) -> None:
    goal = np.array([0.4, -1.0, 0.0, 0.0])
    for offset, success in ((0.99 * SUCCESS_TOLERANCE, True), (1.01 * SUCCESS_TOLERANCE, False)):
        _, info = state_env.reset(
            options={"state": goal + np.array([0, offset, 0, 0]), "goal": goal}
        )
        assert info["success"] is success and info["distance"] == pytest.approx(offset)
    _, info = state_env.reset(options={"state": goal, "goal": goal})
    _, reward, terminated, _, info = state_env.step(np.zeros(2, np.float32))
    assert info["success"] and reward == 1.0 and not terminated
    np.testing.assert_allclose(info["fingertip"], fingertip_position(info["state"]))
    np.testing.assert_allclose(fingertip_position(np.zeros(4)), [0.24, 0.0])


def test_fingertip_matches_simulator(state_env) -> None:
    state_env.reset(seed=0, options={"state": [0.7, -1.1, 0.0, 0.0]})
    data = mujoco.MjData(state_env.model)
    data.qpos[:] = [0.7, -1.1]
    mujoco.mj_kinematics(state_env.model, data)
    finger = mujoco.mj_name2id(state_env.model, mujoco.mjtObj.mjOBJ_GEOM, "finger")
    np.testing.assert_allclose(
        fingertip_position(state_env.get_state()), data.geom_xpos[finger, :2]
    )


def test_actions_are_clipped_and_validated(state_env) -> None:
    start = np.array([0.1, 0.2, 0.0, 0.0])
    results = []
    for action in ([5.0, -7.0], [1.0, -1.0]):
        state_env.reset(options={"state": start, "goal": start})
        state_env.step(np.array(action))
        results.append(state_env.get_state())
    np.testing.assert_array_equal(results[0], results[1])
    for bad in ([np.nan, 0.0], [0.0, 0.0, 0.0], [[0.0, 0.0]], [np.inf, 0.0]):
        with pytest.raises(ValueError, match="action"):
            state_env.step(np.array(bad))


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_observations_do_not_share_memory(obs_mode: str, pixel_env, state_env) -> None:
    env = pixel_env if obs_mode == "pixels" else state_env
    obs, info = env.reset(seed=0)
    obs2, _, _, _, info2 = env.step(np.zeros(2, np.float32))
    state, goal = env.get_state(), env.goal_state
    for array in (obs, info["state"], info["goal"], state, goal):
        assert not np.shares_memory(array, obs2)
        assert not np.shares_memory(array, info2["state"])
        assert not np.shares_memory(array, env.get_state())
    before = env.get_state()
    for array in (obs2, info2["state"], info2["goal"], state, goal):
        array[...] = 0
    np.testing.assert_array_equal(env.get_state(), before)
    assert np.any(env.goal_state != 0.0)
    new_state = np.array([0.2, 0.2, 0.0, 0.0])
    env.set_state(new_state)
    new_state[0] = 0.9
    np.testing.assert_array_equal(env.get_state(), [0.2, 0.2, 0.0, 0.0])


def _joint_travel(policy: ReacherRandomPolicy, episodes: int, steps: int) -> np.ndarray:
    """Mean |change| of each joint angle over 25 steps, for ``policy``."""
    env = ReacherEnv(obs_mode="state")
    changes = []
    for episode in range(episodes):
        _, info = env.reset(seed=episode)
        policy.reset(np.random.default_rng(episode))
        states = [info["state"]]
        for _ in range(steps):
            action = policy.act(states[-1])
            assert action.shape == (2,) and action.dtype == np.float32
            assert np.all(np.abs(action) <= 1.0)
            states.append(env.step(action)[4]["state"])
        states = np.stack(states)
        changes.append(joint_errors(states[25:], states[:-25]))
    env.close()
    return np.concatenate(changes).mean(axis=0)


def test_data_policy_moves_the_arm_more_than_iid_noise() -> None:
    travel = _joint_travel(ReacherRandomPolicy(), episodes=6, steps=100)
    iid = _joint_travel(ReacherRandomPolicy(hold_steps=(1, 1), rest_prob=0.0), 6, 100)
    assert np.all(travel > 0.5), travel  # rad per 25 steps (1 s)
    assert np.all(travel > 1.5 * iid), (travel, iid)


def test_data_policy_is_deterministic_and_validated() -> None:
    def run(seed: int) -> np.ndarray:
        policy = ReacherRandomPolicy()
        policy.reset(np.random.default_rng(seed))
        return np.stack([policy.act(np.zeros(4)) for _ in range(50)])

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))
    actions = run(0)
    assert 3 <= len(np.unique(actions[:, 0])) < 50  # held, yet changing
    with pytest.raises(RuntimeError):
        ReacherRandomPolicy().act(np.zeros(4))
    with pytest.raises(ValueError):
        ReacherRandomPolicy(hold_steps=(0, 3))
    with pytest.raises(ValueError):
        ReacherRandomPolicy(rest_prob=1.5)
    assert isinstance(make_expert(make_env(obs_mode="state")), ReacherRandomPolicy)


def test_collect_train_plan_smoke(tmp_path) -> None:
    import lewm_mpc as lm
    from conftest import tiny_config
    from lewm_mpc.collection import collect_dataset
    from lewm_mpc.data import EpisodeDataset
    from lewm_mpc.training import TrainConfig, train

    path = collect_dataset("reacher", tmp_path / "d.h5", 2, 20, progress=False)
    dataset = EpisodeDataset.load(path)
    assert dataset.meta.env_id == "lewm_mpc/Reacher-v0"
    assert dataset.image_shape == (64, 64, 3) and dataset.state.shape[-1] == 4
    config = TrainConfig(
        steps=2, batch_size=4, num_frames=2, val_fraction=0.5, val_every=2, val_batches=1,
        checkpoint_every=2, sigreg_projections=16,
    )  # fmt: skip
    train(path, tmp_path / "run", tiny_config(), config, progress=False)
    model = lm.WorldModel.load(tmp_path / "run")
    env = make_env(obs_mode="pixels")
    obs, info = env.reset(seed=0)
    goal = env.unwrapped.render_state(info["goal"])
    result = lm.CEM(model, num_samples=8, iterations=1, topk=2).plan(obs, goal)
    assert np.all(np.abs(result.actions) <= 1.0)
    env.step(result.actions[0])
    env.close()
