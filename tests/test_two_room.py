"""Tests for the Two-Room environment, its expert, and the env registry."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from lewm_mpc.envs import (
    ENV_SPECS,
    EnvSpec,
    TwoRoomConfig,
    TwoRoomEnv,
    TwoRoomExpert,
    get_env_spec,
)
from lewm_mpc.envs.two_room import is_free_position, room_of

CONFIG = TwoRoomConfig()
OBS_MODES = ["pixels", "state"]


def _rollout(env: gym.Env, seed: int, actions: np.ndarray) -> tuple[list, list]:
    obs, info = env.reset(seed=seed)
    observations, infos = [obs], [info]
    for action in actions:
        obs, _, _, _, info = env.step(action)
        observations.append(obs)
        infos.append(info)
    return observations, infos


def _assert_inside_free_space(pos: np.ndarray) -> None:
    r = CONFIG.agent_radius
    assert r - 1e-9 <= pos[0] <= 1 - r + 1e-9 and r - 1e-9 <= pos[1] <= 1 - r + 1e-9
    overlaps_wall_x = pos[0] - r < CONFIG.wall_right - 1e-9 and pos[0] + r > CONFIG.wall_left + 1e-9
    if overlaps_wall_x:  # inside the doorway: must be between the door posts
        assert CONFIG.door_low - 1e-9 <= pos[1] - r and pos[1] + r <= CONFIG.door_high + 1e-9


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_check_env(obs_mode: str) -> None:
    env = gym.make("lewm_mpc/TwoRoom-v0", obs_mode=obs_mode, render_mode="rgb_array")
    check_env(env.unwrapped)  # unwrapped keeps the spec, so render modes are checked too


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_spaces_and_step_contract(obs_mode: str) -> None:
    env = TwoRoomEnv(obs_mode=obs_mode)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert not terminated and not truncated and reward in (0.0, 1.0)
    assert set(info) >= {"state", "goal", "success", "distance"}
    assert info["state"].dtype == np.float64 and isinstance(info["success"], bool)


def test_registered_env_has_time_limit() -> None:
    env = gym.make("lewm_mpc/TwoRoom-v0", obs_mode="state")
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(np.zeros(2, np.float32))
        assert not terminated
        steps += 1
    assert steps == 100


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="obs_mode"):
        TwoRoomEnv(obs_mode="rgb")
    with pytest.raises(ValueError, match="render_mode"):
        TwoRoomEnv(render_mode="human")
    with pytest.raises(ValueError, match="door_width"):
        TwoRoomConfig(door_width=0.05)
    with pytest.raises(ValueError, match="speed"):
        TwoRoomConfig(speed=-0.1)
    with pytest.raises(ValueError, match="reset options"):
        TwoRoomEnv().reset(options={"start": [0.2, 0.2]})
    env = TwoRoomEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.array([np.nan, 0.0]))


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_seeded_determinism(obs_mode: str) -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, size=(30, 2)).astype(np.float32)
    obs_a, infos_a = _rollout(TwoRoomEnv(obs_mode=obs_mode), 7, actions)
    obs_b, infos_b = _rollout(TwoRoomEnv(obs_mode=obs_mode), 7, actions)
    for oa, ob, ia, ib in zip(obs_a, obs_b, infos_a, infos_b, strict=True):
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ia["state"], ib["state"])
        np.testing.assert_array_equal(ia["goal"], ib["goal"])
        assert ia["success"] == ib["success"] and ia["distance"] == ib["distance"]
    obs_c, infos_c = _rollout(TwoRoomEnv(obs_mode=obs_mode), 8, actions)
    assert not np.array_equal(infos_a[0]["state"], infos_c[0]["state"])
    assert not np.array_equal(obs_a[-1], obs_c[-1])


def test_reset_options_set_start_and_goal() -> None:
    env = TwoRoomEnv(obs_mode="state")
    obs, info = env.reset(seed=0, options={"state": [0.2, 0.3], "goal": [0.8, 0.7]})
    np.testing.assert_allclose(obs, [0.2, 0.3])
    np.testing.assert_array_equal(info["goal"], [0.8, 0.7])
    np.testing.assert_array_equal(env.goal_state, [0.8, 0.7])


def test_set_state_round_trip() -> None:
    env = TwoRoomEnv()
    env.reset(seed=0)
    for state in ([0.1, 0.9], [0.5, 0.5], [CONFIG.wall_left - CONFIG.agent_radius, 0.2]):
        env.set_state(np.array(state))
        np.testing.assert_array_equal(env.get_state(), state)
        assert env.get_state().dtype == np.float64
    env.set_goal(np.array([0.9, 0.1]))
    np.testing.assert_array_equal(env.goal_state, [0.9, 0.1])


@pytest.mark.parametrize(
    "state",
    [
        [0.5, 0.2],  # inside the wall
        [0.47, 0.9],  # overlapping the wall's left face
        [0.5, 0.58],  # in the doorway but overlapping the door post
        [0.02, 0.5],  # agent sticks out of the arena
        [1.2, 0.5],  # outside the arena
        [np.nan, 0.5],
        [0.2, 0.3, 0.4],  # wrong shape
        [[0.2, 0.3]],
    ],
)
def test_set_state_rejects_bad_states(state: list) -> None:
    env = TwoRoomEnv()
    env.reset(seed=0)
    before = env.get_state()
    with pytest.raises(ValueError):
        env.set_state(np.array(state))
    with pytest.raises(ValueError):
        env.set_goal(np.array(state))
    np.testing.assert_array_equal(env.get_state(), before)


def test_agent_stays_in_free_space_under_random_actions() -> None:
    env = TwoRoomEnv(obs_mode="state")
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    # Mix bounded and out-of-range actions; clipping must keep the step size bounded.
    actions = rng.uniform(-1.5, 1.5, size=(2000, 2))
    for action in actions:
        before = env.get_state()
        env.step(action)
        state = env.get_state()
        _assert_inside_free_space(state)
        assert np.all(np.abs(state - before) <= CONFIG.speed + 1e-12)


def test_agent_passes_through_the_door() -> None:
    env = TwoRoomEnv(obs_mode="state")
    env.reset(seed=0, options={"state": [0.2, 0.8]})
    for _ in range(30):  # go down to the door's height
        env.step(np.array([0.0, -1.0]) if env.get_state()[1] > 0.5 else np.zeros(2))
    for _ in range(40):  # then straight right through the door
        env.step(np.array([1.0, 0.0]))
        _assert_inside_free_space(env.get_state())
    assert room_of(env.get_state()) == 1
    assert env.get_state()[0] > CONFIG.wall_right + CONFIG.agent_radius


def test_wall_blocks_outside_the_door() -> None:
    env = TwoRoomEnv(obs_mode="state")
    env.reset(seed=0, options={"state": [0.3, 0.2]})
    for _ in range(30):
        env.step(np.array([1.0, 0.0]))
    np.testing.assert_allclose(env.get_state(), [CONFIG.wall_left - CONFIG.agent_radius, 0.2])


def test_pixel_observation_is_render_of_state() -> None:
    env = TwoRoomEnv(obs_mode="pixels", render_mode="rgb_array")
    obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs, env.render_state(env.get_state()))
    obs, *_ = env.step(np.array([0.5, -0.3], np.float32))
    np.testing.assert_array_equal(obs, env.render_state(env.get_state()))
    np.testing.assert_array_equal(env.render(), obs)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert env.render_state(env.get_state(), size=32).shape == (32, 32, 3)


def test_render_is_anti_aliased() -> None:
    env = TwoRoomEnv()
    base = np.array([0.25, 0.7])
    shifted = base + np.array([0.1 / CONFIG.image_size, 0.0])  # a tenth of a pixel
    frame, frame_shifted = env.render_state(base), env.render_state(shifted)
    assert not np.array_equal(frame, frame_shifted)
    # The agent is red and has partially covered (blended) edge pixels.
    red = frame[..., 0].astype(int) - frame[..., 1].astype(int)
    assert red.max() > 150 and np.any((red > 10) & (red < 150))


def test_is_success_threshold() -> None:
    goal = np.array([0.3, 0.3])
    radius = CONFIG.success_radius
    inside = goal + np.array([0.99 * radius, 0.0])
    outside = goal + np.array([0.0, 1.01 * radius])
    assert TwoRoomEnv.is_success(inside, goal)
    assert not TwoRoomEnv.is_success(outside, goal)
    np.testing.assert_array_equal(
        TwoRoomEnv.is_success_batch(np.stack([inside, outside]), goal), [True, False]
    )
    env = TwoRoomEnv(TwoRoomConfig(success_radius=0.2))  # instance uses its own radius
    assert env.is_success(goal + np.array([0.15, 0.0]), goal)
    env.reset(seed=0, options={"state": inside, "goal": goal})
    _, reward, _, _, info = env.step(np.zeros(2))
    assert info["success"] and reward == 1.0
    np.testing.assert_allclose(info["distance"], 0.99 * radius)


def test_sample_free_position_is_free_and_covers_both_rooms() -> None:
    env = TwoRoomEnv()
    rng = np.random.default_rng(0)
    samples = np.stack([env.sample_free_position(rng) for _ in range(500)])
    assert all(is_free_position(CONFIG, p) for p in samples)
    assert 0.35 < np.mean(samples[:, 0] < 0.5) < 0.65


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_observations_do_not_share_memory(obs_mode: str) -> None:
    env = TwoRoomEnv(obs_mode=obs_mode)
    obs, info = env.reset(seed=0)
    obs2, _, _, _, info2 = env.step(np.zeros(2))
    state = env.get_state()
    goal = env.goal_state
    for array in (obs, info["state"], info["goal"], state, goal):
        assert not np.shares_memory(array, obs2)
        assert not np.shares_memory(array, info2["state"])
        assert not np.shares_memory(array, env.get_state())
    obs2[...] = 0
    info2["state"][...] = 0.0
    state[...] = 0.0
    goal[...] = 0.0
    assert np.all(env.get_state() != 0.0) and np.all(env.goal_state != 0.0)
    new_state = np.array([0.2, 0.2])
    env.set_state(new_state)
    new_state[0] = 0.9
    np.testing.assert_array_equal(env.get_state(), [0.2, 0.2])


def test_expert_crosses_rooms_and_stays_in_bounds() -> None:
    env = TwoRoomEnv(obs_mode="state")
    expert = TwoRoomExpert(CONFIG)
    crossed = 0
    for episode in range(50):
        _, info = env.reset(seed=episode)
        expert.reset(np.random.default_rng(1000 + episode))
        rooms = {room_of(info["state"])}
        for _ in range(100):
            action = expert.act(info["state"])
            assert action.shape == (2,) and action.dtype == np.float32
            assert np.all(np.abs(action) <= 1.0)
            _, _, _, _, info = env.step(action)
            rooms.add(room_of(info["state"]))
        crossed += len(rooms) == 2
    assert crossed >= 30, f"expert crossed rooms in only {crossed}/50 episodes"


def test_expert_is_deterministic_and_moves_briskly() -> None:
    def run(seed: int) -> np.ndarray:
        env = TwoRoomEnv(obs_mode="state")
        _, info = env.reset(seed=0)
        expert = TwoRoomExpert(CONFIG)
        expert.reset(np.random.default_rng(seed))
        actions = []
        for _ in range(60):
            actions.append(expert.act(info["state"]))
            _, _, _, _, info = env.step(actions[-1])
        return np.stack(actions)

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))
    expert = TwoRoomExpert(CONFIG, noise_std=0.0, random_action_prob=0.0)
    expert.reset(np.random.default_rng(0))
    magnitudes = [np.linalg.norm(expert.act(np.array([0.1, 0.1]))) for _ in range(20)]
    assert min(magnitudes) >= 0.45
    with pytest.raises(RuntimeError):
        TwoRoomExpert(CONFIG).act(np.array([0.2, 0.2]))


def test_registry_lookup() -> None:
    spec = get_env_spec("tworoom")
    assert isinstance(spec, EnvSpec) and spec is ENV_SPECS["tworoom"]
    for alias in ("two-room", "TwoRoom", "TWO_ROOM", "lewm_mpc/TwoRoom-v0"):
        assert get_env_spec(alias) is spec
    with pytest.raises(ValueError, match="tworoom"):
        get_env_spec("pong")
    env = spec.make(obs_mode="state")
    _, info = env.reset(seed=0)
    assert env.observation_space.shape == (2,)
    expert = spec.make_expert(env)
    expert.reset(np.random.default_rng(0))
    env.step(expert.act(info["state"]))
    assert spec.is_success(np.zeros(2) + 0.3, np.zeros(2) + 0.3)
    assert spec.default_episode_steps == 100


def test_registration_is_idempotent() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns when overriding a registered id
        get_env_spec("tworoom").register()
    assert gym.spec("lewm_mpc/TwoRoom-v0").max_episode_steps == 100
