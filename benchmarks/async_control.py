"""Asynchronous control at a fixed rate against synchronous control at zero latency.

For each env with a shipped model (``pretrained:<env>``), the same held-out pairs (regenerated,
seed 0) are run twice with CEM at the env's reference budget:

- **synchronous, zero latency**: ``MPCController(planner)`` in an unpaced ``run_loop`` (the env
  waits for every plan: the protocol of every success number in this repo);
- **asynchronous at ``--rate-hz``**: ``MPCController(planner, asynchronous=True)`` in
  ``run_loop(rate_hz=...)``: the env advances one step per period on the wall clock whether or
  not a plan is ready; each plan is made for the step it takes effect (latency compensation)
  and must be ready within ``replan_every`` periods (its deadline: that time minus a 20%
  margin; the planner stops iterating before an iteration that would not fit).

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
from lewm_mpc.evaluation import EvalConfig, goal_observation, sample_pairs, wilson_interval

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _results.py beside this file
from _results import env_names, reference_cem, write_results


@dataclass(frozen=True)
class Args:
    envs: str = ""  # comma-separated; "": every env with a shipped model
    pairs: int = 50
    rate_hz: float = 10.0
    steps: int = 50  # env-step budget per pair
    margin: float = 0.2  # fraction of the replanning interval kept free of planning
    seed: int = 0
    threads: int = 0  # torch threads (0: leave as is)
    out: Path = Path("benchmarks/results")
    tag: str = ""  # output name suffix: async_control_<tag>


def run_mode(run: lm.Run, spec: Any, pairs: list, args: Args, asynchronous: bool) -> dict:
    """One mode on every pair: success and loop statistics."""
    planner = reference_cem(run, args.seed)
    replan_every = spec.budget.receding_horizon * run.model.action_block
    deadline = (1 - args.margin) * replan_every / args.rate_hz if asynchronous else None
    env = spec.make(obs_mode=run.obs_mode, env_config=run.dataset.meta.env_config)
    successes, steps, missed, late, fallback, act_ms, plan_ms = [], [], 0, [], 0, [], []
    try:
        with lm.MPCController(planner, asynchronous=asynchronous, deadline_s=deadline) as ctl:
            for pair in tqdm(pairs, desc=f"{spec.name} {'async' if asynchronous else 'sync'}"):
                goal = goal_observation(env, pair.goal_state)
                obs, info = env.reset(options={"state": pair.start_state,
                                               "goal": pair.goal_state})  # fmt: skip
                report = lm.run_loop(env, ctl, obs, info, goal,
                                     rate_hz=args.rate_hz if asynchronous else None,
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
        "mode": f"asynchronous at {args.rate_hz:g} Hz" if asynchronous else "synchronous",
        "pairs": len(pairs), "successes": wins, "success_rate": wins / len(pairs),
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
    rows = []
    for name in env_names(args.envs):
        run = lm.load_run(f"pretrained:{name}")
        spec = run.env_spec
        assert spec is not None
        pairs, _ = sample_pairs(run.dataset, run.val_ids, spec,
                                EvalConfig(num_pairs=args.pairs, seed=args.seed))  # fmt: skip
        for asynchronous in (False, True):
            row = {"env": name, **run_mode(run, spec, pairs, args, asynchronous)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    name = "async_control" + (f"_{args.tag}" if args.tag else "")
    return write_results(args.out, name, args, rows, markdown)


def markdown(result: dict) -> str:
    lines = [
        "Synchronous MPC at zero latency (the env waits for each plan) against asynchronous MPC "
        "at a fixed rate on the wall clock (the env advances every period; plans are made for "
        "the step they take effect and must be ready within the replanning interval), same "
        f"held-out pairs, CEM at each env's reference budget; {result['machine']['cpu_threads']}"
        " torch threads.",
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
