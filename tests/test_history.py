"""Observation history: a model trained with a history of frames rolls out from the last ones,
fused and unfused alike, and planners and the controller pass them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lewm_mpc as lm
from conftest import tiny_config
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.models import WorldModel
from lewm_mpc.surprise import surprise_and_motion
from lewm_mpc.surprise_windows import block_windows


def model(history: int, predictor: str = "mlp") -> WorldModel:
    torch.manual_seed(0)
    extra = {} if predictor == "mlp" else {"predictor": predictor, "predictor_depth": 1,
                                            "predictor_heads": 2}  # fmt: skip
    return WorldModel(tiny_config(history=history, action_block=2, **extra)).eval()


def sequence(wm: WorldModel, length: int = 5):
    generator = torch.Generator().manual_seed(1)
    obs = torch.randint(0, 256, (1, length, *wm.obs_shape), generator=generator, dtype=torch.uint8)
    actions = torch.rand((1, length, 2 * wm.action_dim), generator=generator) * 2 - 1
    with torch.inference_mode():
        latents = wm.encode(obs[0]).unsqueeze(0)  # (1, T, D)
    return latents, actions


@pytest.mark.parametrize("predictor", ["mlp", "transformer"])
def test_rollout_from_a_history_is_the_teacher_forced_prediction(predictor):
    wm = model(history=3, predictor=predictor)
    latents, actions = sequence(wm)
    with torch.inference_mode():
        forced = wm.predict(latents[:, :3], wm.embed_actions(actions[:, :3]))[:, -1]  # ~ z_3
        rolled = wm.rollout(latents[:, 2], actions[:, 2:4], past_latents=latents[:, :2],
                            past_actions=actions[:, :2])  # fmt: skip
        unfused = wm._rollout_by_predict(latents[:, 2], wm.embed_actions(actions[:, 2:4]),
                                         wm._context(latents[:, 2], latents[:, :2],
                                                     actions[:, :2]))  # fmt: skip
        plain = wm.rollout(latents[:, 2], actions[:, 2:4])
    torch.testing.assert_close(rolled[:, 1], forced, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rolled, unfused, atol=1e-5, rtol=1e-5)
    assert rolled.shape == (1, 3, wm.latent_dim) and not torch.allclose(rolled, plain)


def test_a_model_without_history_ignores_past_frames():
    wm = model(history=1)
    latents, actions = sequence(wm)
    with torch.inference_mode():
        with_past = wm.rollout(latents[:, 2], actions[:, 2:4], latents[:, :2], actions[:, :2])
        without = wm.rollout(latents[:, 2], actions[:, 2:4])
    torch.testing.assert_close(with_past, without)
    with pytest.raises(ValueError, match="go together"):
        wm.rollout(latents[:, 2], actions[:, 2:4], past_latents=latents[:, :2])


def tiny_cem(wm):
    return lm.CEM(wm, horizon=3, num_samples=8, iterations=2, topk=2, seed=0)


def frames(wm, count):
    generator = torch.Generator().manual_seed(2)
    return torch.randint(0, 256, (count, *wm.obs_shape), generator=generator,
                         dtype=torch.uint8).numpy()  # fmt: skip


def test_plan_conditions_on_the_history_it_is_given():
    wm = model(history=3)
    obs = frames(wm, 4)
    past_actions = np.full((2, 4), 0.5, np.float32)
    with_history = tiny_cem(wm).plan(obs[2], obs[3], history=(obs[:2], past_actions))
    without = tiny_cem(wm).plan(obs[2], obs[3])
    assert with_history.energy != without.energy
    planner = tiny_cem(wm)
    z0, z_goal = planner.encode_pair(torch.from_numpy(obs[2:3]), torch.from_numpy(obs[3:4]))
    with torch.inference_mode():
        past = wm.encode(torch.from_numpy(obs[:2]))
    latent = planner.plan_latent(z0[0], z_goal[0], past=(past, torch.from_numpy(past_actions)))
    np.testing.assert_allclose(latent.actions, with_history.actions, atol=1e-6)


def test_controller_keeps_the_block_boundary_frames_and_blocks():
    wm = model(history=3)
    planner = tiny_cem(wm)
    seen = []
    original = planner.plan_latent

    def spy(z0, z_goal, **kwargs):
        seen.append(kwargs.get("past"))
        return original(z0, z_goal, **kwargs)

    planner.plan_latent = spy
    obs = frames(wm, 7)
    with lm.MPCController(planner, replan_every=2) as controller:
        controller.reset(obs[6])
        actions = [controller.act(obs[step]) for step in range(6)]
    assert seen[0] is None and len(seen) == 3
    with torch.inference_mode():
        encoded = wm.encode(torch.from_numpy(obs[[0, 2]]))
    latents, blocks = seen[2]  # the plan at step 4 sees the frames at 0 and 2
    torch.testing.assert_close(latents, encoded)
    executed = np.stack([np.concatenate(actions[0:2]), np.concatenate(actions[2:4])])
    np.testing.assert_allclose(blocks.numpy(), executed)
    assert seen[1][0].shape == (1, wm.latent_dim)  # at step 2: one frame so far


def test_the_surprise_monitor_predicts_each_block_from_the_history_before_it():
    wm = model(history=3)
    obs = frames(wm, 9)
    monitor = lm.SurpriseMonitor(threshold=1e9)  # records every block, never alarms
    with lm.MPCController(tiny_cem(wm), replan_every=2, monitor=monitor) as controller:
        controller.reset(obs[8])
        actions = [controller.act(obs[step]) for step in range(9)]
    blocks = [np.concatenate(actions[i : i + 2]) for i in range(0, 8, 2)]  # (4 * A,) each

    def expected(start: int, past: list[int]) -> float:
        history = None
        if past:
            executed = np.stack([blocks[i // 2] for i in past])  # (C, 2 * A)
            history = (torch.from_numpy(obs[past])[None], torch.from_numpy(executed)[None])
        surprise, _ = surprise_and_motion(wm, torch.from_numpy(obs[start : start + 1]),
                                          torch.from_numpy(blocks[start // 2])[None],
                                          torch.from_numpy(obs[start + 2 : start + 3]),
                                          past=history)  # fmt: skip
        return float(surprise[0])

    measured = [block.surprise for block in controller.surprises]
    # the blocks starting at 0, 2, 4, 6 conditioned on the (at most 2) block starts before them
    reference = [expected(0, []), expected(2, [0]), expected(4, [0, 2]), expected(6, [2, 4])]
    np.testing.assert_allclose(measured, reference, rtol=1e-5)
    assert abs(expected(6, []) - reference[3]) > 1e-4  # the history changes the prediction


def test_surprise_windows_of_a_history_model_hold_the_block_starts_before_them(tiny_dataset):
    dataset = EpisodeDataset.load(tiny_dataset)
    wm = WorldModel(tiny_config(history=3, action_block=2)).eval()
    ids = dataset.episode_ids[:2]
    windows = list(block_windows(wm, dataset, ids, max_windows=10_000, batch_size=1000))
    assert len(windows) == 1
    window = windows[0]
    assert window.past is not None
    past_obs, past_actions = window.past
    first = dataset.episode(int(ids[0]))
    pixels = torch.from_numpy(np.array(first.pixels))  # (T, *obs)
    # the first window of the first episode: block starts 0 and 2 before, 4 -> 6
    torch.testing.assert_close(past_obs[0], pixels[[0, 2]])
    torch.testing.assert_close(window.before[0], pixels[4])
    torch.testing.assert_close(window.after[0], pixels[6])
    action = torch.from_numpy(first.action.astype(np.float32))  # (T, A)
    torch.testing.assert_close(past_actions[0], action[:4].reshape(2, -1))
    torch.testing.assert_close(window.actions[0], action[4:6].reshape(-1))
    # 40 actions per episode; a window's 4 frames each need the block after them: starts 0..32
    assert len(window.before) == 2 * 33
    threshold = lm.calibrate_surprise(wm, dataset, ids, false_alarm=0.1)
    assert threshold.windows == len(window.before)


def test_a_surprise_history_of_the_wrong_shape_is_a_clear_error():
    wm = model(history=3)
    obs = torch.from_numpy(frames(wm, 4))
    block = torch.zeros(1, 2 * wm.action_dim)
    shapes = r"history must be C past latents .* got \(1, 2, 16\) and \(1, 2, 3\)"
    with pytest.raises(ValueError, match=shapes):
        surprise_and_motion(wm, obs[2:3], block, obs[3:4],
                            past=(obs[None, :2], torch.zeros(1, 2, 3)))  # fmt: skip
