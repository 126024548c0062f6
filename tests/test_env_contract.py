"""The environment contract, checked on every registered env (a new env is tested on day one).

gymnasium's ``check_env``, determinism under a seed, exact ``set_state(get_state())`` round trips,
``render_state`` equal to ``render``, reset options validated before anything changes, success
tests consistent between scalar, batch and spec, the spec's parts (experts, features, probe,
view) working on live states, observations that share no memory, validated constructor
arguments, registration with its time limit, and a tiny collect -> train -> plan run.
Env-specific physics stays in the per-env test files.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from lewm_mpc.envs import ENV_SPECS, EnvSpec, GoalEnv, get_env_spec, view_for_env

NAMES = sorted(ENV_SPECS)


def _spec(name: str) -> EnvSpec:
    spec = get_env_spec(name)
    try:
        spec.definition  # noqa: B018 (imports the optional dependencies)
    except ImportError as error:
        pytest.skip(f"optional dependency missing: {error}")
    return spec


@pytest.fixture(params=NAMES)
def spec(request: pytest.FixtureRequest) -> EnvSpec:
    return _spec(request.param)


def _rollout(spec: EnvSpec, seed: int, steps: int = 8, obs_mode: str = "state") -> list:
    env = spec.make(obs_mode=obs_mode)
    try:
        obs, info = env.reset(seed=seed)
        env.action_space.seed(seed)
        trace = [obs, info["state"]]
        for _ in range(steps):
            obs, reward, _, _, info = env.step(env.action_space.sample())
            trace += [obs, info["state"], reward]
        return trace
    finally:
        env.close()


def test_registry_names_match_env_classes(spec: EnvSpec) -> None:
    assert issubclass(spec.env_class, GoalEnv)
    assert spec.env_class.name == spec.name
    assert get_env_spec(spec.gym_id) is spec
    assert spec.recipe.episode_steps <= spec.max_episode_steps


@pytest.mark.parametrize("obs_mode", ["pixels", "state"])
def test_gymnasium_check_env(spec: EnvSpec, obs_mode: str) -> None:
    env = spec.make(obs_mode=obs_mode)
    try:
        check_env(env.unwrapped, skip_render_check=True)
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        if obs_mode == "pixels":
            assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    finally:
        env.close()


def test_deterministic_under_a_seed(spec: EnvSpec) -> None:
    first, second = _rollout(spec, seed=3), _rollout(spec, seed=3)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = _rollout(spec, seed=4)
    assert not np.array_equal(first[1], other[1])  # the seed matters


def test_set_state_round_trip_reproduces_the_trajectory(spec: EnvSpec) -> None:
    env = spec.make(obs_mode="state")
    try:
        env.reset(seed=1)
        sim = env.unwrapped
        rng = np.random.default_rng(0)
        actions = rng.uniform(-1, 1, size=(6, env.action_space.shape[0])).astype(np.float32)
        env.step(actions[0])
        saved = sim.get_state()
        after = [env.step(a)[4]["state"] for a in actions[1:]]
        sim.set_state(saved)
        np.testing.assert_array_equal(sim.get_state(), saved)
        replay = [env.step(a)[4]["state"] for a in actions[1:]]
        np.testing.assert_array_equal(np.stack(after), np.stack(replay))
        state = sim.get_state()
        state[...] += 1.0  # get_state returns a copy: mutating it changes nothing
        assert not np.array_equal(state, sim.get_state())
    finally:
        env.close()


def test_render_state_equals_render_and_the_observation(spec: EnvSpec) -> None:
    env = spec.make(obs_mode="pixels", render_mode="rgb_array")
    try:
        env.reset(seed=2)
        obs, *_ = env.step(env.action_space.sample())
        sim = env.unwrapped
        frame = env.render()
        np.testing.assert_array_equal(frame, obs)
        np.testing.assert_array_equal(sim.render_state(sim.get_state()), frame)
        goal_image = sim.render_state(sim.goal_state)
        assert not np.array_equal(goal_image, frame)  # the goal image shows the goal state
        np.testing.assert_array_equal(env.render(), frame)  # render_state left the episode alone
        assert sim.render_state(sim.get_state(), size=32).shape == (32, 32, 3)
    finally:
        env.close()


def test_reset_options_set_state_and_goal_and_are_validated_first(spec: EnvSpec) -> None:
    env = spec.make(obs_mode="state")
    try:
        _, first = env.reset(seed=5)
        _, info = env.reset(options={"state": first["goal"], "goal": first["state"]})
        np.testing.assert_allclose(info["state"], first["goal"])
        np.testing.assert_allclose(info["goal"], first["state"])
        sim = env.unwrapped
        before = (sim.get_state(), sim.goal_state)
        bad = np.full(spec.env_class.state_dim + 1, 0.1)
        for options in ({"state": bad}, {"goal": bad}, {"state": first["goal"], "goal": bad},
                        {"state": np.full(spec.env_class.state_dim, np.nan)}):  # fmt: skip
            with pytest.raises(ValueError, match=r"shape|finite"):
                env.reset(options=options)
            np.testing.assert_array_equal(sim.get_state(), before[0])  # nothing changed
            np.testing.assert_array_equal(sim.goal_state, before[1])
        with pytest.raises(ValueError, match="unknown reset options"):
            env.reset(options={"start": first["state"]})
        with pytest.raises(ValueError, match="action"):
            env.step(np.zeros(env.action_space.shape[0] + 1, np.float32))
    finally:
        env.close()


def test_methods_before_reset_raise(spec: EnvSpec) -> None:
    sim = spec.env_class(obs_mode="state")
    try:
        for call in (sim.get_state, lambda: sim.goal_state,
                     lambda: sim.step(np.zeros(sim.action_dim, np.float32))):  # fmt: skip
            with pytest.raises(RuntimeError, match="reset"):
                call()
        assert sim.render() is None
    finally:
        sim.close()


def test_success_is_consistent_between_scalar_batch_spec_and_info(spec: EnvSpec) -> None:
    env = spec.make(obs_mode="state")
    try:
        _, info = env.reset(seed=7)
        sim = env.unwrapped
        goal = info["goal"]
        _, at_goal = env.reset(options={"state": goal, "goal": goal})
        assert at_goal["success"] and at_goal["distance"] < 1e-9
        states = np.stack([goal, info["state"]])
        expected = [sim.is_success(s, goal) for s in states]
        assert expected == [True, False]
        np.testing.assert_array_equal(sim.is_success_batch(states, goal), expected)
        np.testing.assert_array_equal(sim.is_success_batch(states[None], goal[None]), [expected])
        assert [spec.is_success(s, goal) for s in states] == expected
        with pytest.raises(ValueError, match="shape"):
            sim.is_success(goal[:-1], goal)
        for state in states:  # the feature distance puts the threshold near 1
            distance = np.linalg.norm(spec.goal_features(state) - spec.goal_features(goal))
            assert (distance < 1.0) == sim.is_success(state, goal) or distance == 0.0
    finally:
        env.close()


def test_definition_parts_work_on_live_states(spec: EnvSpec) -> None:
    env = spec.make(obs_mode="pixels")
    try:
        obs, info = env.reset(seed=0)
        for name in spec.expert_names:
            policy = spec.make_expert(env, name)
            policy.reset(np.random.default_rng(0))
            action = policy.act(info["state"])
            assert action.shape == env.action_space.shape
            assert np.all(np.abs(action) <= 1.0)
        with pytest.raises(ValueError, match="data policy"):
            spec.make_expert(env, "nope")
        quantity = spec.probe.read(info["state"][None])  # (1, P)
        pixels = view_for_env(env)(quantity)  # (1, K, 2)
        assert pixels.shape[-1] == 2 and np.all((pixels >= 0) & (pixels < obs.shape[0]))
        features = spec.goal_features(np.stack([info["state"], info["goal"]]))
        assert features.shape[0] == 2 and np.all(np.isfinite(features))
    finally:
        env.close()


def _arrays(info: dict) -> list[np.ndarray]:
    return [value for value in info.values() if isinstance(value, np.ndarray)]


@pytest.mark.parametrize("obs_mode", ["pixels", "state"])
def test_observations_do_not_share_memory(spec: EnvSpec, obs_mode: str) -> None:
    env = spec.make(obs_mode=obs_mode)
    try:
        sim = env.unwrapped
        action = np.zeros(env.action_space.shape, np.float32)
        env.reset(seed=0)
        reference = [env.step(action) for _ in range(2)]  # untouched: what mutation may not change
        obs, info = env.reset(seed=0)
        obs1, _, _, _, info1 = env.step(action)
        state, goal = sim.get_state(), sim.goal_state
        returned = [obs, obs1, state, goal, *_arrays(info), *_arrays(info1)]
        live = [sim.get_state(), sim.goal_state]
        for i, array in enumerate(returned):
            assert not any(np.shares_memory(array, other) for other in returned[i + 1 :] + live)
        for array in returned:
            array[...] = 0  # mutating what was returned changes nothing in the env
        np.testing.assert_array_equal(sim.get_state(), reference[0][4]["state"])
        np.testing.assert_array_equal(sim.goal_state, reference[0][4]["goal"])
        obs2, reward, _, _, info2 = env.step(action)
        expected_obs, expected_reward, _, _, expected_info = reference[1]
        np.testing.assert_array_equal(obs2, expected_obs)
        assert reward == expected_reward
        for key, value in expected_info.items():
            np.testing.assert_array_equal(info2[key], value)
        given_state, given_goal = info2["state"].copy(), info2["goal"].copy()
        env.reset(options={"state": given_state, "goal": given_goal})
        given_goal[...] = 0  # the env copied the caller's arrays
        given_state[...] = 0
        np.testing.assert_array_equal(sim.get_state(), info2["state"])
        np.testing.assert_array_equal(sim.goal_state, info2["goal"])
        given_state = info2["state"].copy()
        sim.set_state(given_state)
        given_state[...] = 0
        np.testing.assert_array_equal(sim.get_state(), info2["state"])
    finally:
        env.close()


@dataclass(frozen=True)
class _LookalikeConfig:
    image_size: int = 64


def test_arguments_are_validated(spec: EnvSpec) -> None:
    for config in (_LookalikeConfig(), {"image_size": 32}):  # the wrong type, even if alike
        with pytest.raises(ValueError, match="config must be"):
            spec.env_class(config)
    with pytest.raises(ValueError, match="obs_mode"):
        spec.env_class(obs_mode="rgb")
    with pytest.raises(ValueError, match="render_mode"):
        spec.env_class(render_mode="human")
    with pytest.raises(ValueError, match="env_config"):
        spec.make(env_config={"no_such_field": 1})
    env = spec.make(obs_mode="pixels", env_config={"image_size": 32})
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == env.observation_space.shape == (32, 32, 3) and obs.dtype == np.uint8
        sim = env.unwrapped
        assert sim.config.image_size == 32
        assert sim.render_state(sim.get_state()).shape == (32, 32, 3)
        before = sim.get_state()
        for value in (np.nan, np.inf):
            with pytest.raises(ValueError, match="action"):
                env.step(np.full(env.action_space.shape, value, np.float32))
        np.testing.assert_array_equal(sim.get_state(), before)
    finally:
        env.close()


def test_registration_time_limit_and_lookup(spec: EnvSpec) -> None:
    for alias in (spec.name.upper(), f"-{spec.name}-", spec.gym_id.lower()):
        assert get_env_spec(alias) is spec
    with pytest.raises(ValueError, match=spec.name):
        get_env_spec("pong")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns when overriding a registered id
        spec.register()
    assert gym.spec(spec.gym_id).max_episode_steps == spec.max_episode_steps
    env = spec.make(obs_mode="state")
    try:
        env.reset(seed=0)
        action = np.zeros(env.action_space.shape, np.float32)
        steps, truncated = 0, False
        while not truncated:
            _, _, terminated, truncated, _ = env.step(action)
            assert not terminated
            steps += 1
        assert steps == spec.max_episode_steps
    finally:
        env.close()


@pytest.mark.parametrize(
    "spec",
    [pytest.param(name, marks=pytest.mark.slow) if name == "cube" else name for name in NAMES],
    indirect=True,  # Cube compiles its scene per env and renders ~0.1 s a frame: 6-20 s
)
def test_tiny_collect_train_plan(spec: EnvSpec, tmp_path) -> None:
    import lewm_mpc as lm
    from conftest import tiny_config
    from lewm_mpc.data import EpisodeDataset
    from lewm_mpc.data.collection import collect_dataset
    from lewm_mpc.training import TrainConfig, train

    path = collect_dataset(spec.name, tmp_path / "d.h5", 2, 10, progress=False)
    dataset = EpisodeDataset.load(path)
    assert dataset.meta.env_id == spec.gym_id
    assert dataset.meta.env_config == json.loads(json.dumps(dataclasses.asdict(spec.config())))
    assert dataset.image_shape == (64, 64, 3) and dataset.state_dim == spec.env_class.state_dim
    config = TrainConfig(
        steps=2, batch_size=4, num_frames=2, val_fraction=0.5, val_every=2, val_batches=1,
        checkpoint_every=2, sigreg_projections=16, warmup_steps=1,
    )  # fmt: skip
    env = spec.make(obs_mode="pixels")
    try:
        obs, info = env.reset(seed=0)
        goal = env.unwrapped.render_state(info["goal"])
        state, goal_state = info["state"].astype(np.float32), info["goal"].astype(np.float32)
        for obs_mode, start, target in (("pixels", obs, goal), ("state", state, goal_state)):
            run = tmp_path / f"run-{obs_mode}"
            train(path, run, tiny_config(), config, obs_mode=obs_mode, progress=False)
            planner = lm.CEM(lm.WorldModel.load(run), num_samples=8, iterations=1, topk=2)
            result = planner.plan(start, target)
            assert result.actions.shape[1] == spec.env_class.action_dim
            assert np.all(np.abs(result.actions) <= 1.0)
        env.step(result.actions[0])
    finally:
        env.close()


def test_an_env_missing_a_hook_cannot_be_built() -> None:
    from lewm_mpc.envs.two_room import TwoRoomEnv

    class NoDrawing(GoalEnv):  # every hook but _draw
        name, config_class, state_dim, action_dim = "nodraw", TwoRoomEnv.config_class, 2, 2
        sample_state = TwoRoomEnv.sample_state
        _write_state, _read_state = TwoRoomEnv._write_state, TwoRoomEnv._read_state
        _physics_step = TwoRoomEnv._physics_step
        goal_error, success_mask = TwoRoomEnv.goal_error, TwoRoomEnv.success_mask

    with pytest.raises(TypeError, match="_draw"):
        NoDrawing()
