"""Surprise monitor under perturbations: detection, false alarms, and success with and without it.

For each env with a shipped model (or ``--model``, a model of one env): the surprise threshold
is calibrated split-conformally (``SurpriseThreshold.from_scores``, false-alarm rate
``--false-alarm`` per block) on the surprises of unperturbed closed-loop episodes
(``--calibration-pairs`` pairs from half of the held-out episodes; the threshold of one-block
data windows, ``lm.calibrate_surprise``, is recorded beside it); test pairs (goal 25 steps
ahead) come from the other half. Each pair's episode is perturbed once, at a seeded step in
``[--first, --last]``: the world moves without the robot (Two-Room, point mass, Reacher: the
agent teleported to a random state; PushT: the block shoved 40-80 px and turned 20-60 degrees;
Cube: the cube moved 4-8 cm on the table).
The same pairs and perturbations run with the monitor (replan at once on surprise) and
without it (the planned queue continues until its next scheduled replan), synchronously, with
CEM at the env's reference budget, replanning every ``--replan-blocks`` blocks: 5 by default,
LeWorldModel's receding horizon (a plan's 5 blocks run open loop), where a perturbation
otherwise goes unanswered for up to 4 blocks; with 1 (every block replans, the envs' reference)
the monitor cannot change what the robot does.

Reported: detection rate within one block of the perturbation; false alarms per 1000 env steps
(and per block, with a 95% interval that resamples whole episodes) of the test pairs run
unperturbed for the whole budget, the conditions the threshold was calibrated in
(``--quiet-pairs`` of them, at least ``--pairs``: the perturbed pairs are their first ones),
and separately in the steps before the perturbation of the perturbed runs (the first ``--last``
steps, where the robot moves most); success after the perturbation with and without the
monitor (95% CIs) and the steps from the perturbation to success. A teleport moves the task
state at least ``MIN_JUMP`` success radii (goal-feature distance 2).

The score is the surprise relative to the block's predicted motion (``--score relative``, the
library's default; ``SurpriseThreshold`` explains it), the raw latent distance (``--score
distance``) or the larger of both in units of their medians (``--score combined``); another
score's threshold and false alarms (the raw distance's, or for ``distance`` the relative
score's), from the same episodes, are recorded beside it.

``--readout probe`` measures surprise and motion through a linear probe of what the
perturbation moves (``SurpriseMonitor.readout``), fitted on the model's training episodes:
PushT's block position, the other envs' probe targets (Cube: the cube position; the teleport
envs: the agent's state).

``--readout whiten`` measures them in units of the model's own one-block prediction error
(latents whitened by the covariance of one-block residuals on 2000 training windows): the
Mahalanobis distance of the residual, which weighs a move along latent directions the model
normally predicts well (a cube the arm does not touch) above the same distance along the arm's
own. Measured, it detects fewer pushes than the latent distance (PushT 86% at 0.4% false alarms
per block, Cube 56% at 1.5%).

``--pair-seeds true`` reseeds the planner at every pair (from ``--seed`` and the pair's index), so a
pair's runs with and without the monitor plan with the same random draws until the monitor
first changes what the robot does: success with and without it is then a paired comparison
(without it, the planner's stream runs on across pairs and the two runs of a pair differ by
their draws as well).

``--alarm onset`` raises one event per run of blocks above the threshold
(``SurpriseMonitor(alarm="onset")``), in the controller and in the false-alarm count.

Cube's shipped model regenerates too few held-out episodes for 100 calibration pairs: pass
``--regenerated-episodes`` (e.g. 400; collected once into the regenerated-data cache).

Each finished env is kept in ``<work>/surprise_<env>[_<tag>].json``; a rerun with the same
settings skips it. The calibration needs many episodes: a block's surprise is correlated with its
neighbours', so 30 calibration pairs (330 block scores) put the point mass's threshold at 2.86
and gave 6.0% false alarms per block on other episodes, 100 pairs (1100 scores) 3.81 and 1.3%.

    MUJOCO_GL=egl .venv/bin/python benchmarks/surprise.py      # 5-20 min per env on one core
    MUJOCO_GL=egl .venv/bin/python benchmarks/surprise.py --envs tworoom --pairs 10

Writes ``benchmarks/results/surprise[_<tag>].{json,md}``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.conformal import MIN_BOOTSTRAP_EPISODES
from lewm_mpc.envs import get_env_spec
from lewm_mpc.envs.cube import CUBE_POS
from lewm_mpc.evaluation import EvalConfig, goal_observation, sample_pairs, wilson_interval
from lewm_mpc.surprise import predict_block
from lewm_mpc.surprise_windows import block_windows

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _results.py beside this file
from _results import env_names, episode_bootstrap_rate, pair_seed, reference_cem, write_results

SCORES = ("relative", "distance", "combined")
READOUTS = ("latent", "probe", "whiten")


@dataclass(frozen=True)
class Args:
    envs: str = ""  # comma-separated; "": every env with a shipped model
    pairs: int = 50
    quiet_pairs: int = 0  # unperturbed test pairs for the false-alarm rate (0: --pairs)
    calibration_pairs: int = 100
    false_alarm: float = 0.01
    confidence: float = 0.0  # > 0: the rate holds with this probability, bootstrapped over
    # the calibration episodes (0: on average)
    offset_scale: float = 1.0  # relative score: surprise / (C * median motion + motion) ** G
    motion_power: float = 1.0  # G
    first: int = 5  # earliest perturbation step
    last: int = 20  # latest perturbation step
    steps: int = 60  # env-step budget per pair
    replan_blocks: int = 5  # blocks executed per plan (LeWorldModel's receding horizon)
    seed: int = 0
    pair_seeds: bool = False  # reseed the planner per pair: on / off runs of a pair draw alike
    regenerated_episodes: int = 0  # episodes of a shipped model's regenerated data (0: its own)
    alarm: str = "every"  # SurpriseMonitor.alarm: "every" block above the threshold, "onset"
    score: str = "relative"  # "relative" to the predicted motion, raw "distance", or "combined"
    readout: str = "latent"  # "latent" space, a linear "probe" or the residuals' "whiten"ing
    model: str = ""  # a model directory instead of pretrained:<env> (one env; the same pairs)
    threads: int = 0  # torch threads (0: leave as is)
    out: Path = Path("benchmarks/results")
    work: Path = Path("runs/surprise")  # one finished env per file; a rerun skips those
    tag: str = ""  # output name suffix: surprise_<tag>


def perturbed(name: str, env: Any, state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The state after an unmodelled push (see the module docstring)."""
    state = state.copy()
    if name == "pusht":
        heading = rng.uniform(0, 2 * np.pi)
        shove = rng.uniform(40, 80) * np.array([np.cos(heading), np.sin(heading)])
        state[2:4] = np.clip(state[2:4] + shove, 100, 412)
        state[4] += rng.choice([-1, 1]) * np.deg2rad(rng.uniform(20, 60))
        state[5:] = 0.0
        return state
    if name == "cube":
        heading = rng.uniform(0, 2 * np.pi)
        shift = rng.uniform(0.04, 0.08) * np.array([np.cos(heading), np.sin(heading)])
        state[CUBE_POS.start : CUBE_POS.start + 2] += shift
        return state
    # Teleport: a random state at least MIN_JUMP success radii (in goal features) away, so that
    # the push is one the task notices (a state next to the old one is no perturbation).
    spec = get_env_spec(name)
    before = spec.goal_features(state)
    for _ in range(1000):
        moved = env.unwrapped.sample_state(rng)
        if np.linalg.norm(spec.goal_features(moved) - before) >= MIN_JUMP:
            return moved
    raise RuntimeError(f"no {name} state {MIN_JUMP} success radii away in 1000 draws")


MIN_JUMP = 2.0  # success radii (goal-feature distance) a teleport moves the task state at least


def make_readout(run: lm.Run, name: str, args: Args) -> lm.Probe | Whitening | None:
    """``--readout``: a linear probe of what the perturbation moves, or the whitening of the
    model's one-block residuals, fitted on the training episodes (module docstring)."""
    if args.readout == "latent":
        return None
    if args.readout == "whiten":
        return residual_whitening(run, args.seed)
    from lewm_mpc.energies import fit_probe_from_dataset

    if name == "pusht":  # the block's position (its probe target holds the agent's too)
        target = lambda states: np.asarray(states, np.float64)[..., 2:4]  # noqa: E731
    else:
        target = get_env_spec(name).probe.read
    return fit_probe_from_dataset(run.model, run.dataset, run.train_ids, target, kind="linear",
                                  seed=args.seed)  # fmt: skip


@dataclass(frozen=True, eq=False)
class Whitening:
    """``--readout whiten``: latents times the inverse square root of the covariance of the
    model's one-block prediction residuals (a Mahalanobis distance between latents)."""

    matrix: torch.Tensor  # (D, D)

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        return latents @ self.matrix


def residual_whitening(run: lm.Run, seed: int, windows: int = 2000,
                       shrinkage: float = 0.01) -> Whitening:  # fmt: skip
    """The :class:`Whitening` of the residuals (predicted minus encoded latent) of at most
    ``windows`` one-block windows of the training episodes; the covariance is shrunk toward its
    mean variance by ``shrinkage`` so that directions of almost no error are not amplified
    without bound."""
    model, residuals = run.model, []
    for window in block_windows(model, run.dataset, run.train_ids, windows, seed=seed):
        _, observed, predicted = predict_block(model, window.before, window.actions,
                                               window.after, window.past)  # fmt: skip
        residuals.append(predicted - observed)  # (B, D)
    residual = torch.cat(residuals).double().cpu()  # (N, D)
    covariance = torch.cov(residual.T)  # (D, D)
    dim = covariance.shape[0]
    target = torch.eye(dim, dtype=covariance.dtype) * covariance.trace() / dim
    values, vectors = torch.linalg.eigh((1 - shrinkage) * covariance + shrinkage * target)
    matrix = vectors @ torch.diag(values.rsqrt()) @ vectors.T  # (D, D)
    return Whitening(matrix.to(device=model.device, dtype=torch.float32))


def closed_loop_surprises(
    run: lm.Run, pairs: list, name: str, args: Args, readout: lm.Probe | Whitening | None
) -> list[np.ndarray]:
    """Per episode, the (blocks, 2) surprise and predicted motion of every block of unperturbed
    MPC episodes on ``pairs`` (run for the whole budget, at the goal too: the conformal
    quantile needs more than ``1 / false_alarm`` scores)."""
    spec = run.env_spec
    assert spec is not None
    record = lm.SurpriseMonitor(threshold=float(np.finfo(np.float32).max),
                                on_surprise=lambda event: None, readout=readout)  # fmt: skip
    env = spec.make(obs_mode=run.obs_mode, env_config=run.dataset.meta.env_config)
    scores: list[np.ndarray] = []
    try:
        planner = reference_cem(run, args.seed)
        every = args.replan_blocks * run.model.action_block
        with lm.MPCController(planner, every, monitor=record) as controller:
            for pair in tqdm(pairs, desc=f"{name} calibration"):
                goal = goal_observation(env, pair.goal_state)
                obs, info = env.reset(options={"state": pair.start_state,
                                               "goal": pair.goal_state})  # fmt: skip
                lm.run_loop(
                    env,
                    controller,
                    obs,
                    info,
                    goal,
                    rate_hz=None,
                    steps=args.steps,
                    stop_on_success=False,
                )  # every block of the budget: n >= 1 / alpha
                scores.append(np.array([(block.surprise, block.motion)
                                        for block in controller.surprises]))  # fmt: skip
    finally:
        env.close()
    return scores


def run_pairs(run: lm.Run, pairs: list, name: str, args: Args,
              monitor: lm.SurpriseMonitor | None) -> dict:  # fmt: skip
    spec = run.env_spec
    assert spec is not None
    planner = reference_cem(run, args.seed)
    block = run.model.action_block
    env = spec.make(obs_mode=run.obs_mode, env_config=run.dataset.meta.env_config)
    detected, alarms, quiet_steps, successes, recovery = 0, 0, 0, [], []
    try:
        every = args.replan_blocks * block
        with lm.MPCController(planner, every, monitor=monitor) as controller:
            for index, pair in enumerate(tqdm(pairs, desc=f"{name} {'on' if monitor else 'off'}")):
                rng = np.random.default_rng([args.seed, index])
                at = int(rng.integers(args.first, args.last + 1))
                goal = goal_observation(env, pair.goal_state)
                obs, info = env.reset(options={"state": pair.start_state,
                                               "goal": pair.goal_state})  # fmt: skip
                controller.reset(goal)
                if args.pair_seeds:  # the same draws with and without the monitor
                    planner.reset(seed=pair_seed(args.seed, index))
                success_after = False
                for step in range(args.steps):
                    if step == at:
                        state = perturbed(name, env, env.unwrapped.get_state(), rng)
                        obs, info = env.reset(options={"state": state, "goal": pair.goal_state})
                    obs, _, _, _, info = env.step(controller.act(obs))
                    if step >= at and info["success"]:
                        success_after = True
                        break
                successes.append(success_after)
                recovery.append(step + 1 - at if success_after else None)
                if monitor is not None:
                    events = [event.step for event in controller.events]
                    # The block holding the push ends at the first block boundary >= at.
                    detected += any(at <= s < at + block for s in events)
                    alarms += sum(s < at for s in events)
                    quiet_steps += at
    finally:
        env.close()
    wins = int(np.sum(successes))
    row: dict[str, Any] = {"monitor": monitor is not None, "pairs": len(pairs),
                           "success_after": wins / len(pairs),
                           "ci95": list(wilson_interval(wins, len(pairs))),
                           "steps_after": recovery}  # fmt: skip
    if monitor is not None:
        row.update(detection=detected / len(pairs),
                   detection_ci95=list(wilson_interval(detected, len(pairs))),
                   false_alarms=alarms, unperturbed_steps=quiet_steps,
                   false_alarms_per_1000_steps=1000 * alarms / max(quiet_steps, 1),
                   false_alarm_rate_per_block=alarms * block / max(quiet_steps, 1))  # fmt: skip
    return row


def main(args: Args) -> dict:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.score not in SCORES:
        raise SystemExit(f"--score: one of {SCORES}, got {args.score!r}")
    if args.readout not in READOUTS:
        raise SystemExit(f"--readout: one of {READOUTS}, got {args.readout!r}")
    if args.model and len(env_names(args.envs)) != 1:
        raise SystemExit("--model: name its env with --envs (one env)")
    rows = []
    settings = {k: str(v) for k, v in asdict(args).items()
                if k not in ("envs", "threads", "out", "work")}  # fmt: skip
    for name in env_names(args.envs):
        done = args.work / f"surprise_{name}{'_' + args.tag if args.tag else ''}.json"
        finished = json.loads(done.read_text()) if done.exists() else None
        if finished is not None and finished["settings"] == settings:
            rows.extend(finished["rows"])  # finished before: not rerun
            continue
        env_rows = env_surprise(name, args)
        args.work.mkdir(parents=True, exist_ok=True)
        write_text_atomic(done, json.dumps({"settings": settings, "rows": env_rows}))
        rows.extend(env_rows)
    return write_results(args.out, f"surprise{'_' + args.tag if args.tag else ''}", args, rows,
                         markdown)  # fmt: skip


def false_alarm_rate(quiet: list[np.ndarray], monitor: lm.SurpriseMonitor, args: Args,
                     block: int) -> dict:  # fmt: skip
    """Alarms of ``monitor`` on unperturbed episodes (each (blocks, 2) surprise, motion)."""
    threshold = monitor.threshold
    assert isinstance(threshold, lm.SurpriseThreshold)
    checker = dataclasses.replace(monitor, alarm=args.alarm)
    per_episode = [len(checker.alarms(threshold.score(e[:, 0], e[:, 1]))) for e in quiet]
    sizes = [len(episode) for episode in quiet]
    alarms, blocks = sum(per_episode), sum(sizes)
    return {"episodes": len(quiet), "blocks": blocks, "false_alarms": alarms,
            "false_alarms_per_1000_steps": 1000 * alarms / (block * blocks),
            "false_alarm_rate_per_block": alarms / blocks,
            "rate_ci95": list(episode_bootstrap_rate(per_episode, sizes, args.seed))}  # fmt: skip


def env_surprise(name: str, args: Args) -> list[dict]:
    """The rows of one env: monitor on, then off."""
    rows = []
    # regenerated held-out episodes either way: a model of the same env and data policy gets
    # the shipped one's pairs
    run = lm.load_run(args.model or f"pretrained:{name}", regenerate=True,
                      regenerated_episodes=args.regenerated_episodes or None)  # fmt: skip
    assert run.env_spec is not None
    calibration, test = run.val_ids[::2], run.val_ids[1::2]
    readout = make_readout(run, name, args)
    # the data windows' threshold, for comparison: bootstrapped only over enough episodes
    enough = len(calibration) >= MIN_BOOTSTRAP_EPISODES
    window_confidence = args.confidence or None if enough else None
    windows = lm.calibrate_surprise(run.model, run.dataset, calibration,
                                    relative=args.score != "distance",
                                    combine=args.score == "combined", readout=readout,
                                    false_alarm=args.false_alarm, seed=args.seed,
                                    confidence=window_confidence, offset_scale=args.offset_scale,
                                    motion_power=args.motion_power)  # fmt: skip
    calibration_pairs, _ = sample_pairs(run.dataset, calibration, run.env_spec, EvalConfig(
        num_pairs=args.calibration_pairs, seed=args.seed + 1))  # fmt: skip
    episodes = closed_loop_surprises(run, calibration_pairs, name, args, readout)
    measured = np.concatenate(episodes)
    surprises, motions = measured[:, 0], measured[:, 1]  # (blocks,) each
    groups = np.repeat(np.arange(len(episodes)), [len(e) for e in episodes])  # block's episode
    read = readout is not None

    def calibrated(motions: np.ndarray | None = None, combine: bool = False) -> lm.SurpriseMonitor:
        threshold = lm.SurpriseThreshold.from_scores(
            surprises, args.false_alarm, motions, combine=combine, readout=read,
            confidence=args.confidence or None, groups=groups, seed=args.seed,
            offset_scale=args.offset_scale, motion_power=args.motion_power)  # fmt: skip
        return lm.SurpriseMonitor(threshold, alarm=args.alarm, readout=readout)

    by_score = {"relative": calibrated(motions), "distance": calibrated(),
                "combined": calibrated(motions, combine=True)}  # fmt: skip
    monitor = by_score[args.score]
    threshold = monitor.threshold
    other = "distance" if args.score != "distance" else "relative"
    quiet_pairs = max(args.quiet_pairs, args.pairs)
    pairs, _ = sample_pairs(run.dataset, test, run.env_spec,
                            EvalConfig(num_pairs=quiet_pairs, seed=args.seed))  # fmt: skip
    # False alarms in normal operation: unperturbed test episodes, whole budget (the
    # calibration episodes' conditions, on other pairs); pairs are a prefix-stable sample, so
    # the perturbed pairs are the first ``--pairs`` of them.
    quiet = closed_loop_surprises(run, pairs, f"{name} unperturbed", args, readout)
    pairs = pairs[: args.pairs]
    block = run.model.action_block
    unperturbed = false_alarm_rate(quiet, monitor, args, block)
    compared = {"score": other, "threshold": asdict(by_score[other].threshold),
                "unperturbed": false_alarm_rate(quiet, by_score[other], args, block)}  # fmt: skip
    probe = {"readout_r2": list(readout.r2)} if isinstance(readout, lm.Probe) else {}
    for used in (monitor, None):
        row = {"env": name, "model": args.model or f"pretrained:{name}",
               "threshold": asdict(threshold), **probe,
               "data_window_threshold": asdict(windows),
               **({"unperturbed": unperturbed, "other_score": compared} if used else {}),
               **run_pairs(run, pairs, name, args, used)}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def recovery_steps(rows: list[dict]) -> dict[int, str]:
    """Per row index: mean env steps from the perturbation to success, over the pairs that
    succeed both with and without the monitor of the same env (paired), or "-"."""
    cells: dict[int, str] = {}
    for index, row in enumerate(rows):
        other = next((o for o in rows if o["env"] == row["env"] and o is not row), None)
        if other is None or "steps_after" not in row or "steps_after" not in other:
            cells[index] = "-"
            continue
        both = [a for a, b in zip(row["steps_after"], other["steps_after"], strict=True)
                if a is not None and b is not None]  # fmt: skip
        cells[index] = f"{np.mean(both):.1f} ({len(both)} pairs)" if both else "-"
    return cells


def markdown(result: dict) -> str:
    own_models = sorted({row.get("model", "") for row in result["rows"]} - {""})
    own_models = [model for model in own_models if not model.startswith("pretrained:")]
    confidence = float(result["args"].get("confidence", 0))
    lines = [
        "One unmodelled perturbation per episode (teleport / shove / cube moved) at a seeded "
        f"step; CEM replanning every {result['args'].get('replan_blocks', 1)} blocks; "
        "threshold calibrated split-conformally on other held-out episodes for a "
        f"false-alarm rate of {float(result['args']['false_alarm']):.0%} per block"
        + (f" with {confidence:.0%} confidence (over calibration sets); " if confidence else "; ")
        + (
            "an alarm at the onset of each run of blocks above it. "
            if result["args"].get("alarm") == "onset"
            else "an alarm at every block above it. "
        )
        + "Success counts only after the perturbation; steps to it are averaged over the pairs "
        "that succeed both with and without the monitor. False-alarm intervals resample whole "
        "episodes (an episode's blocks are correlated).",
        "",
        "".join(f"Model: `{model}`. " for model in own_models)
        + f"Score: {score_words(result['args'].get('score', 'distance'))}"
        + shape_words(result["args"])
        + (
            "; surprise and motion measured through a linear probe of what the perturbation "
            "moves (PushT: block xy in px; Cube: cube xyz in m; the others: the agent's state), "
            "fitted on the training episodes."
            if result["args"].get("readout") == "probe"
            else "; surprise and motion measured in units of the model's one-block prediction "
            "error (latents whitened by the residual covariance of the training episodes: a "
            "Mahalanobis distance)."
            if result["args"].get("readout") == "whiten"
            else "."
        ),
        "",
        "| env | monitor | threshold (median score) | detected within one block | false alarms "
        "per 1000 unperturbed steps (per block, 95% CI) | before the perturbation | success after "
        "the perturbation | steps from the perturbation to success |",
        "|---|---|---|---|---|---|---|---|",
    ]
    steps = recovery_steps(result["rows"])
    for index, row in enumerate(result["rows"]):
        low, high = row["ci95"]
        success = f"{100 * row['success_after']:.0f}% ({100 * low:.0f}-{100 * high:.0f})"
        threshold = f"{row['threshold']['value']:.3g} ({row['threshold']['median']:.3g})"
        if row["monitor"]:
            d_low, d_high = row["detection_ci95"]
            detection = f"{100 * row['detection']:.0f}% ({100 * d_low:.0f}-{100 * d_high:.0f})"
            quiet = row["unperturbed"]
            interval = quiet.get("rate_ci95")
            interval = ("" if interval is None else
                        f", {100 * interval[0]:.1f}-{100 * interval[1]:.1f}%")  # fmt: skip
            alarms = (f"{quiet['false_alarms_per_1000_steps']:.1f} "
                      f"({100 * quiet['false_alarm_rate_per_block']:.1f}%{interval}), "
                      f"{quiet['blocks']} blocks")  # fmt: skip
            early = (f"{row['false_alarms_per_1000_steps']:.1f} "
                     f"({100 * row['false_alarm_rate_per_block']:.1f}%)")  # fmt: skip
            lines.append(f"| {row['env']} | on | {threshold} | {detection} | {alarms} | "
                         f"{early} | {success} | {steps[index]} |")  # fmt: skip
        else:
            lines.append(f"| {row['env']} | off | - | - | - | - | {success} | {steps[index]} |")
    compared = [row for row in result["rows"] if "other_score" in row]
    if compared:
        other = compared[0]["other_score"]["score"]
        lines += [
            "",
            "The same unperturbed episodes, with a threshold on the "
            f"{score_words(other, result['args'].get('readout', 'latent'))} "
            "calibrated on the same episodes:",
            "",
            "| env | threshold | false alarms per block (95% CI) |",
            "|---|---|---|",
        ]
        for row in compared:
            quiet = row["other_score"]["unperturbed"]
            low, high = quiet["rate_ci95"]
            lines.append(f"| {row['env']} | {row['other_score']['threshold']['value']:.3g} | "
                         f"{100 * quiet['false_alarm_rate_per_block']:.1f}% "
                         f"({100 * low:.1f}-{100 * high:.1f}) |")  # fmt: skip
    return "\n".join(lines) + "\n"


def shape_words(args: dict) -> str:
    """The relative score's shape when it is not the library's default, else ""."""
    scale, power = float(args.get("offset_scale", 1)), float(args.get("motion_power", 1))
    if (scale, power) == (1.0, 1.0) or args.get("score") == "distance":
        return ""
    return f", with the relative part surprise / ({scale:g} median motion + motion)^{power:g}"


def score_words(score: str, readout: str = "latent") -> str:
    space = {"latent": "latent distance", "probe": "distance through the probe",
             "whiten": "whitened latent distance"}[readout]  # fmt: skip
    return {"relative": "surprise relative to the predicted motion, surprise / (median motion + "
            "motion)", "distance": f"raw surprise ({space})",
            "combined": "the larger of the raw and the relative score, each in units of its "
            "calibration median"}[score]  # fmt: skip


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
