"""Surprise: split-conformal calibration holds its false-alarm rate on held-out data, and the
controller detects a perturbation at the next block and acts on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

import lewm_mpc as lm
from conftest import tiny_config
from lewm_mpc.conformal import BOOTSTRAP_SETS, conformal_threshold, episode_bootstrap_threshold
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.models import WorldModel
from lewm_mpc.surprise import (
    SurpriseMonitor,
    SurpriseThreshold,
    calibrate_surprise,
    surprise_and_motion,
)
from test_controller import GOAL, LinearEnv, planner


@pytest.mark.parametrize(
    ("relative", "combine", "read"),
    [(True, False, False), (False, False, False), (True, True, False), (True, False, True)],
    ids=["relative", "distance", "combined", "relative-through-a-readout"],
)  # fmt: skip
def test_calibrated_threshold_keeps_its_false_alarm_rate_on_other_episodes(
    tiny_dataset, relative, combine, read
):
    dataset = EpisodeDataset.load(tiny_dataset)
    torch.manual_seed(0)
    model = WorldModel(
        tiny_config(action_block=1)
    ).eval()  # any model: the rate is distribution-free
    readout = None
    if read:  # any fixed map of the latents to task quantities
        readout = lm.Probe([torch.randn(model.config.latent_dim, 3)], [torch.zeros(3)])
    ids = dataset.episode_ids
    calibration, held_out = ids[::2], ids[1::2]
    threshold = calibrate_surprise(model, dataset, calibration, false_alarm=0.1,
                                   relative=relative, combine=combine,
                                   readout=readout)  # fmt: skip
    assert threshold.windows == 6 * 39 and threshold.value > threshold.median > 0
    assert (threshold.motion_offset is not None) == relative
    assert (threshold.distance_scale is not None) == combine
    assert threshold.readout == read
    scores = []
    for episode_id in held_out:
        episode = dataset.episode(int(episode_id))
        obs = torch.from_numpy(np.array(episode.pixels))
        actions = torch.from_numpy(episode.action[:-1].astype(np.float32))
        value, motion = surprise_and_motion(model, obs[:-1], actions, obs[1:], readout)
        scores.append(threshold.score(value.numpy(), motion.numpy()))
    rate = float(np.mean(np.concatenate(scores) > threshold.value))
    n = sum(len(s) for s in scores)
    assert abs(rate - 0.1) <= 3 * np.sqrt(0.1 * 0.9 / n) + 1 / threshold.windows


def test_calibrate_surprise_bootstraps_its_confidence_over_the_windows_episodes(tiny_dataset):
    dataset = EpisodeDataset.load(tiny_dataset)
    torch.manual_seed(0)
    model = WorldModel(tiny_config(action_block=1)).eval()
    ids = dataset.episode_ids
    plain = calibrate_surprise(model, dataset, ids, false_alarm=0.1)
    confident = calibrate_surprise(model, dataset, ids, false_alarm=0.1, confidence=0.9)
    assert confident.episodes == len(ids) and confident.confidence == 0.9
    assert confident.windows == plain.windows and confident.value >= plain.value
    with pytest.raises(ValueError, match=f"at least 10 calibration episodes, got {len(ids) // 2}"):
        calibrate_surprise(model, dataset, ids[::2], false_alarm=0.1, confidence=0.9)


def test_a_relative_threshold_alarms_as_often_in_fast_blocks_as_in_slow_ones():
    """Model error = a floor plus a share of the motion: a distance threshold alarms almost only
    in fast blocks, a relative one at the requested rate in slow and fast blocks alike."""
    rng = np.random.default_rng(0)
    motion = rng.uniform(0, 2, 20000)  # median 1
    error = (1 + motion) * rng.exponential(size=motion.size)
    distance = SurpriseThreshold.from_scores(error, 0.02)
    relative = SurpriseThreshold.from_scores(error, 0.02, motions=motion)
    assert relative.motion_offset == pytest.approx(1.0, abs=0.03)  # the median motion
    slow, fast = motion < 0.5, motion > 1.5
    assert (
        np.mean(error[slow] > distance.value) < 0.005 < 0.04 < np.mean(error[fast] > distance.value)
    )
    alarms = relative.score(error, motion) > relative.value
    assert 0.01 < np.mean(alarms[slow]) < 0.03 and 0.01 < np.mean(alarms[fast]) < 0.03
    with pytest.raises(ValueError, match="one per score"):
        SurpriseThreshold.from_scores(error, 0.02, motions=motion[:10])
    shaped = SurpriseThreshold.from_scores(error, 0.02, motions=motion, offset_scale=0.25,
                                           motion_power=0.5)  # fmt: skip
    assert shaped.motion_offset == pytest.approx(0.25 * relative.motion_offset)
    expected = error / np.sqrt(shaped.motion_offset + motion)
    np.testing.assert_allclose(shaped.score(error, motion), expected)
    assert np.mean(expected > shaped.value) == pytest.approx(0.02, abs=0.003)
    with pytest.raises(ValueError, match="offset_scale and motion_power must be > 0"):
        SurpriseThreshold.from_scores(error, 0.02, motions=motion, motion_power=0.0)


def test_a_confident_threshold_keeps_the_rate_under_the_asked_one_in_most_calibration_sets():
    """Over many calibration sets, the plain split-conformal threshold overshoots the asked
    rate about half the time; with ``confidence=0.9`` at most a tenth of the time (binomial
    noise over the sets), at a threshold a little higher."""
    rng = np.random.default_rng(0)
    sets, count, asked = 400, 500, 0.02
    rates: dict[float | None, list[float]] = {None: [], 0.9: []}
    for _ in range(sets):
        scores = rng.exponential(size=count)  # exceedance of t: exp(-t)
        for confidence in rates:
            threshold = SurpriseThreshold.from_scores(scores, asked, confidence=confidence)
            assert threshold.confidence == confidence
            rates[confidence].append(np.exp(-threshold.value))
    over = {c: np.mean(np.array(r) > asked) for c, r in rates.items()}
    assert over[0.9] <= 0.1 + 3 * np.sqrt(0.1 * 0.9 / sets)
    assert over[None] > 0.3
    assert np.mean(rates[None]) == pytest.approx(asked, abs=0.002)  # the marginal promise
    assert np.mean(rates[0.9]) < np.mean(rates[None])
    with pytest.raises(ValueError, match="needs at least 299 calibration scores, got 298"):
        SurpriseThreshold.from_scores(np.ones(298), 0.01, confidence=0.95)
    SurpriseThreshold.from_scores(np.ones(299), 0.01, confidence=0.95)  # enough
    with pytest.raises(ValueError, match="confidence must lie in"):
        SurpriseThreshold.from_scores(np.ones(299), 0.01, confidence=1.0)


def test_a_threshold_bootstrapped_over_episodes_holds_its_confidence_for_correlated_blocks():
    """Blocks of one episode share an offset (as closed-loop blocks do): the binomial bound,
    which takes them as independent, overshoots the asked rate far more often than its
    1 - confidence; resampling whole episodes comes near it."""
    rng = np.random.default_rng(0)
    sets, episodes, blocks, asked = 100, 100, 10, 0.05
    groups = np.repeat(np.arange(episodes), blocks)
    over: dict[str, list[bool]] = {"plain": [], "independent": [], "episodes": []}
    for index in range(sets):
        offsets = rng.normal(size=(episodes, 1))  # per episode
        scores = (offsets + rng.normal(size=(episodes, blocks))).reshape(-1)  # N(0, 2)
        options = {"plain": {}, "independent": {"confidence": 0.9},
                   "episodes": {"confidence": 0.9, "groups": groups, "seed": index}}  # fmt: skip
        for name, kwargs in options.items():
            threshold = SurpriseThreshold.from_scores(scores, asked, **kwargs)
            over[name].append(norm.sf(threshold.value / np.sqrt(2)) > asked)
    rate = {name: float(np.mean(values)) for name, values in over.items()}
    assert rate["episodes"] <= 0.1 + 3 * np.sqrt(0.1 * 0.9 / sets)
    assert rate["episodes"] < rate["independent"] < rate["plain"]
    assert rate["plain"] > 0.35
    threshold = SurpriseThreshold.from_scores(scores, asked, confidence=0.9, groups=groups)
    assert threshold.episodes == episodes and threshold.confidence == 0.9
    with pytest.raises(ValueError, match="at least 10 calibration episodes, got 9"):
        SurpriseThreshold.from_scores(scores, asked, confidence=0.9,
                                      groups=np.arange(scores.size) % 9)  # fmt: skip
    with pytest.raises(ValueError, match="one episode per score"):
        SurpriseThreshold.from_scores(scores, asked, confidence=0.9, groups=groups[:5])


def test_the_episode_bootstrap_reads_each_resampled_set_as_its_conformal_threshold():
    """The weighted read-off equals concatenating each resampled set and taking its
    split-conformal threshold, set by set, for the same draws."""
    rng = np.random.default_rng(1)
    values = rng.normal(size=137)
    groups = rng.integers(100, 115, size=137)  # episode labels need not be 0..E-1
    value, episodes = episode_bootstrap_threshold(values, groups, 0.05, 0.9, seed=3)
    _, members = np.unique(groups, return_inverse=True)
    draws = np.random.default_rng(3)
    thresholds = []
    for start in range(0, BOOTSTRAP_SETS, 250):
        for picked in draws.integers(0, episodes, (min(250, BOOTSTRAP_SETS - start), episodes)):
            resampled = np.concatenate([values[members == episode] for episode in picked])
            thresholds.append(conformal_threshold(resampled, 0.05))
    assert episodes == 15
    assert value == float(np.quantile(thresholds, 0.9, method="higher"))


def test_a_combined_threshold_sees_pushes_in_fast_blocks_and_in_slow_ones():
    """A push adds the same error to any block: the relative score misses it in fast blocks,
    the raw distance in slow ones; the combined score catches more of both than the score
    that misses them, at the requested false-alarm rate."""
    rng = np.random.default_rng(0)
    motion = rng.uniform(0, 2, 20000)
    error = (1 + motion) * rng.exponential(size=motion.size)
    thresholds = {
        "distance": SurpriseThreshold.from_scores(error, 0.02),
        "relative": SurpriseThreshold.from_scores(error, 0.02, motions=motion),
        "combined": SurpriseThreshold.from_scores(error, 0.02, motions=motion, combine=True),
    }
    test_motion = rng.uniform(0, 2, 20000)
    test_error = (1 + test_motion) * rng.exponential(size=test_motion.size)
    fast, slow = test_motion > 1.5, test_motion < 0.5
    caught = {}
    for name, threshold in thresholds.items():
        false_alarms = np.mean(threshold.score(test_error, test_motion) > threshold.value)
        assert abs(false_alarms - 0.02) < 3 * np.sqrt(0.02 * 0.98 / test_error.size), name
        pushed = threshold.score(test_error + 6.0, test_motion) > threshold.value
        caught[name] = (np.mean(pushed[fast]), np.mean(pushed[slow]))
    assert caught["combined"][0] > caught["relative"][0] + 0.1  # fast blocks
    assert caught["combined"][1] > caught["distance"][1] + 0.5  # slow blocks
    with pytest.raises(ValueError, match="needs the motions"):
        SurpriseThreshold.from_scores(error, 0.02, combine=True)


def drive(controller, teleport_at=None, steps=16):
    env = LinearEnv()
    obs, _ = env.reset()
    controller.reset(GOAL)
    actions = []
    pushes = {teleport_at} if isinstance(teleport_at, int) else set(teleport_at or ())
    for step in range(steps):
        if step in pushes:  # the world moves without the robot: a push
            env.x = env.x + np.array([0.3, 0.3], np.float32)
            obs = env.x.copy()
        action = controller.act(obs)
        actions.append(action)
        obs, *_ = env.step(action)
    return np.array(actions)


def test_a_perturbation_is_detected_at_the_next_block_and_replanned_from():
    monitor = SurpriseMonitor(threshold=1e-3)  # the model is exact: unperturbed surprise ~0
    with lm.MPCController(planner(), replan_every=4, monitor=monitor) as controller:
        drive(controller, teleport_at=None)
        assert controller.events == [] and len(controller.surprises) == 7
        assert max(block.surprise for block in controller.surprises) < 1e-5
        drive(controller, teleport_at=5)  # inside the block of steps 4-5
    assert [event.step for event in controller.events] == [6]
    assert controller.events[0].surprise == pytest.approx(0.3 * np.sqrt(2), rel=1e-4)
    assert controller.events[0].score == controller.events[0].surprise  # a number: no scaling
    assert [record.step for record in controller.plans] == [0, 4, 6, 10, 14]


def test_a_readout_measures_surprise_in_the_quantity_it_reads():
    # the push moves both coordinates by 0.3: read through the first alone, the surprise is 0.3
    monitor = SurpriseMonitor(threshold=1e-3, readout=lambda latents: latents[:, :1])
    with lm.MPCController(planner(), replan_every=4, monitor=monitor) as controller:
        drive(controller, teleport_at=5)
    assert [event.step for event in controller.events] == [6]
    assert controller.events[0].surprise == pytest.approx(0.3, rel=1e-4)


@pytest.mark.parametrize("alarm, events", [("every", [6, 8, 14]), ("onset", [6, 14])])
def test_onset_alarms_answer_a_run_of_surprising_blocks_once(alarm, events):
    monitor = SurpriseMonitor(1e-3, on_surprise=lambda event: None, alarm=alarm)
    with lm.MPCController(planner(), replan_every=4, monitor=monitor) as controller:
        drive(controller, teleport_at=(5, 7, 13), steps=18)  # blocks 4-5, 6-7, then 12-13
    assert [event.step for event in controller.events] == events
    scores = [block.score for block in controller.surprises]
    # the same events from the recorded trace
    assert [controller.surprises[i].step for i in monitor.alarms(scores)] == events


def test_hold_policy_stops_until_the_new_plan_and_a_callback_only_reports():
    seen = []
    monitor = SurpriseMonitor(SurpriseThreshold(1e-3, 0.01, 100, 0.0), on_surprise=seen.append)
    with lm.MPCController(planner(), replan_every=4, monitor=monitor) as controller:
        drive(controller, teleport_at=5)
    assert [event.step for event in seen] == [6] and controller.events == seen
    assert [record.step for record in controller.plans] == [0, 4, 8, 12]  # no extra replan
    hold = SurpriseMonitor(1e-3, on_surprise="hold")
    with lm.MPCController(planner(), replan_every=4, asynchronous=True, max_wait_s=None,
                          monitor=hold) as controller:  # fmt: skip
        actions = drive(controller, teleport_at=5)
        surprised = controller.plans[2]
    assert surprised.requested_step == 6 and surprised.step == 6
    np.testing.assert_array_equal(actions[6], surprised.result.actions[0])


def test_bad_monitor_settings_are_clear_errors():
    with pytest.raises(ValueError, match="finite and > 0"):
        SurpriseMonitor(float("nan"))
    with pytest.raises(ValueError, match="on_surprise"):
        SurpriseMonitor(1.0, on_surprise="panic")
    with pytest.raises(ValueError, match="alarm must be one of"):
        SurpriseMonitor(1.0, alarm="first")
    with pytest.raises(ValueError, match="readout must be None or a callable"):
        SurpriseMonitor(1.0, readout="probe")
    read = SurpriseThreshold(1.0, 0.01, 100, 0.5, readout=True)
    with pytest.raises(ValueError, match="calibrated through a readout, but the monitor has none"):
        SurpriseMonitor(read)
    with pytest.raises(ValueError, match="calibrated on latent distances, but the monitor has one"):
        SurpriseMonitor(SurpriseThreshold(1.0, 0.01, 100, 0.5), readout=lambda z: z)
    flat = SurpriseMonitor(1e-3, readout=lambda latents: latents[:, 0])  # (B,), not (B, F)
    with lm.MPCController(planner(), replan_every=4, monitor=flat) as controller:
        with pytest.raises(ValueError, match=r"must map \(1, D\) latents to a \(1, F\) tensor"):
            drive(controller)
    dataset_error = "false_alarm must lie in"
    with pytest.raises(ValueError, match=dataset_error):
        calibrate_surprise(None, None, [], false_alarm=1.5)
    with pytest.raises(ValueError, match="needs relative=True"):
        calibrate_surprise(None, None, [], relative=False, combine=True)
    with pytest.raises(ValueError, match="confidence must lie in"):
        calibrate_surprise(None, None, [], confidence=0.0)
