"""Two-Room specifics: wall and door geometry, free-space sampling, anti-aliased drawing, the
success radius and the scripted expert (the generic env contract is in test_env_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest

from lewm_mpc.envs import TwoRoomConfig, TwoRoomEnv, TwoRoomExpert
from lewm_mpc.envs.two_room_geometry import is_free_position, room_of

CONFIG = TwoRoomConfig()


def _assert_inside_free_space(pos: np.ndarray) -> None:
    r = CONFIG.agent_radius
    assert r - 1e-9 <= pos[0] <= 1 - r + 1e-9 and r - 1e-9 <= pos[1] <= 1 - r + 1e-9
    overlaps_wall_x = pos[0] - r < CONFIG.wall_right - 1e-9 and pos[0] + r > CONFIG.wall_left + 1e-9
    if overlaps_wall_x:  # inside the doorway: must be between the door posts
        assert CONFIG.door_low - 1e-9 <= pos[1] - r and pos[1] + r <= CONFIG.door_high + 1e-9


def test_config_rejects_disconnected_or_degenerate_geometry() -> None:
    with pytest.raises(ValueError, match="door_width"):
        TwoRoomConfig(door_width=0.05)
    with pytest.raises(ValueError, match="speed"):
        TwoRoomConfig(speed=-0.1)


def test_states_touching_the_wall_are_valid() -> None:
    env = TwoRoomEnv()
    env.reset(seed=0)
    for state in ([0.1, 0.9], [CONFIG.wall_left - CONFIG.agent_radius, 0.2]):
        env.set_state(np.array(state))
        np.testing.assert_array_equal(env.get_state(), state)


@pytest.mark.parametrize(
    "state",
    [
        [0.5, 0.2],  # inside the wall
        [0.47, 0.9],  # overlapping the wall's left face
        [0.5, 0.58],  # in the doorway but overlapping the door post
        [0.02, 0.5],  # agent sticks out of the arena
        [1.2, 0.5],  # outside the arena
    ],
)
def test_set_state_rejects_positions_that_are_not_free(state: list) -> None:
    env = TwoRoomEnv()
    env.reset(seed=0)
    before, goal = env.get_state(), env.goal_state
    for call in (env.set_state, env.set_goal, lambda s: env.reset(options={"state": s})):
        with pytest.raises(ValueError, match="not free"):
            call(np.array(state))
    np.testing.assert_array_equal(env.get_state(), before)
    np.testing.assert_array_equal(env.goal_state, goal)


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


def test_render_is_anti_aliased() -> None:
    env = TwoRoomEnv()
    env.reset(seed=0)
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
    np.testing.assert_array_equal(
        TwoRoomEnv.success_mask(np.stack([inside, outside]), goal, CONFIG), [True, False]
    )
    env = TwoRoomEnv(obs_mode="state")
    assert env.is_success(inside, goal) and not env.is_success(outside, goal)
    wide = TwoRoomEnv(TwoRoomConfig(success_radius=0.2))  # the instance uses its own radius
    assert wide.is_success(goal + np.array([0.15, 0.0]), goal)
    env.reset(seed=0, options={"state": inside, "goal": goal})
    _, reward, _, _, info = env.step(np.zeros(2))
    assert info["success"] and reward == 1.0
    np.testing.assert_allclose(info["distance"], 0.99 * radius)


def test_sample_free_position_is_free_and_covers_both_rooms() -> None:
    env = TwoRoomEnv()
    rng = np.random.default_rng(0)
    samples = np.stack([env.sample_state(rng) for _ in range(500)])
    assert all(is_free_position(CONFIG, p) for p in samples)
    assert 0.35 < np.mean(samples[:, 0] < 0.5) < 0.65


def test_expert_crosses_rooms_and_stays_in_bounds() -> None:
    env = TwoRoomEnv(obs_mode="state")
    expert = TwoRoomExpert.from_env(env)
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
