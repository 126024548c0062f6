"""PushT specifics: gym-pusht geometry and physics, relative actions, 5-d poses, contact
trajectories, drawing, pose-based success and the scripted pusher (the generic env contract is in
test_env_contract.py)."""

from __future__ import annotations

import importlib
import math
import sys

import numpy as np
import pytest

from lewm_mpc.envs import get_env_spec
from lewm_mpc.envs.pusht import PushTEnv
from lewm_mpc.envs.pusht_expert import PushTExpert
from lewm_mpc.envs.pusht_geometry import (
    AGENT_HIGH,
    AGENT_LOW,
    AGENT_RADIUS,
    STATE_DIM,
    SUCCESS_ANGLE,
    SUCCESS_DISTANCE,
    TEE_BOXES,
    PushTConfig,
    sample_state,
)

CONFIG = PushTConfig()
# Agent just left of the T's bar (angle 0: bar y in [0, 30] below block y), at rest.
CONTACT_STATE = np.array([170.0, 265.0, 256.0, 250.0, 0.0, 0, 0, 0, 0, 0])


def test_config_is_validated() -> None:
    for field, value in (("image_size", 8), ("action_scale", 0.0), ("action_scale", np.nan),
                         ("success_distance", -1.0), ("success_angle", 4.0)):  # fmt: skip
        with pytest.raises(ValueError, match=field):
            PushTConfig(**{field: value})


def test_poses_are_accepted_and_other_sizes_rejected() -> None:
    env = PushTEnv(obs_mode="state")
    _, info = env.reset(seed=0, options={"goal": CONTACT_STATE[:5]})
    np.testing.assert_array_equal(info["goal"], CONTACT_STATE)  # a pose means at rest
    env.set_goal(CONTACT_STATE[:5] + 1.0)
    np.testing.assert_array_equal(env.goal_state, np.r_[CONTACT_STATE[:5] + 1.0, np.zeros(5)])
    before = env.get_state()
    for state in (np.zeros(4), np.zeros(11), np.zeros((2, 5))):
        with pytest.raises(ValueError, match="state"):
            env.set_state(state)
        with pytest.raises(ValueError, match="goal"):
            env.set_goal(state)
    np.testing.assert_array_equal(env.get_state(), before)


def test_set_state_round_trip_reproduces_a_contact_trajectory_exactly() -> None:
    push = np.tile([[1.0, 0.05]], (12, 1)).astype(np.float32)  # into the block and through
    env = PushTEnv(obs_mode="pixels")
    env.reset(seed=0, options={"state": CONTACT_STATE})
    for action in push[:6]:
        env.step(action)
    state = env.get_state()
    assert np.linalg.norm(state[7:10]) > 0  # the block is moving: contacts are active
    continued = [env.step(action) for action in push[6:]]

    other = PushTEnv(obs_mode="pixels")
    other.reset(seed=123, options={"state": state, "goal": env.goal_state})
    replayed = [other.step(action) for action in push[6:]]
    for (obs_a, _, _, _, info_a), (obs_b, _, _, _, info_b) in zip(continued, replayed, strict=True):
        np.testing.assert_array_equal(info_a["state"], info_b["state"])
        np.testing.assert_array_equal(obs_a, obs_b)
        assert info_a["coverage"] == info_b["coverage"]
    # set_state in the middle of an episode of the same env works the same way.
    env.set_state(state)
    for action, (_, _, _, _, info) in zip(push[6:], continued, strict=True):
        np.testing.assert_array_equal(env.step(action)[4]["state"], info["state"])


def test_get_state_is_the_full_simulator_state() -> None:
    env = PushTEnv(obs_mode="state")
    obs, info = env.reset(seed=0, options={"state": CONTACT_STATE[:5]})  # a pose means at rest
    np.testing.assert_array_equal(info["state"], CONTACT_STATE)
    for _ in range(5):
        obs, *_ = env.step(np.array([1.0, 0.0], np.float32))
    state = env.get_state()
    assert state.shape == (STATE_DIM,) and state.dtype == np.float64
    assert state[5] > 0 and state[7] > 0  # agent and block move right
    assert -math.pi <= state[4] < math.pi
    np.testing.assert_array_equal(obs, state.astype(np.float32))
    wrapped = CONTACT_STATE.copy()
    wrapped[4] = 2 * math.pi + 0.5
    env.set_state(wrapped)
    assert env.get_state()[4] == pytest.approx(0.5)


def test_render_shows_agent_and_block_but_not_gym_pushts_fixed_goal() -> None:
    env = PushTEnv()
    env.reset(seed=0)
    frame = env.render_state(CONTACT_STATE, size=512).astype(int)
    green = (frame[..., 1] > frame[..., 0] + 40) & (frame[..., 1] > frame[..., 2] + 40)
    assert not green.any()  # gym-pusht draws its goal T in LightGreen
    blue = (frame[..., 2] > frame[..., 0] + 80) & (frame[..., 2] > frame[..., 1] + 40)  # agent
    rows, cols = np.nonzero(blue)
    assert abs(rows.mean() - CONTACT_STATE[1]) < 2 and abs(cols.mean() - CONTACT_STATE[0]) < 2
    block = (frame.max(-1) < 235) & ~blue
    block[:20], block[-20:], block[:, :20], block[:, -20:] = False, False, False, False  # walls
    rows, cols = np.nonzero(block)
    assert abs(rows.min() - 250) <= 3 and abs(cols.min() - 196) <= 3  # top-left of the bar
    assert abs(rows.max() - 370) <= 3 and abs(cols.max() - 316) <= 3  # stem foot, bar right
    small = env.render_state(CONTACT_STATE)
    shifted = env.render_state(CONTACT_STATE + np.array([0, 0, 2.0, 0, 0, 0, 0, 0, 0, 0]))
    assert not np.array_equal(small, shifted)  # a quarter-pixel move changes the image
    edges = (small.min(-1) > 60) & (small.min(-1) < 230)
    assert edges.any()  # anti-aliased (area-averaged) edges


def test_geometry_constants_match_gym_pusht() -> None:
    env = PushTEnv()
    sim = env._sim
    assert sim.agent.shapes.pop().radius == AGENT_RADIUS
    boxes = []
    for shape in sim.block.shapes:
        vertices = np.array([tuple(v) for v in shape.get_vertices()])
        low, high = vertices.min(0), vertices.max(0)
        boxes.append([*(low + high) / 2, *(high - low) / 2])
    np.testing.assert_allclose(sorted(boxes), sorted(TEE_BOXES.tolist()))
    assert (sim.k_p, sim.k_v, sim.dt, sim.control_hz) == (100, 20, 0.01, 10)


def test_is_success_thresholds() -> None:
    goal = np.array([200.0, 300.0, 250.0, 260.0, math.pi - 0.05, 5, 5, 1, 1, 0.1])
    per_axis = SUCCESS_DISTANCE / 2  # a (d, d, d, d) offset has norm 2 d
    inside = goal.copy()
    inside[:4] += 0.99 * per_axis
    inside[4] = -math.pi + 0.99 * SUCCESS_ANGLE - 0.05  # across the wrap
    inside[5:] = 0.0  # velocities do not matter
    outside_position = inside.copy()
    outside_position[:4] = goal[:4] + 1.01 * per_axis
    only_agent = goal.copy()
    only_agent[0] += 1.01 * SUCCESS_DISTANCE
    outside_angle = inside.copy()
    outside_angle[4] = -math.pi + 1.01 * SUCCESS_ANGLE - 0.05
    env = PushTEnv(obs_mode="state")
    states = np.stack([inside, outside_position, only_agent, outside_angle])
    expected = [True, False, False, False]
    assert [env.is_success(state, goal) for state in states] == expected
    np.testing.assert_array_equal(env.is_success_batch(states, goal), expected)
    np.testing.assert_array_equal(PushTEnv.success_mask(states[:, :5], goal[:5], CONFIG), expected)
    with pytest.raises(ValueError):
        PushTEnv.success_mask(np.zeros(3), goal, CONFIG)
    wide = PushTEnv(PushTConfig(success_distance=50.0))  # the instance uses its own thresholds
    assert wide.is_success(outside_position, goal)
    env.reset(seed=0, options={"state": inside, "goal": goal})
    _, reward, _, _, info = env.step(np.zeros(2))
    assert info["success"] and reward == 1.0
    assert info["distance"] < SUCCESS_DISTANCE and info["angle_error"] < SUCCESS_ANGLE
    _, info = env.reset(options={"state": goal, "goal": goal})
    assert info["coverage"] == pytest.approx(1.0) and info["iou"] == pytest.approx(1.0)


def test_actions_are_relative_clipped_and_keep_the_agent_inside() -> None:
    env = PushTEnv(obs_mode="state")
    start = np.array([100.0, 400.0, 350.0, 150.0, 0.0])
    env.reset(seed=0, options={"state": start})
    a = [env.step(np.array([5.0, -5.0]))[0] for _ in range(3)]
    env.reset(seed=0, options={"state": start})
    b = [env.step(np.array([1.0, -1.0]))[0] for _ in range(3)]
    np.testing.assert_array_equal(a, b)
    assert b[-1][0] > start[0] + 20 and b[-1][1] < start[1] - 20  # moved right and up
    rng = np.random.default_rng(0)
    for _ in range(150):
        state = env.step(np.array([-1.0, 1.0]) + 0.3 * rng.standard_normal(2))[0]
    assert (
        AGENT_LOW - 3 <= state[0] <= AGENT_LOW + 10
        and AGENT_HIGH - 10 <= state[1] <= AGENT_HIGH + 3
    )


def test_agent_pushes_the_block() -> None:
    env = PushTEnv(obs_mode="state")
    env.reset(seed=0, options={"state": CONTACT_STATE})
    for _ in range(10):
        state = env.step(np.array([1.0, 0.0], np.float32))[0]
    assert state[2] > CONTACT_STATE[2] + 30  # pushed right
    assert state[0] < state[2]  # the agent did not pass through the block


def test_sample_state_keeps_the_agent_off_the_block() -> None:
    rng = np.random.default_rng(0)
    states = np.stack([sample_state(rng) for _ in range(200)])
    assert np.all((states[:, :2] >= 50) & (states[:, :2] <= 450))
    assert np.all((states[:, 2:4] >= 100) & (states[:, 2:4] <= 400))
    assert np.all(states[:, 5:] == 0) and np.ptp(states[:, 4]) > 5.0


def _block_travel(policy, episodes: int, steps: int) -> np.ndarray:
    """Block displacement (start to end, px) per episode."""
    env = PushTEnv(obs_mode="state")
    travel = []
    for episode in range(episodes):
        _, info = env.reset(seed=episode)
        policy.reset(np.random.default_rng(100 + episode))
        start = info["state"][2:4]
        for _ in range(steps):
            action = policy.act(info["state"])
            assert action.shape == (2,) and action.dtype == np.float32
            assert np.all(np.abs(action) <= 1.0)
            _, _, _, _, info = env.step(action)
        travel.append(np.linalg.norm(info["state"][2:4] - start))
    return np.array(travel)


class _RandomPolicy:
    def reset(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def act(self, state: np.ndarray) -> np.ndarray:
        return self._rng.uniform(-1, 1, size=2).astype(np.float32)


def test_expert_moves_the_block_and_random_actions_barely_do() -> None:
    expert = _block_travel(PushTExpert(PushTConfig()), episodes=4, steps=100)
    random = _block_travel(_RandomPolicy(), episodes=4, steps=100)
    assert expert.min() > 15.0 and expert.mean() > 3 * random.mean() + 10


def test_expert_is_deterministic_and_validates() -> None:
    def run(seed: int) -> np.ndarray:
        env = PushTEnv(obs_mode="state")
        _, info = env.reset(seed=0)
        expert = PushTExpert(PushTConfig())
        expert.reset(np.random.default_rng(seed))
        actions = []
        for _ in range(40):
            actions.append(expert.act(info["state"]))
            _, _, _, _, info = env.step(actions[-1])
        return np.stack(actions)

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))
    with pytest.raises(RuntimeError):
        PushTExpert(PushTConfig()).act(CONTACT_STATE)
    with pytest.raises(ValueError, match="noise_std"):
        PushTExpert(PushTConfig(), noise_std=-1.0)
    with pytest.raises(ValueError, match="push_length"):
        PushTExpert(PushTConfig(), push_length=(50.0, 10.0))


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "gym_pusht" or m.startswith("gym_pusht.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "gym_pusht", None)  # import gym_pusht -> ImportError
    monkeypatch.delitem(sys.modules, "lewm_mpc.envs.pusht")
    with pytest.raises(ImportError, match=r"lewm-mpc\[pusht\]"):
        importlib.import_module("lewm_mpc.envs.pusht")


def test_expert_never_stalls_when_a_fresh_task_ends_at_once() -> None:
    # Episode 441 of a seed-0 collection drew a task that ended on its first step (the old
    # expert asserted there); the expert now draws again, then falls back to a random action.
    from lewm_mpc.data.collect import collect_episode

    spec = get_env_spec("pusht")
    env = spec.make(obs_mode="pixels")
    assert isinstance(spec.make_expert(env), PushTExpert)
    episode = collect_episode(env, spec.make_expert(env), 200, seed=0, episode=441)
    env.close()
    assert episode.action.shape == (201, 2) and np.all(np.abs(episode.action[:-1]) <= 1.0)
