"""Which surprise score detects a perturbation best at a set false-alarm rate: score families
compared offline on the same closed-loop blocks.

For each env with a shipped model (or ``--model``, a model of one env), closed-loop MPC episodes
are run as ``benchmarks/surprise.py`` runs them (same pairs, same perturbations and perturbation
steps, CEM at the env's reference budget replanning every ``--replan-blocks`` blocks, the
planner reseeded per pair) but without a monitor, which does not change the actions while it
does not fire: ``--calibration-pairs`` unperturbed episodes on pairs from half of the held-out
episodes, ``--pairs`` unperturbed test episodes on pairs from the other half, and the same test
pairs perturbed once. Of every executed block it keeps three latents: the block's start, the
observation after it and the model's prediction of that one
(``lewm_mpc.surprise.predict_block``, from the frame history for a history model). Every score
below is then calibrated split-conformally at ``--false-alarm`` on the calibration blocks
(``SurpriseThreshold.from_scores`` of the score; with ``--confidence``, held at that confidence
by resampling the calibration episodes) and reports its false alarms per block on the
unperturbed test episodes (95% interval resampling episodes) and the perturbations it detects
within one block (Wilson 95% interval), as ``benchmarks/surprise.py`` counts them.

Scores, with ``r`` the residual (predicted - observed latent), ``m`` the predicted motion
(|predicted - start|) and ``M`` the median ``m`` of the calibration blocks:

- ``relative c=C g=G``: ``|r| / (C M + m)^G``; the library's relative score is C = 1, G = 1;
- ``distance``: ``|r|``, the raw surprise;
- ``combined``: the larger of the relative and the raw score, each over its calibration median
  (the library's ``combine=True``);
- ``innovation``: ``|r_t - r_{t-1}| / (M + m)``, the change of the residual since the previous
  block (``|r_t|`` at an episode's first block): a model's error that persists from block to
  block cancels, a push does not.

The recorded latents of each env are kept in ``<work>/surprise_scores_<env>[_<tag>].npz`` with
their settings; a rerun with the same settings only recomputes the scores.

    MUJOCO_GL=egl .venv/bin/python benchmarks/surprise_scores.py --envs reacher,pusht
    MUJOCO_GL=egl .venv/bin/python benchmarks/surprise_scores.py --envs cube \\
        --regenerated-episodes 400

Writes ``benchmarks/results/surprise_scores[_<tag>][_confidence<C>].{json,md}``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import lewm_mpc as lm
from lewm_mpc.atomic import atomic_write
from lewm_mpc.evaluation import EvalConfig, goal_observation, sample_pairs, wilson_interval
from lewm_mpc.planners.inputs import as_batch
from lewm_mpc.surprise import predict_block

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _results.py, surprise.py beside it
from _results import env_names, episode_bootstrap_rate, pair_seed, reference_cem, write_results
from surprise import perturbed

RELATIVE_OFFSETS = (0.25, 0.5, 1.0, 2.0, 4.0)  # C
RELATIVE_POWERS = (0.5, 1.0, 1.5, 2.0)  # G
SETS = ("calibration", "quiet", "perturbed")


@dataclass(frozen=True)
class Args:
    envs: str = ""  # comma-separated; "": every env with a shipped model
    pairs: int = 50  # test pairs, run unperturbed and perturbed
    calibration_pairs: int = 100
    false_alarm: float = 0.01
    confidence: float = 0.0  # > 0: thresholds held at it, bootstrapped over episodes (0: plain)
    first: int = 5  # earliest perturbation step
    last: int = 20  # latest perturbation step
    steps: int = 60  # env-step budget of an unperturbed episode
    replan_blocks: int = 5  # blocks executed per plan
    seed: int = 0
    regenerated_episodes: int = 0  # episodes of a shipped model's regenerated data (0: its own)
    model: str = ""  # a model directory instead of pretrained:<env> (one env)
    threads: int = 0  # torch threads (0: leave as is)
    out: Path = Path("benchmarks/results")
    work: Path = Path("runs/surprise_scores")
    tag: str = ""


@dataclass(frozen=True)
class Blocks:
    """The executed blocks of a set of episodes.

    Attributes:
        latents: (N, 3, D) start, observed and predicted latent of each block.
        episode: (N,) index of the block's episode.
        step: (N,) env step of the observation after the block.
        pushed_at: (E,) step of each episode's perturbation (-1: none).
    """

    latents: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    pushed_at: np.ndarray

    def residual(self) -> np.ndarray:
        return self.latents[:, 2] - self.latents[:, 1]  # (N, D)

    def motion(self) -> np.ndarray:
        return np.linalg.norm(self.latents[:, 2] - self.latents[:, 0], axis=1)  # (N,)


FIELDS = ("latents", "episode", "step", "pushed_at")  # Blocks' fields, as saved


def episode_blocks(model: Any, frames: list[np.ndarray], actions: np.ndarray) -> np.ndarray:
    """(K, 3, D) latents of the K blocks between K + 1 block-boundary ``frames``, given the
    (K * block, A) executed ``actions``; a history model predicts from the frames before."""
    obs, _ = as_batch(model, np.stack(frames), "frames")  # (K+1, *obs)
    count = len(frames) - 1
    blocks = torch.as_tensor(actions.reshape(count, -1), device=obs.device)  # (K, block*A)
    context = max(int(getattr(model, "history", 1)), 1) - 1
    rows = []
    for k in range(count):
        past = None
        if context and k:
            start = max(0, k - context)
            past = (obs[None, start:k], blocks[None, start:k])  # (1, C, *obs), (1, C, block*A)
        latents = predict_block(model, obs[k : k + 1], blocks[k : k + 1], obs[k + 1 : k + 2],
                                past)  # fmt: skip
        rows.append(torch.stack([z[0] for z in latents]).float().cpu().numpy())  # (3, D)
    return np.stack(rows)


def record(run: lm.Run, name: str, pairs: list, args: Args, push: bool, desc: str) -> Blocks:
    """Closed-loop episodes on ``pairs`` (each perturbed once when ``push``), as blocks."""
    spec = run.env_spec
    assert spec is not None
    model, block = run.model, run.model.action_block
    planner = reference_cem(run, args.seed)
    env = spec.make(obs_mode=run.obs_mode, env_config=run.dataset.meta.env_config)
    latents, episode, steps, pushed_at = [], [], [], []
    try:
        with lm.MPCController(planner, args.replan_blocks * block) as controller:
            for index, pair in enumerate(tqdm(pairs, desc=desc)):
                rng = np.random.default_rng([args.seed, index])  # surprise.py's draws
                at = int(rng.integers(args.first, args.last + 1)) if push else -1
                horizon = at + 2 * block if push else args.steps  # detection needs no more
                goal = goal_observation(env, pair.goal_state)
                obs, _ = env.reset(options={"state": pair.start_state,
                                            "goal": pair.goal_state})  # fmt: skip
                controller.reset(goal)
                planner.reset(seed=pair_seed(args.seed, index))
                frames, executed = [], []
                for step in range(horizon):
                    if step == at:
                        state = perturbed(name, env, env.unwrapped.get_state(), rng)
                        obs, _ = env.reset(options={"state": state, "goal": pair.goal_state})
                    if step % block == 0:  # the blocks a monitor measures: up to the last act
                        frames.append(np.asarray(obs).copy())
                    executed.append(controller.act(obs))
                    obs, *_ = env.step(executed[-1])
                whole = (len(frames) - 1) * block
                blocks = episode_blocks(model, frames, np.stack(executed[:whole]))
                latents.append(blocks)
                episode.append(np.full(len(blocks), index))
                steps.append(block * np.arange(1, len(blocks) + 1))
                pushed_at.append(at)
    finally:
        env.close()
    return Blocks(np.concatenate(latents), np.concatenate(episode), np.concatenate(steps),
                  np.array(pushed_at))  # fmt: skip


@dataclass(frozen=True)
class Score:
    """One score of the family (module docstring): ``kind`` is "relative" (with ``offset`` C
    and ``power`` G), "distance", "combined" or "innovation"."""

    kind: str
    offset: float = 1.0
    power: float = 1.0

    @property
    def name(self) -> str:
        if self.kind == "relative":
            return f"relative c={self.offset:g} g={self.power:g}"
        return self.kind

    def __call__(self, blocks: Blocks, scale: dict[str, float]) -> np.ndarray:
        """(N,) score of every block (``scale``: calibration medians, see the module)."""
        residual, motion = blocks.residual(), blocks.motion()
        distance = np.linalg.norm(residual, axis=1)
        if self.kind == "distance":
            return distance
        if self.kind == "combined":
            relative = distance / (scale["motion"] + motion)
            return np.maximum(relative / scale["relative"], distance / scale["distance"])
        if self.kind == "innovation":
            first = np.r_[True, blocks.episode[1:] != blocks.episode[:-1]]  # an episode's first
            previous = np.where(first[:, None], 0.0, np.roll(residual, 1, axis=0))
            return np.linalg.norm(residual - previous, axis=1) / (scale["motion"] + motion)
        return distance / (self.offset * scale["motion"] + motion) ** self.power


SCORES = (
    *(Score("relative", c, g) for c in RELATIVE_OFFSETS for g in RELATIVE_POWERS),
    Score("distance"),
    Score("combined"),
    Score("innovation"),
)


def compare(sets: dict[str, Blocks], block: int, args: Args) -> list[dict]:
    """Every score's threshold, false alarms and detections (module docstring)."""
    calibration = sets["calibration"]
    distance = np.linalg.norm(calibration.residual(), axis=1)
    median_motion = float(np.median(calibration.motion()))
    relative = distance / (median_motion + calibration.motion())
    scale = {
        "motion": median_motion,
        "distance": float(np.median(distance)),
        "relative": float(np.median(relative)),
    }
    rows = []
    for score in SCORES:
        calibrated = score(calibration, scale)
        threshold = lm.SurpriseThreshold.from_scores(
            calibrated, args.false_alarm, confidence=args.confidence or None,
            groups=calibration.episode, seed=args.seed).value  # fmt: skip
        quiet = sets["quiet"]
        alarms = score(quiet, scale) > threshold
        episodes = np.unique(quiet.episode)
        per_episode = [int(alarms[quiet.episode == e].sum()) for e in episodes]
        sizes = [int((quiet.episode == e).sum()) for e in episodes]
        pushed = sets["perturbed"]
        above = score(pushed, scale) > threshold
        at = pushed.pushed_at[pushed.episode]  # (N,)
        within = (pushed.step >= at) & (pushed.step < at + block)
        detected = len(np.unique(pushed.episode[above & within]))
        total = len(pushed.pushed_at)
        rows.append(
            {
                "score": score.name,
                "threshold": threshold,
                "false_alarm_rate": float(alarms.mean()),
                "false_alarm_ci95": list(episode_bootstrap_rate(per_episode, sizes, args.seed)),
                "blocks": len(alarms),
                "detection": detected / total,
                "detection_ci95": list(wilson_interval(detected, total)),
                "perturbed": total,
            }
        )
    return rows


def env_rows(name: str, args: Args) -> list[dict]:
    """Record (or reload) an env's blocks and compare the scores on them."""
    run = lm.load_run(args.model or f"pretrained:{name}", regenerate=True,
                      regenerated_episodes=args.regenerated_episodes or None)  # fmt: skip
    assert run.env_spec is not None
    unused = ("envs", "threads", "out", "work", "false_alarm", "confidence")  # not the episodes
    settings = json.dumps({k: str(v) for k, v in asdict(args).items() if k not in unused})
    kept = args.work / f"surprise_scores_{name}{'_' + args.tag if args.tag else ''}.npz"
    sets: dict[str, Blocks] = {}
    if kept.exists():
        with np.load(kept) as saved:
            if str(saved["settings"]) == settings:
                sets = {key: Blocks(*(saved[f"{key}_{field}"] for field in FIELDS)) for key in SETS}
    if not sets:
        calibration_ids, test_ids = run.val_ids[::2], run.val_ids[1::2]
        calibration, _ = sample_pairs(run.dataset, calibration_ids, run.env_spec,
                                      EvalConfig(num_pairs=args.calibration_pairs,
                                                 seed=args.seed + 1))  # fmt: skip
        test, _ = sample_pairs(run.dataset, test_ids, run.env_spec,
                               EvalConfig(num_pairs=args.pairs, seed=args.seed))  # fmt: skip
        sets = {"calibration": record(run, name, calibration, args, False, f"{name} calibration"),
                "quiet": record(run, name, test, args, False, f"{name} unperturbed"),
                "perturbed": record(run, name, test, args, True, f"{name} perturbed")}  # fmt: skip
        arrays = {f"{key}_{field}": getattr(blocks, field)
                  for key, blocks in sets.items() for field in FIELDS}  # fmt: skip
        with atomic_write(kept, ".npz") as tmp:
            np.savez(tmp, settings=np.array(settings), **arrays)
    rows = compare(sets, run.model.action_block, args)
    return [{"env": name, "model": args.model or f"pretrained:{name}", **row} for row in rows]


def main(args: Args) -> dict:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.model and len(env_names(args.envs)) != 1:
        raise SystemExit("--model: name its env with --envs (one env)")
    if not 0 < args.false_alarm < 1:
        raise SystemExit(f"--false-alarm must lie in (0, 1), got {args.false_alarm}")
    rows = [row for name in env_names(args.envs) for row in env_rows(name, args)]
    held = f"_confidence{round(100 * args.confidence)}" if args.confidence else ""
    return write_results(args.out, f"surprise_scores{'_' + args.tag if args.tag else ''}{held}",
                         args, rows, markdown)  # fmt: skip


def markdown(result: dict) -> str:
    args = result["args"]
    lines = [
        "Surprise scores compared offline on the same closed-loop blocks (module docstring of "
        "`benchmarks/surprise_scores.py`): each calibrated split-conformally for "
        f"{float(args['false_alarm']):.0%} false alarms per block"
        + (
            f" with {float(args['confidence']):.0%} confidence (thresholds bootstrapped over the "
            "calibration episodes)"
            if float(args.get("confidence", 0))
            else ""
        )
        + f" on {args['calibration_pairs']} unperturbed calibration episodes; false alarms on "
        f"{args['pairs']} unperturbed test episodes (95% CI resampling episodes), detection within "
        "one block of one perturbation in each of the same test pairs (teleport / shove / cube "
        "moved, as `benchmarks/surprise.py`). Best detection at or under the asked rate in "
        "bold. `relative c=1 g=1` is the library's default score, `combined` its "
        "`combine=True`.",
        "",
    ]
    for env in dict.fromkeys(row["env"] for row in result["rows"]):
        rows = [row for row in result["rows"] if row["env"] == env]
        asked = float(args["false_alarm"])
        within = [row["detection"] for row in rows if row["false_alarm_rate"] <= asked]
        best = max(within, default=None)
        lines += [f"### {env} ({rows[0]['model']}, {rows[0]['blocks']} unperturbed test blocks, "
                  f"{rows[0]['perturbed']} perturbations)", "",
                  "| score | threshold | false alarms per block (95% CI) | detected within one "
                  "block (95% CI) |", "|---|---|---|---|"]  # fmt: skip
        for row in rows:
            low, high = row["false_alarm_ci95"]
            detection = f"{row['detection']:.0%}"
            if best is not None and row["detection"] == best and row["false_alarm_rate"] <= asked:
                detection = f"**{detection}**"
            dlow, dhigh = row["detection_ci95"]
            lines.append(f"| {row['score']} | {row['threshold']:.3g} | "
                         f"{row['false_alarm_rate']:.2%} ({low:.1%}-{high:.1%}) | "
                         f"{detection} ({dlow:.0%}-{dhigh:.0%}) |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    from _cli import parse_args

    main(parse_args(Args, __doc__))
