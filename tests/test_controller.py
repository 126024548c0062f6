"""MPCController: the action queue and warm-start shift, asynchronous planning with latency
compensation, late plans, fallbacks, errors and shutdown; run_loop around it."""

from __future__ import annotations

import threading
import time

import gymnasium as gym
import numpy as np
import pytest
import torch

import lewm_mpc as lm
from lewm_mpc.control import run_episode
from lewm_mpc.envs import get_env_spec

GAIN = 0.1
GOAL = np.array([0.6, -0.4], np.float32)


class Linear:
    """x' = x + GAIN * (sum of a block's actions): a protocol model that is exactly the env."""

    latent_dim = action_dim = 2
    action_block = 2
    obs_shape = (2,)
    obs_dtype = torch.float32
    device = torch.device("cpu")
    action_low = torch.full((2,), -1.0)
    action_high = torch.full((2,), 1.0)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float()

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        steps = actions.view(*actions.shape[:2], self.action_block, 2).sum(2) * GAIN  # (S, H, 2)
        return torch.cat([z0[:, None], z0[:, None] + steps.cumsum(1)], dim=1)


class LinearEnv(gym.Env):
    """The same system one env action at a time; success within 0.05 of the goal."""

    observation_space = gym.spaces.Box(-10, 10, (2,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = np.zeros(2, np.float32)
        return self.x.copy(), self._info()

    def step(self, action):
        self.x = (self.x + GAIN * np.asarray(action, np.float32)).astype(np.float32)
        return self.x.copy(), 0.0, False, False, self._info()

    def _info(self):
        return {
            "state": self.x.astype(np.float64),
            "success": bool(np.linalg.norm(self.x - GOAL) < 0.05),
        }


def energy(latents, actions, goal):
    return (latents[:, -1] - goal).pow(2).sum(-1) + 1e-3 * actions.pow(2).sum((1, 2))


def planner(**overrides):
    """Sampling alone (``polish_steps=0``) unless overridden: its plans are exactly repeatable
    from a latent computed another way (L-BFGS amplifies float rounding a little)."""
    fields = {"horizon": 4, "num_samples": 32, "iterations": 4, "topk": 4, "seed": 0,
              "polish_steps": 0, **overrides}  # fmt: skip
    return lm.CEM(Linear(), energy=energy, **fields)


def drive(controller, steps=12):
    """Act for ``steps`` env steps; returns the actions and the env states before each."""
    env = LinearEnv()
    obs, _ = env.reset()
    controller.reset(GOAL)
    actions, states = [], []
    for _ in range(steps):
        states.append(env.x.copy())
        action = controller.act(obs)
        actions.append(action)
        obs, *_ = env.step(action)
    return np.array(actions), np.array(states)


def test_warm_up_times_every_iteration_and_forgets_its_plans():
    cold = planner()
    assert not cold.timed
    cold.warm_up(np.zeros(2, np.float32), GOAL)
    assert cold.timed and set(cold.clocks) == {"CEM", "finish"}
    fresh = planner()
    fresh.generator.set_state(cold.generator.get_state())  # the RNG state after the warm-up
    warmed = cold.plan(np.zeros(2, np.float32), GOAL)  # no warm start from the warm-up plans
    np.testing.assert_array_equal(warmed.actions,
                                  fresh.plan(np.zeros(2, np.float32), GOAL).actions)  # fmt: skip


def test_a_controller_under_a_deadline_times_the_planner_before_its_first_plan():
    untimed = planner()
    with lm.MPCController(untimed, deadline_s=10.0) as controller:
        drive(controller, steps=2)
    assert untimed.timed and len(controller.plans) == 1
    plain = planner()
    with lm.MPCController(plain) as controller:  # no deadline: no warm-up
        drive(controller, steps=2)
    assert not plain.timed  # one plan: its result packaging (cold) is not timed yet


def test_synchronous_queue_executes_each_plans_first_blocks():
    with lm.MPCController(planner(receding_horizon=2)) as controller:
        actions, states = drive(controller, steps=12)
    reference = planner(receding_horizon=2)
    expected = []
    for start in range(0, 12, 4):  # replan_every = 2 blocks of 2 actions
        expected.extend(reference.plan(states[start], GOAL).actions[:4])
    np.testing.assert_array_equal(actions, np.array(expected))
    assert [record.step for record in controller.plans] == [0, 4, 8]


def test_asynchronous_at_zero_latency_gives_the_synchronous_actions():
    with lm.MPCController(planner(), replan_every=2) as sync:
        expected, _ = drive(sync)
    with lm.MPCController(planner(), replan_every=2, asynchronous=True, max_wait_s=None) as asyn:
        actions, _ = drive(asyn)
        assert all(record.late == 0 for record in asyn.plans)
    np.testing.assert_allclose(actions, expected, atol=1e-6)


def test_a_polishing_planner_plans_in_the_background_thread():
    # the default sampling planners polish through autograd; in the planning thread too
    with lm.MPCController(planner(polish_steps=20), replan_every=2) as sync:
        expected, _ = drive(sync)
    with lm.MPCController(planner(polish_steps=20), replan_every=2, asynchronous=True,
                          max_wait_s=None) as asyn:  # fmt: skip
        actions, _ = drive(asyn)
    assert all(record.result.energy_evals > 4 * 32 for record in asyn.plans)  # it polished
    np.testing.assert_allclose(actions, expected, atol=1e-3)


def test_latency_compensation_plans_from_the_true_future_state():
    base = planner()
    starts = []
    original = base.plan_latent

    def spy(z0, z_goal, **kwargs):
        starts.append(z0.clone())
        return original(z0, z_goal, **kwargs)

    base.plan_latent = spy
    with lm.MPCController(base, replan_every=4, asynchronous=True, max_wait_s=None) as controller:
        _, states = drive(controller, steps=12)
        steps = [record.step for record in controller.plans]
    assert steps == [0, 4, 8]
    # The plan for step 12 may have started too (the thread plans ahead): check those installed.
    for start, step in zip(starts[: len(steps)], steps, strict=True):
        np.testing.assert_allclose(start.numpy(), states[step], atol=1e-6)


class Drifting(Linear):
    """The linear model with a drift the env does not have: its predictions are off."""

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        latents = super().rollout(z0, actions)  # (S, H+1, 2)
        drift = 0.05 * torch.arange(latents.shape[1], dtype=latents.dtype)  # per block
        return latents + drift[None, :, None]


@pytest.mark.parametrize("reanchor_by", ["gradient", "replan"])
def test_reanchoring_corrects_each_plan_made_ahead_from_the_observed_state(reanchor_by):
    base = lm.CEM(Drifting(), energy=energy, horizon=4, num_samples=32, iterations=4, topk=4,
                  seed=0, polish_steps=0)  # fmt: skip
    calls = []

    def spying(name):
        original = getattr(base, name)

        def spy(z0, z_goal, *args, **kwargs):
            result = original(z0, z_goal, *args, **kwargs)
            calls.append((name, z0.clone(), args, kwargs, result))
            return result

        return spy

    base.plan_latent, base.refine_latent = spying("plan_latent"), spying("refine_latent")
    with lm.MPCController(base, replan_every=4, asynchronous=True, max_wait_s=None,
                          reanchor_s=10.0, reanchor_by=reanchor_by,
                          reanchor_steps=7) as controller:  # fmt: skip
        actions, states = drive(controller, steps=12)
        records = list(controller.plans)
    assert [record.step for record in records] == [0, 4, 8]
    ahead = [call for call in calls if call[3].get("shift") == 2]  # made from a prediction
    assert len(ahead) >= 2
    for record, made in zip(records[1:], ahead[:2], strict=True):
        name, z0, args, kwargs, result = next(c for c in calls if c[4] is record.result)
        assert name == {"gradient": "refine_latent", "replan": "plan_latent"}[reanchor_by]
        np.testing.assert_allclose(z0.numpy(), states[record.step], atol=1e-6)  # observed
        assert np.abs(made[1].numpy() - states[record.step]).max() > 0.05  # predicted: off
        assert kwargs["deadline_s"] == 10.0 and record.late == 0
        if reanchor_by == "gradient":  # the plan made ahead for this step, corrected
            np.testing.assert_array_equal(args[0], made[4].actions)
            assert kwargs["steps"] == 7 and result.energy_evals <= 7
        else:  # planned again, warm-started with it
            assert kwargs["shift"] == 0
        np.testing.assert_array_equal(actions[record.step : record.step + 4], result.actions[:4])
    with lm.MPCController(planner(), replan_every=4, asynchronous=True, max_wait_s=None,
                          reanchor_s=10.0) as controller:  # fmt: skip
        drive(controller, steps=2)  # the first plan, made from an observation, is not re-anchored
        assert len(controller.plans) == 1
    with pytest.raises(ValueError, match="reanchor_s must be > 0 seconds or None"):
        lm.MPCController(planner(), asynchronous=True, reanchor_s=0.0)
    with pytest.raises(ValueError, match=r"reanchor_s .* needs asynchronous=True"):
        lm.MPCController(planner(), reanchor_s=0.05)
    with pytest.raises(ValueError, match="reanchor_steps must be an int >= 1, got 0"):
        lm.MPCController(planner(), asynchronous=True, reanchor_s=0.05, reanchor_steps=0)
    with pytest.raises(ValueError, match="reanchor_by must be one of"):
        lm.MPCController(planner(), asynchronous=True, reanchor_s=0.05, reanchor_by="cem")
    frozen = Linear()
    frozen.differentiable = False
    with pytest.raises(ValueError, match="not differentiable; pass reanchor_by='replan'"):
        lm.MPCController(lm.CEM(frozen, energy=energy), asynchronous=True, reanchor_s=0.05)


class Gated:
    """Wraps a planner: plan_latent calls after the first wait for ``gate``."""

    def __init__(self, inner, fail: bool = False) -> None:
        self.inner, self.fail, self.calls = inner, fail, 0
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def plan_latent(self, z0, z_goal, **kwargs):
        self.calls += 1
        if self.calls > 1:
            if self.fail:
                raise FloatingPointError("diverged")
            self.gate.wait(10)
        return self.inner.plan_latent(z0, z_goal, **kwargs)


@pytest.mark.parametrize("fallback", ["continue", "hold", "zero"])
def test_without_a_new_plan_the_old_one_continues_or_the_fallback_acts(fallback):
    gated = Gated(planner())
    with lm.MPCController(gated, replan_every=2, asynchronous=True, fallback=fallback) as ctl:
        ctl.reset(GOAL)
        actions = [ctl.act(np.zeros(2, np.float32)) for _ in range(10)]  # next plan held back
        queue = ctl.plans[0].result.actions  # (8, 2): horizon 4 blocks of 2
        continued = queue if fallback == "continue" else queue[:2]
        np.testing.assert_array_equal(actions[: len(continued)], continued)
        after = {"continue": np.zeros(2), "hold": continued[-1], "zero": np.zeros(2)}[fallback]
        for action in actions[len(continued) :]:
            np.testing.assert_array_equal(action, after)
        assert ctl.fallback_steps == 10 - len(continued)
        gated.gate.set()


def test_a_late_plan_joins_the_queue_without_the_actions_it_is_late_for():
    gated = Gated(planner())
    with lm.MPCController(gated, replan_every=2, asynchronous=True) as ctl:
        ctl.reset(GOAL)
        obs = np.zeros(2, np.float32)
        for _ in range(4):
            ctl.act(obs)
        gated.gate.set()
        deadline = time.perf_counter() + 10
        while len(ctl.plans) < 2 and time.perf_counter() < deadline:
            action = ctl.act(obs)
            time.sleep(0.01)
        record = ctl.plans[1]
        assert record.requested_step == 0 and record.late == record.step - 2 > 0
        np.testing.assert_array_equal(action, record.result.actions[record.late])


def test_a_planning_thread_error_surfaces_at_the_next_act():
    gated = Gated(planner(), fail=True)
    with lm.MPCController(gated, replan_every=2, asynchronous=True, max_wait_s=None) as ctl:
        ctl.reset(GOAL)
        obs = np.zeros(2, np.float32)
        ctl.act(obs)
        with pytest.raises(
            RuntimeError, match="planning thread failed: FloatingPointError"
        ) as info:
            for _ in range(3):
                ctl.act(obs)
        assert isinstance(info.value.__cause__, FloatingPointError)


def test_close_joins_the_thread_and_refuses_more_work():
    controller = lm.MPCController(planner(), asynchronous=True)
    thread = controller._planning.thread
    assert thread is not None and thread.is_alive()
    controller.close()
    controller.close()  # idempotent
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        controller.reset(GOAL)


def test_act_before_reset_and_bad_settings_are_clear_errors():
    with lm.MPCController(planner()) as controller, pytest.raises(RuntimeError, match="reset"):
        controller.act(np.zeros(2, np.float32))
    for kwargs, message in [
        ({"replan_every": 3}, "multiple of the action block 2"),
        ({"replan_every": 10}, r"in \[1, 8\]"),
        ({"fallback": "brake"}, "fallback"),
        ({"max_wait_s": -1.0}, "max_wait_s"),
        ({"deadline_s": 0.0}, "deadline_s"),
    ]:
        with pytest.raises(ValueError, match=message):
            lm.MPCController(planner(), **kwargs)


def test_run_episode_and_an_unpaced_run_loop_are_the_same_loop():
    env = LinearEnv()
    obs, info = env.reset()
    episode = run_episode(env, planner(), obs, info, GOAL, max_steps=30)
    env = LinearEnv()
    obs, info = env.reset()
    with lm.MPCController(planner()) as controller:
        report = lm.run_loop(env, controller, obs, info, GOAL, rate_hz=None, steps=30)
    np.testing.assert_array_equal(report.episode.actions, episode.actions)
    assert report.episode.succeeded and report.missed == 0 and report.fallback_steps == 0
    assert report.act_seconds.shape == (len(episode.actions),)
    assert report.episode.plan_steps == episode.plan_steps


def test_paced_asynchronous_loop_reaches_the_goal():
    env = LinearEnv()
    obs, info = env.reset()
    with lm.MPCController(planner(), asynchronous=True) as controller:
        report = lm.run_loop(env, controller, obs, info, GOAL, rate_hz=200.0, steps=40)
    assert report.episode.succeeded
    assert len(report.late) == len(report.episode.plans) >= 2


def test_goals_as_observations_latents_or_probed_targets_steer_alike():
    with lm.MPCController(planner()) as controller:
        from_image, _ = drive(controller, steps=8)
    with lm.MPCController(planner()) as controller:
        env = LinearEnv()
        obs, _ = env.reset()
        controller.reset(torch.from_numpy(GOAL))  # the goal's latent (encode is the identity)
        from_latent = []
        for _ in range(8):
            from_latent.append(controller.act(obs))
            obs, *_ = env.step(from_latent[-1])
    np.testing.assert_allclose(np.array(from_latent), from_image, atol=1e-6)
    target = lm.energies.ProbedGoalDistance(probe=lambda z: z, running_weight=0.0, target=GOAL)
    targeted = lm.CEM(Linear(), energy=target, horizon=4, num_samples=32, iterations=4, topk=4,
                      seed=0, polish_steps=0)  # fmt: skip
    env = LinearEnv()
    obs, info = env.reset()
    with lm.MPCController(targeted) as controller:
        report = lm.run_loop(env, controller, obs, info, None, rate_hz=None, steps=30)
    assert report.episode.succeeded
    with lm.MPCController(planner()) as controller, pytest.raises(ValueError, match="shape"):
        controller.reset(torch.zeros(3))


def test_a_time_limit_shorter_than_the_budget_is_refused():
    env = gym.wrappers.TimeLimit(LinearEnv(), max_episode_steps=10)
    obs, info = env.reset()
    with lm.MPCController(planner()) as controller, pytest.raises(ValueError, match="10 steps"):
        lm.run_loop(env, controller, obs, info, GOAL, rate_hz=None, steps=30)


def test_make_for_budget_lifts_the_registered_time_limit():
    spec = get_env_spec("tworoom")
    env = spec.make_for_budget(spec.max_episode_steps + 50, obs_mode="state")
    env.reset(seed=0)
    zero = np.zeros(2, np.float32)
    truncated = [env.step(zero)[3] for _ in range(spec.max_episode_steps + 50)]
    assert not any(truncated[:-1]) and truncated[-1]
    assert spec.make_for_budget(10, obs_mode="state").spec.max_episode_steps == 100
