"""Reacher specifics: dm_control physics and timing, joint wrapping and limits, the hidden target,
joint-space success and the random data policy (the generic env contract is in
test_env_contract.py)."""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np
import pytest

from lewm_mpc.envs import get_env_spec
from lewm_mpc.envs.reacher import (
    SUCCESS_TOLERANCE,
    ReacherConfig,
    ReacherEnv,
    fingertip_position,
    joint_errors,
)
from lewm_mpc.envs.reacher_expert import ReacherRandomPolicy

WRIST_HIGH = np.deg2rad(160.0)
CONFIG = ReacherConfig()


@pytest.fixture(scope="module")
def pixel_env():
    env = ReacherEnv(obs_mode="pixels", render_mode="rgb_array")
    env.reset(seed=0)
    yield env
    env.close()


@pytest.fixture(scope="module")
def state_env():
    env = ReacherEnv(obs_mode="state")
    yield env
    env.close()


def _actions(seed: int, steps: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=(steps, 2)).astype(np.float32)


def test_state_observation_features(state_env) -> None:
    obs, info = state_env.reset(seed=0, options={"state": [0.3, -1.2, 0.5, -0.7]})
    q0, q1, v0, v1 = info["state"]
    expected = [np.cos(q0), np.sin(q0), np.cos(q1), np.sin(q1), v0, v1]
    np.testing.assert_allclose(obs, np.array(expected, np.float32))
    np.testing.assert_array_equal(ReacherEnv.state_from_angles([0.1, 0.2]), [0.1, 0.2, 0, 0])


def test_missing_extra_is_named(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "dm_control.suite", None)  # as if dm-control were missing
    monkeypatch.delitem(sys.modules, "lewm_mpc.envs.reacher")
    with pytest.raises(ImportError, match=r"pip install 'lewm-mpc\[reacher\]'"):
        importlib.import_module("lewm_mpc.envs.reacher")
    fresh = dataclasses.replace(get_env_spec("reacher"))  # a spec that has not imported it yet
    with pytest.raises(ImportError, match=r"lewm-mpc\[reacher\]"):
        fresh.make(obs_mode="state")


def test_suite_physics_and_timing() -> None:
    env = ReacherEnv(ReacherConfig(frame_skip=3), obs_mode="state")
    assert env.dt == pytest.approx(0.06)  # suite timestep 0.02 s x frame_skip
    np.testing.assert_allclose(env.model.actuator_ctrlrange, [[-1, 1], [-1, 1]])
    np.testing.assert_allclose(env.wrist_range, [-WRIST_HIGH, WRIST_HIGH])
    assert env.model.jnt_limited[0] == 0  # the shoulder turns freely
    env.close()


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="frame_skip"):
        ReacherConfig(frame_skip=0)
    with pytest.raises(ValueError, match="image_size"):
        ReacherConfig(image_size=8)
    with pytest.raises(ValueError, match="success_tolerance"):
        ReacherConfig(success_tolerance=float("nan"))


def test_default_reset_distribution(state_env) -> None:
    starts = np.stack([state_env.reset(seed=s)[1]["state"] for s in range(200)])
    assert np.all(starts[:, 2:] == 0.0)  # at rest
    assert np.all((-np.pi <= starts[:, 0]) & (starts[:, 0] < np.pi))
    assert np.all(np.abs(starts[:, 1]) <= WRIST_HIGH)
    assert starts[:, 0].min() < -2.5 and starts[:, 0].max() > 2.5
    assert starts[:, 1].min() < -2.0 and starts[:, 1].max() > 2.0


def test_set_state_reproduces_a_trajectory_through_the_wrist_stop(state_env) -> None:
    actions = _actions(1, 40)
    actions[:, 1] = 1.0  # drive the wrist into its stop
    state_env.reset(seed=3, options={"state": np.array([0.5, 2.7, 0.0, 4.0])})
    states = [state_env.get_state()]
    for action in actions:
        state_env.step(action)
        states.append(state_env.get_state())
    replay = ReacherEnv(obs_mode="pixels")
    replay.reset(seed=99)
    for _ in range(5):  # a different history: nothing of it may leak into the replay
        replay.step(np.ones(2, np.float32))
    replay.set_state(states[15])
    for action, expected in zip(actions[15:], states[16:], strict=True):
        replay.step(action)
        np.testing.assert_array_equal(replay.get_state(), expected)
    # The wrist limit was active (a soft constraint, slightly exceeded).
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


@pytest.mark.parametrize("wrist", [3.2, -3.2])  # far past the +-160 degree stop
def test_set_state_rejects_a_wrist_beyond_its_range(wrist: float, state_env) -> None:
    state_env.reset(seed=0)
    before, goal = state_env.get_state(), state_env.goal_state
    bad = np.array([0.0, wrist, 0.0, 0.0])
    for call in (state_env.set_state, state_env.set_goal,
                 lambda s: state_env.reset(options={"goal": s})):  # fmt: skip
        with pytest.raises(ValueError, match="wrist"):
            call(bad)
    np.testing.assert_array_equal(state_env.get_state(), before)
    np.testing.assert_array_equal(state_env.goal_state, goal)


def test_frames_ignore_velocities(pixel_env) -> None:
    state = np.array([0.4, -0.8, 0.0, 0.0])
    moving = state + np.array([0.0, 0.0, 3.0, -2.0])
    np.testing.assert_array_equal(pixel_env.render_state(moving), pixel_env.render_state(state))


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


def test_is_success_thresholds(state_env) -> None:
    goal = np.array([0.4, -1.0, 0.0, 0.0])
    inside, outside = 0.99 * SUCCESS_TOLERANCE, 1.01 * SUCCESS_TOLERANCE
    for joint in (0, 1):
        for sign in (1.0, -1.0):
            near, far = goal.copy(), goal.copy()
            near[joint] += sign * inside
            far[joint] += sign * outside
            assert state_env.is_success(near, goal)
            assert not state_env.is_success(far, goal)
    # Velocities do not matter; the shoulder wraps; the wrist does not.
    assert state_env.is_success(goal + np.array([0.0, 0.0, 5.0, -5.0]), goal)
    across = np.array([np.pi - 0.02, 0.0, 0, 0]), np.array([-np.pi + 0.02, 0.0, 0, 0])
    assert state_env.is_success(*across)
    np.testing.assert_allclose(joint_errors(*across), [0.04, 0.0], atol=1e-12)
    assert not state_env.is_success(np.array([0.0, 2.7, 0, 0]), np.array([0.0, -2.7, 0, 0]))
    assert state_env.is_success(np.zeros(4), np.array([2 * np.pi + 0.01, 0.0, 0, 0]))
    batch = np.stack([goal + np.array([inside, 0, 0, 0]), goal + np.array([0, outside, 0, 0])])
    np.testing.assert_array_equal(ReacherEnv.success_mask(batch, goal, CONFIG), [True, False])
    with pytest.raises(ValueError):
        joint_errors(np.zeros(2), np.zeros(2))
    env = ReacherEnv(ReacherConfig(success_tolerance=0.2), obs_mode="state")
    near = goal + np.array([0.15, 0.0, 0, 0])
    assert env.is_success(near, goal)  # the instance uses its own tolerance
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
        np.testing.assert_allclose(info["joint_errors"], [0.0, offset], atol=1e-12)
    _, info = state_env.reset(options={"state": goal, "goal": goal})
    _, reward, terminated, _, info = state_env.step(np.zeros(2, np.float32))
    assert info["success"] and reward == 1.0 and not terminated
    assert info["distance"] == pytest.approx(info["joint_errors"].max())
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


def test_actions_are_clipped(state_env) -> None:
    start = np.array([0.1, 0.2, 0.0, 0.0])
    results = []
    for action in ([5.0, -7.0], [1.0, -1.0]):
        state_env.reset(options={"state": start, "goal": start})
        state_env.step(np.array(action))
        results.append(state_env.get_state())
    np.testing.assert_array_equal(results[0], results[1])
    assert not np.array_equal(results[0], start)


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
    spec = get_env_spec("reacher")
    env = spec.make(obs_mode="state")
    assert isinstance(spec.make_expert(env), ReacherRandomPolicy)
    env.close()
