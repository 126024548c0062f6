"""The simulator oracle: protocol, exact rollouts, goal features, planning, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lewm_mpc as lm
from lewm_mpc.envs import get_env_spec
from lewm_mpc.evaluation import EvalConfig, Pair, run_pair
from lewm_mpc.models.simulator import SimulatorModel

ENVS = ("tworoom", "reacher", "pusht", "cube")


@pytest.fixture(scope="module")
def state_env():
    """``state_env(name)``: one reset state-mode env per environment for the whole module
    (Cube's takes seconds to build)."""
    envs = {}

    def get(name):
        if name not in envs:
            envs[name] = get_env_spec(name).make(obs_mode="state")
            envs[name].reset(seed=0)
        return envs[name]

    yield get
    for env in envs.values():
        env.close()


@pytest.fixture(scope="module", params=ENVS)
def oracle_and_env(request, state_env):
    """An oracle (action blocks of 3) and a state-mode env of each environment."""
    with SimulatorModel(get_env_spec(request.param), action_block=3) as oracle:
        yield oracle, state_env(request.param)


@pytest.fixture(scope="module")
def tworoom_oracle():
    with SimulatorModel(get_env_spec("tworoom")) as oracle:
        yield oracle


def _starts_and_actions(oracle, env, num, horizon, seed):
    """``num`` start states (random env resets) and uniform actions (num, horizon, block*A)."""
    starts = []
    for index in range(num):
        env.reset(seed=seed + index)
        starts.append(env.unwrapped.get_state())
    generator = torch.Generator().manual_seed(seed)
    width = oracle.action_block * oracle.action_dim
    actions = torch.rand((num, horizon, width), generator=generator) * 2 - 1
    return torch.from_numpy(np.stack(starts)), actions


def test_satisfies_the_protocol(oracle_and_env) -> None:
    oracle, env = oracle_and_env
    state_dim = env.unwrapped.get_state().shape[0]
    assert isinstance(oracle, lm.LatentWorldModel)
    assert oracle.latent_dim == state_dim and oracle.obs_shape == (state_dim,)
    assert oracle.obs_dtype.is_floating_point and oracle.device == torch.device("cpu")
    assert oracle.action_dim == env.action_space.shape[0] and oracle.action_block == 3
    np.testing.assert_array_equal(oracle.action_low.numpy(), env.action_space.low)
    np.testing.assert_array_equal(oracle.action_high.numpy(), env.action_space.high)
    assert oracle.differentiable is False
    states = torch.from_numpy(np.stack([env.unwrapped.get_state()] * 2))
    latents = oracle.encode(states)
    assert latents.dtype == torch.float64 and torch.equal(latents, states)


def test_rollout_equals_stepping_the_env(oracle_and_env) -> None:
    oracle, env = oracle_and_env
    starts, actions = _starts_and_actions(oracle, env, num=3, horizon=2, seed=10)
    latents = oracle.rollout(starts, actions)  # (S, H+1, D)
    assert latents.shape == (3, 3, oracle.latent_dim) and latents.dtype == torch.float64
    per_step = actions.reshape(3, 2 * oracle.action_block, oracle.action_dim).numpy()
    for sample in range(3):
        env.reset(options={"state": starts[sample].numpy()})
        expected = [starts[sample].numpy()]
        for index, action in enumerate(per_step[sample]):
            _, _, _, _, info = env.step(action)  # the full step: observation, info, success
            if (index + 1) % oracle.action_block == 0:
                expected.append(info["state"])
        np.testing.assert_array_equal(latents[sample].numpy(), np.stack(expected))
    again = oracle.rollout(starts, actions)  # a pure function of (states, actions)
    assert torch.equal(again, latents)


def test_pusht_scene_steps_exactly_like_gym_pusht() -> None:
    """The oracle's PushT stepping skips gym-pusht's coverage and info, not its physics."""
    from gym_pusht.envs.pusht import PushTEnv as GymPushT

    from lewm_mpc.envs.pusht_geometry import AGENT_HIGH, AGENT_LOW, wrap_angle

    env = get_env_spec("pusht").make(obs_mode="state").unwrapped
    env.reset(seed=0)
    reference = GymPushT(obs_type="state", render_mode="rgb_array")
    rng = np.random.default_rng(0)
    state = np.array([170.0, 265.0, 256.0, 250.0, 0.0, 0, 0, 0, 0, 0])  # agent at the bar
    env.set_state(state)
    moved = 0
    for _ in range(15):
        state = env.get_state()
        action = np.clip((state[2:4] - state[:2]) / 40 + rng.normal(0, 0.3, 2), -1, 1)
        reference._setup()
        ours, env._sim = env._sim, reference  # place gym-pusht's own bodies at the state
        env._place_bodies(state)
        reference.step(np.clip(state[:2] + 40.0 * action, AGENT_LOW, AGENT_HIGH))
        agent, block = reference.agent, reference.block
        expected = np.array(
            [*agent.position, *block.position, wrap_angle(block.angle), *agent.velocity,
             *block.velocity, block.angular_velocity]
        )  # fmt: skip
        env._sim = ours
        env.advance(action)
        np.testing.assert_array_equal(env.get_state(), expected)
        moved += bool(np.any(expected[7:] != 0))
    assert moved > 5  # the block was pushed: contacts were exercised


def test_cube_fast_path_steps_exactly_like_ogbench(state_env) -> None:
    """The oracle's Cube stepping skips OGBench's bookkeeping, not its control or physics."""
    cube = state_env("cube").unwrapped
    cube.reset(seed=3)
    start = cube.get_state()
    actions = np.random.default_rng(0).uniform(-1, 1, (10, 5))
    expected = []
    for action in actions:  # OGBench's own step, then the derived quantities
        cube.sim.step(action)
        cube._refresh()
        expected.append(cube.get_state())
    cube.set_state(start)
    for action, want in zip(actions, expected, strict=True):
        cube.advance(action)
        np.testing.assert_array_equal(cube.get_state(), want)


# Hand-built (goal, inside, outside) states per env: inside passes the success test, outside not.
def _cube_state(xyz):
    state = np.zeros(69)
    state[15:18], state[18] = xyz, 1.0  # cube position, identity quaternion
    return state


FEATURE_CASES = {
    "tworoom": (np.array([0.25, 0.5]), np.array([0.3, 0.48]), np.array([0.4, 0.5])),
    "reacher": (
        np.array([-np.pi + 0.01, -0.5, 0.0, 0.0]),
        np.array([np.pi - 0.02, -0.48, 1.0, -2.0]),  # across the shoulder's wrap
        np.array([-np.pi + 0.11, -0.5, 0.0, 0.0]),
    ),
    "pusht": (
        np.array([200.0, 300.0, 250.0, 260.0, 3.1, 0, 0, 0, 0, 0]),
        np.array([208.0, 300.0, 258.0, 260.0, -3.1, 5, 5, 1, 1, 0.1]),  # across the wrap
        np.array([200.0, 300.0, 280.0, 260.0, 3.1, 0, 0, 0, 0, 0]),
    ),
    "cube": (
        _cube_state([0.4, 0.1, 0.02]),
        _cube_state([0.42, 0.11, 0.02]),
        _cube_state([0.5, 0.1, 0.02]),
    ),
}


@pytest.mark.parametrize("name", ENVS)
def test_goal_features_put_the_success_threshold_near_distance_one(name) -> None:
    spec = get_env_spec(name)
    goal, inside, outside = FEATURE_CASES[name]
    assert spec.is_success(inside, goal) and not spec.is_success(outside, goal)
    features = spec.goal_features(np.stack([goal, inside, outside]))  # (3, F)
    assert features.dtype == np.float64
    assert np.linalg.norm(features[1] - features[0]) < 1.0
    assert np.linalg.norm(features[2] - features[0]) > 1.0
    batch = spec.goal_features(np.stack([goal] * 6).reshape(2, 3, -1))
    assert batch.shape == (2, 3, features.shape[-1])
    with pytest.raises(ValueError, match="shape"):
        spec.goal_features(np.zeros((3, goal.shape[0] + 1)))


def test_features_and_energy_follow_the_latents(tworoom_oracle) -> None:
    latents = torch.tensor([[[0.25, 0.5], [0.3, 0.5]]], dtype=torch.float32)  # (1, 2, D)
    features = tworoom_oracle.features(latents)
    assert features.shape == (1, 2, 2) and features.dtype == torch.float32
    energy = tworoom_oracle.energy(running_weight=0.0)
    goal = torch.tensor([[0.3, 0.5]])
    assert energy(latents, torch.zeros(1, 1, 10), goal).item() == pytest.approx(0.0)


def test_cem_on_the_oracle_reaches_a_two_room_goal(tworoom_oracle) -> None:
    env = get_env_spec("tworoom").make(obs_mode="state")
    planner = lm.CEM(
        tworoom_oracle, energy=tworoom_oracle.energy(), num_samples=64, iterations=3, topk=8
    )
    pair = Pair(0, 0, np.array([0.2, 0.3]), np.array([0.2, 0.5]))  # 0.2 apart
    episode = run_pair(env, planner, pair, EvalConfig(budget=50))
    env.close()
    assert episode.succeeded and episode.steps_to_success <= 15  # 7 steps at full speed


def test_make_env_observes_full_states_so_reacher_plans_in_a_loop() -> None:
    # Reacher's state observation is (cos q, sin q, dq), not its (q, dq) state: the oracle's
    # own env observes states, so the control loop works for every env.
    with SimulatorModel(get_env_spec("reacher")) as oracle:
        env = oracle.make_env()
        obs, _ = env.reset(seed=1)
        assert obs.shape == (4,) and env.observation_space.contains(obs)
        np.testing.assert_array_equal(obs, env.unwrapped.get_state())
        planner = lm.CEM(oracle, energy=oracle.energy(), num_samples=64, iterations=3, topk=8)
        start = np.array([0.3, -0.4, 0.0, 0.0])
        pair = Pair(0, 0, start, start + np.array([0.3, 0.3, 0.0, 0.0]))
        episode = run_pair(env, planner, pair, EvalConfig(budget=40))
        env.close()
    assert episode.succeeded


def test_mppi_plans_on_the_oracle(tworoom_oracle) -> None:
    planner = lm.MPPI(tworoom_oracle, energy=tworoom_oracle.energy(), num_samples=32, iterations=2)
    result = planner.plan(np.array([0.2, 0.3], np.float32), np.array([0.2, 0.5], np.float32))
    assert result.actions.shape == (5 * 5, 2) and np.isfinite(result.energy)
    assert result.latents[-1, 1] > 0.3  # the plan moves toward the goal


def test_gradient_planners_refuse_the_oracle(tworoom_oracle) -> None:
    with pytest.raises(ValueError, match="not differentiable"):
        lm.GradientPlanner(tworoom_oracle)
    with pytest.raises(ValueError, match="not differentiable"):
        lm.GradientPlanner.hybrid(tworoom_oracle)
    actions = torch.zeros((1, 2, 10), requires_grad=True)
    with pytest.raises(ValueError, match="not differentiable"):
        tworoom_oracle.rollout(torch.tensor([[0.2, 0.3]], dtype=torch.float64), actions)


def test_bad_inputs_raise(tworoom_oracle) -> None:
    oracle = tworoom_oracle
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        oracle.encode(torch.zeros(3))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        oracle.encode(torch.zeros(3, 4))
    z0 = torch.tensor([[0.2, 0.3]], dtype=torch.float64)
    with pytest.raises(ValueError, match="z0"):
        oracle.rollout(z0[0], torch.zeros(1, 2, 10))
    with pytest.raises(ValueError, match="actions"):
        oracle.rollout(z0, torch.zeros(1, 2, 9))  # not action_block * A
    with pytest.raises(ValueError, match="actions"):
        oracle.rollout(z0, torch.zeros(2, 2, 10))  # one plan per start
    with pytest.raises(ValueError, match="not free"):
        oracle.rollout(torch.tensor([[0.5, 0.1]], dtype=torch.float64), torch.zeros(1, 2, 10))
    with pytest.raises(ValueError, match="obs has shape"):
        lm.CEM(oracle).plan(np.zeros(3, np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="action_block"):
        SimulatorModel(get_env_spec("tworoom"), action_block=0)
    with pytest.raises(ValueError, match="EnvSpec"):
        SimulatorModel("tworoom")  # type: ignore[arg-type]


def test_close_is_idempotent_and_final() -> None:
    with SimulatorModel(get_env_spec("tworoom"), env_config={"speed": 0.05}) as oracle:
        start = torch.tensor([[0.1, 0.3]], dtype=torch.float64)
        moved = oracle.rollout(start, torch.ones(1, 1, 10))
        assert moved[0, 1, 0].item() == pytest.approx(0.35)  # 5 steps of the configured speed
    oracle.close()
    with pytest.raises(RuntimeError, match="closed"):
        oracle.rollout(torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, 1, 10))
