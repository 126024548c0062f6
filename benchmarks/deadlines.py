"""Plan deadlines as hard bounds: latency of ``plan(obs, goal, deadline_s=d)`` against ``d``.

For each env with a shipped model and each built-in planner at its default budget (CEM and
MPPI at the env's reference budget, and at their own defaults: 2 rounds, then an L-BFGS
polish of 4 descents), ``--plans`` plans per deadline on start/goal frames of regenerated
held-out episodes (goal 25 steps ahead; each pair planned cold, then warm from its own plan, as
in a control loop). Latency is ``PlanResult.solve_s``: the whole call,
encode included. A deadline holds when p99 <= d. Reported: p50 / p99 / max latency, the share
of plans within d, and the iterations that fitted.

Each planner is warmed up first (``Planner.warm_up``: two full-budget plans time every kind
of iteration), as a controller does before its first plan under a deadline.

One torch thread by default: with both cores of a 2-core CPU in torch, any other process that
runs (the OS, the robot's own loop) pauses one thread and the iteration waits for it at the
next barrier; measured, the last iteration of a plan then took up to 3.7x its usual time.
``--threads 2`` writes ``deadlines_2threads.{json,md}``.

    MUJOCO_GL=egl .venv/bin/python benchmarks/deadlines.py            # ~4 min on 2 cores
    MUJOCO_GL=egl .venv/bin/python benchmarks/deadlines.py --envs tworoom --plans 10

Writes ``benchmarks/results/deadlines.{json,md}``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import lewm_mpc as lm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _results.py beside this file
from _results import env_names, write_results

PLANNERS = ("cem", "mppi", "cem-default", "mppi-default", "gradient", "hybrid")


@dataclass(frozen=True)
class Args:
    envs: str = ""  # comma-separated; "": every env with a shipped model
    deadlines_ms: str = "20,50,100"
    plans: int = 40  # per (env, planner, deadline): plans / 2 pairs, cold then warm
    goal_offset: int = 25
    seed: int = 0
    threads: int = 1  # torch threads (0: leave as is); one leaves the other core to the OS
    out: Path = Path("benchmarks/results")


def frames(run: lm.Run, count: int, offset: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(start, goal) observations from held-out episodes, the goal ``offset`` env steps on."""
    rng = np.random.default_rng(seed)
    block = run.dataset.meta.action_block
    pairs = []
    while len(pairs) < count:
        episode = run.dataset.episode(int(rng.choice(run.val_ids)))
        rows = offset // block
        if episode.length <= rows:
            continue
        start = int(rng.integers(episode.length - rows))
        observations = episode.pixels if run.obs_mode == "pixels" else episode.state
        pairs.append((observations[start], observations[start + rows]))
    return pairs


def measure(planner: lm.Planner, pairs: list, deadline_s: float) -> dict:
    planner.warm_up(*pairs[0])  # iteration times known from here on
    seconds, iterations = [], []
    for obs, goal in pairs:
        planner.reset()
        for _ in range(2):  # cold, then warm from its own plan
            result = planner.plan(obs, goal, deadline_s=deadline_s)
            seconds.append(result.solve_s)
            iterations.append(result.iterations)
    ms = 1000 * np.array(seconds)
    return {"plans": len(ms), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
            "within": float(np.mean(ms <= 1000 * deadline_s)),
            "iterations_mean": float(np.mean(iterations))}  # fmt: skip


def main(args: Args) -> dict:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    deadlines = [float(d) / 1000 for d in args.deadlines_ms.split(",")]
    rows = []
    for name in env_names(args.envs):
        run = lm.load_run(f"pretrained:{name}")
        assert run.env_spec is not None
        budget = run.env_spec.budget
        pairs = frames(run, max(args.plans // 2, 1), args.goal_offset, args.seed)
        for planner_name in PLANNERS:
            sampling = {
                "num_samples": budget.num_samples,
                "iterations": budget.iterations,
                "polish_steps": budget.polish_steps,
            }
            extra = {**sampling, "topk": budget.topk} if planner_name == "cem" else (
                sampling if planner_name == "mppi" else {})  # fmt: skip
            registered = planner_name.removesuffix("-default")  # "-default": its own defaults
            for deadline in deadlines:
                planner = lm.make_planner(registered, run.model, horizon=budget.horizon,
                                          seed=args.seed, **extra)  # fmt: skip
                row = {"env": name, "planner": repr(planner), "deadline_ms": 1000 * deadline,
                       **measure(planner, pairs, deadline)}  # fmt: skip
                print(json.dumps(row), flush=True)
                rows.append(row)
    name = "deadlines" if args.threads <= 1 else f"deadlines_{args.threads}threads"
    return write_results(args.out, name, args, rows, markdown)


def markdown(result: dict) -> str:
    lines = [
        "Plan latency against a deadline `d` (the whole `plan` call, encode included; each "
        "planner at its default budget, stopped by the deadline), "
        f"{result['machine']['cpu_threads']} torch threads. A deadline holds when p99 <= d.",
        "",
        "| env | planner | d | p50 | p99 | max | within d | iterations |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['env']} | {row['planner']} | {row['deadline_ms']:.0f} ms | "
            f"{row['p50_ms']:.1f} ms | {row['p99_ms']:.1f} ms | {row['max_ms']:.1f} ms | "
            f"{100 * row['within']:.0f}% | {row['iterations_mean']:.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
