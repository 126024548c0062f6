"""Asynchronous control at a fixed rate against synchronous control at zero latency.

For each env with a shipped model (``pretrained:<env>``), the same held-out pairs (regenerated,
seed 0) are run twice with CEM at the env's reference budget (``--planner default``: CEM at its
own defaults, ``lm.CEM(wm)``):

- **synchronous, zero latency**: ``MPCController(planner)`` in an unpaced ``run_loop`` (the env
  waits for every plan: the protocol of every success number in this repo);
- **asynchronous at ``--rate-hz``**: ``MPCController(planner, asynchronous=True)`` in
  ``run_loop(rate_hz=...)``: the env advances one step per period on the wall clock whether or
  not a plan is ready; each plan is made for the step it takes effect (latency compensation)
  and must be ready within ``replan_every`` periods (its deadline: that time minus a 20%
  margin; the planner stops iterating before an iteration that would not fit);
- **latency-compensated, unpaced** (``--modes compensated``): the asynchronous controller with
  ``max_wait_s=None`` in an unpaced loop, without a deadline: each plan starts from the model's
  prediction of the latent where it takes effect, as asynchronously, but is awaited at full
  budget. Against the synchronous row it isolates what starting from a predicted latent costs;
  against the asynchronous row, what the deadline and the clock cost.

``--reanchor-ms 0,R`` adds, per asynchronous mode, a row that re-anchors every plan made ahead
when it takes effect (``MPCController(reanchor_s=R / 1000, reanchor_by=...)``): within R ms from
the observation of that step, L-BFGS steps on the plan (``--reanchor-by gradient``, the
controller's default) or a replan warm-started with it (``--reanchor-by replan``), so its first
block starts from the observed latent rather than the predicted one.

Reported per env and mode: success (95% CI), steps to success, and for the asynchronous loop the
missed periods, how late plans took effect (env steps), fallback steps and ``act`` latency (after
the first act of a pair, which waits for the first plan, made at rest).

    MUJOCO_GL=egl .venv/bin/python benchmarks/async_control.py          # ~30 min on 2 cores
    MUJOCO_GL=egl .venv/bin/python benchmarks/async_control.py --envs tworoom --pairs 10

Writes ``benchmarks/results/async_control[_<tag>].{json,md}``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import lewm_mpc as lm
from lewm_mpc.controller import REANCHORS
from lewm_mpc.evaluation import EvalConfig, goal_observation, sample_pairs, wilson_interval
from lewm_mpc.planners.base import REFINE_STEPS

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _results.py beside this file
from _results import env_names, reference_cem, write_results


@dataclass(frozen=True)
class Args:
    envs: str = ""  # comma-separated; "": every env with a shipped model
    pairs: int = 50
    rate_hz: float = 10.0
    steps: int = 50  # env-step budget per pair
    margin: float = 0.2  # fraction of the replanning interval kept free of planning
    reanchor_ms: str = "0"  # comma-separated; asynchronous rows re-anchor plans made ahead (0: off)
    reanchor_by: str = "gradient"  # MPCController.reanchor_by: "gradient" or "replan"
    reanchor_steps: int = REFINE_STEPS  # MPCController.reanchor_steps: L-BFGS evaluations at most
    modes: str = "sync,async"  # comma-separated: sync, async, compensated
    model: str = ""  # a model directory instead of pretrained:<env> (one env; same pairs)
    seed: int = 0
    planner_seed: int = -1  # the planners' seed (-1: --seed); pairs always come from --seed
    planner: str = "reference"  # reference: CEM 300 x 30 (the env's budget); default: lm.CEM()
    threads: int = 0  # torch threads (0: leave as is)
    out: Path = Path("benchmarks/results")
    tag: str = ""  # output name suffix: async_control_<tag>


MODES = ("sync", "async", "compensated")
PLANNER_NAMES = {
    "reference": "CEM at each env's reference budget",
    "default": "CEM at its defaults (`lm.CEM(wm)`)",
}


def run_mode(run: lm.Run, spec: Any, pairs: list, args: Args, mode: str,
             reanchor_ms: float = 0.0) -> dict:  # fmt: skip
    """One mode (one of ``MODES``) on every pair: success and loop statistics; asynchronous
    modes re-anchor plans made ahead within ``reanchor_ms`` (0: not)."""
    seed = args.seed if args.planner_seed < 0 else args.planner_seed
    if args.planner not in ("reference", "default"):
        raise ValueError(f"--planner must be reference or default, got {args.planner!r}")
    planner = (
        reference_cem(run, seed) if args.planner == "reference" else lm.CEM(run.model, seed=seed)
    )
    replan_every = spec.budget.receding_horizon * run.model.action_block
    paced = mode == "async"
    deadline = (1 - args.margin) * replan_every / args.rate_hz if paced else None
    env = spec.make(obs_mode=run.obs_mode, env_config=run.dataset.meta.env_config)
    successes, steps, missed, late, fallback, act_ms, plan_ms = [], [], 0, [], 0, [], []
    reanchor = reanchor_ms / 1000 if reanchor_ms > 0 and mode != "sync" else None
    controller = lm.MPCController(planner, asynchronous=mode != "sync", deadline_s=deadline,
                                  max_wait_s=0.0 if paced else None,
                                  reanchor_s=reanchor, reanchor_by=args.reanchor_by,
                                  reanchor_steps=args.reanchor_steps)  # fmt: skip
    try:
        with controller as ctl:
            for pair in tqdm(pairs, desc=f"{spec.name} {mode}"):
                goal = goal_observation(env, pair.goal_state)
                obs, info = env.reset(options={"state": pair.start_state,
                                               "goal": pair.goal_state})  # fmt: skip
                report = lm.run_loop(env, ctl, obs, info, goal,
                                     rate_hz=args.rate_hz if paced else None,
                                     steps=args.steps)  # fmt: skip
                successes.append(report.episode.succeeded)
                steps.append(report.episode.steps_to_success)
                missed += report.missed
                late.extend(report.late[1:])  # the first plan of a pair is always awaited
                fallback += report.fallback_steps
                act_ms.extend(1000 * report.act_seconds[1:])  # the first act awaits the first plan
                plan_ms.extend(1000 * report.episode.plan_seconds)
    finally:
        env.close()
    wins = int(np.sum(successes))
    reached = [s for s in steps if s is not None]
    return {
        "mode": {"sync": "synchronous", "async": f"asynchronous at {args.rate_hz:g} Hz",
                 "compensated": "latency-compensated, unpaced"}[mode]
        + ("" if reanchor is None else
           f", re-anchored ({args.reanchor_by}) within {reanchor_ms:g} ms"
           + (f", {args.reanchor_steps} steps" if args.reanchor_by == "gradient"
              and args.reanchor_steps != REFINE_STEPS else "")),
        "pairs": len(pairs), "successes": wins, "success_rate": wins / len(pairs),
        "succeeded": [bool(x) for x in successes],
        "ci95": list(wilson_interval(wins, len(pairs))),
        "steps_to_success_mean": float(np.mean(reached)) if reached else None,
        "deadline_s": deadline, "replan_every": replan_every,
        "missed_periods": missed, "env_steps": len(act_ms),
        "late_mean": float(np.mean(late)) if late else 0.0,
        "late_max": int(max(late)) if late else 0,
        "late_share": float(np.mean(np.array(late) > 0)) if late else 0.0,
        "fallback_steps": fallback,
        **{f"{name}_ms_p{q}": float(np.percentile(values, q))
           for name, values in (("act", act_ms), ("plan", plan_ms)) for q in (50, 99)},
        "planner": repr(planner),
    }  # fmt: skip


def main(args: Args) -> dict:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    modes = [mode for mode in args.modes.split(",") if mode]
    if not modes or set(modes) - set(MODES):
        raise SystemExit(f"--modes: a comma-separated subset of {', '.join(MODES)}, got "
                         f"{args.modes!r}")  # fmt: skip
    try:
        reanchors = [float(value) for value in args.reanchor_ms.split(",")]
    except ValueError:
        reanchors = [-1.0]
    if not reanchors or min(reanchors) < 0:
        raise SystemExit(f"--reanchor-ms: comma-separated milliseconds >= 0, got "
                         f"{args.reanchor_ms!r}")  # fmt: skip
    if args.reanchor_by not in REANCHORS:
        raise SystemExit(f"--reanchor-by: one of {', '.join(REANCHORS)}, got {args.reanchor_by!r}")
    if args.reanchor_steps < 1:
        raise SystemExit(f"--reanchor-steps: an int >= 1, got {args.reanchor_steps}")
    names = env_names(args.envs)
    if args.model and len(names) != 1:
        raise SystemExit("--model: name its env with --envs (one env)")
    rows = []
    for name in names:
        # regenerated held-out episodes either way: a model of the same env and data policy
        # gets the same pairs as the shipped one
        run = lm.load_run(args.model or f"pretrained:{name}", regenerate=True)
        spec = run.env_spec
        assert spec is not None
        pairs, _ = sample_pairs(run.dataset, run.val_ids, spec,
                                EvalConfig(num_pairs=args.pairs, seed=args.seed))  # fmt: skip
        for mode in modes:
            for reanchor in [0.0] if mode == "sync" else reanchors:
                row = {"env": name, "model": args.model or f"pretrained:{name}",
                       **run_mode(run, spec, pairs, args, mode, reanchor)}  # fmt: skip
                print(json.dumps(row), flush=True)
                rows.append(row)
    name = "async_control" + (f"_{args.tag}" if args.tag else "")
    return write_results(args.out, name, args, rows, markdown)


def markdown(result: dict) -> str:
    lines = [
        "Synchronous MPC at zero latency (the env waits for each plan) against asynchronous MPC "
        "at a fixed rate on the wall clock (the env advances every period; plans are made for "
        "the step they take effect and must be ready within the replanning interval), same "
        f"held-out pairs, {PLANNER_NAMES[result['args'].get('planner', 'reference')]}; "
        f"{result['machine']['cpu_threads']}"
        " torch threads."
        + "".join(
            f" Model: `{model}`."
            for model in sorted({row.get("model", "") for row in result["rows"]})
            if model and not model.startswith("pretrained:")
        ),
        "",
        "| env | mode | success (95% CI) | steps to success | plan p50 / p99 | deadline | missed "
        "periods | plans late (share, mean / max steps) | fallback steps | act p99 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        low, high = row["ci95"]
        steps = row["steps_to_success_mean"]
        deadline = row["deadline_s"]
        lines.append(
            f"| {row['env']} | {row['mode']} | {100 * row['success_rate']:.0f}% "
            f"({100 * low:.0f}-{100 * high:.0f}) | {'-' if steps is None else f'{steps:.1f}'} | "
            f"{row['plan_ms_p50']:.0f} / {row['plan_ms_p99']:.0f} ms | "
            f"{'-' if deadline is None else f'{1000 * deadline:.0f} ms'} | "
            f"{row['missed_periods']} of {row['env_steps']} | "
            f"{100 * row['late_share']:.0f}%, {row['late_mean']:.1f} / {row['late_max']} | "
            f"{row['fallback_steps']} | {row['act_ms_p99']:.1f} ms |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
