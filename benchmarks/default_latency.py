"""The default sampling planners against LeWorldModel's CEM: plan latency and energy, interleaved.

CEM and MPPI by default sample 2 rounds of 300 and then polish with at most 50 L-BFGS
evaluations of 4 descents (from the best plan sampled and 3 perturbations of it); LeWorldModel's
CEM samples 30 rounds (``iterations=30, polish_steps=0``).
For each env with a shipped model, on start/goal frames of regenerated held-out episodes (goal
25 steps ahead; each pair planned cold, then warm from its own plan, as in a control loop),
every planner plans each pair in turn, the order rotated per pair, so machine drift hits all
alike. Latency is ``PlanResult.solve_s`` (the whole call, encode included); energy is the plan's
under the model (lower is better; same energy for all).

    MUJOCO_GL=egl .venv/bin/python benchmarks/default_latency.py                 # ~6 min
    MUJOCO_GL=egl .venv/bin/python benchmarks/default_latency.py --envs tworoom --threads 2

Writes ``benchmarks/results/default_latency[_<threads>threads].{json,md}``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lewm_mpc as lm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _results.py beside this file
from _machine import round_robin
from _results import env_names, write_results
from deadlines import frames

# name -> (planner class, config fields beyond the env's horizon and seed)
PLANNERS: dict[str, tuple[type[lm.Planner], dict[str, Any]]] = {
    "CEM 300 x 30 (LeWorldModel)": (lm.CEM, {"iterations": 30, "polish_steps": 0}),
    "CEM, default (300 x 2 + polish of 4 descents)": (lm.CEM, {}),
    "CEM 300 x 4 + polish of one descent": (lm.CEM, {"iterations": 4, "polish_restarts": 1}),
    "MPPI 300 x 30": (lm.MPPI, {"iterations": 30, "polish_steps": 0}),
    "MPPI, default (300 x 2 + polish of 4 descents)": (lm.MPPI, {}),
}


@dataclass(frozen=True)
class Args:
    envs: str = ""  # comma-separated; "": every env with a shipped model
    pairs: int = 20  # each planned cold, then warm: 2 plans per pair and planner
    goal_offset: int = 25
    seed: int = 0
    threads: int = 1  # torch threads (0: leave as is)
    out: Path = Path("benchmarks/results")


def measure(run: lm.Run, args: Args) -> list[dict[str, Any]]:
    horizon = run.env_spec.budget.horizon if run.env_spec is not None else 5
    planners = [cls(run.model, horizon=horizon, seed=args.seed, **fields)
                for cls, fields in PLANNERS.values()]  # fmt: skip
    pairs = frames(run, args.pairs, args.goal_offset, args.seed)
    for planner in planners:  # first-call costs (allocation, autograd setup) off the clock
        planner.plan(*pairs[0])
    seconds: list[list[float]] = [[] for _ in planners]
    energies: list[list[float]] = [[] for _ in planners]
    for index, (obs, goal) in enumerate(pairs):
        for slot in round_robin(len(planners), index):
            planner = planners[slot]
            planner.reset()
            for _ in range(2):  # cold, then warm from its own plan
                result = planner.plan(obs, goal)
                seconds[slot].append(result.solve_s)
                energies[slot].append(float(result.energy))
    return [
        {"planner": name, "config": repr(planner), "plans": len(seconds[slot]),
         "p50_ms": 1000 * float(np.percentile(seconds[slot], 50)),
         "p95_ms": 1000 * float(np.percentile(seconds[slot], 95)),
         "energy_mean": float(np.mean(energies[slot]))}
        for slot, (name, planner) in enumerate(zip(PLANNERS, planners, strict=True))
    ]  # fmt: skip


def main(args: Args) -> dict[str, Any]:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rows = []
    for name in env_names(args.envs):
        run = lm.load_run(f"pretrained:{name}", regenerate=True)
        for row in measure(run, args):
            row = {"env": name, **row}
            print(json.dumps(row), flush=True)
            rows.append(row)
    stem = "default_latency" + (f"_{args.threads}threads" if args.threads > 1 else "")
    return write_results(args.out, stem, args, rows, markdown)


def markdown(result: dict[str, Any]) -> str:
    args = result["args"]
    lines = [
        f"Plan latency (the whole `plan` call) and mean plan energy, {args['pairs']} held-out "
        f"pairs per env, each planned cold and warm; planners interleaved pair by pair; "
        f"{result['machine']['cpu_threads']} torch threads.",
        "",
        "| env | planner | plan p50 | plan p95 | mean energy |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['env']} | {row['planner']} | {row['p50_ms']:.0f} ms | "
            f"{row['p95_ms']:.0f} ms | {row['energy_mean']:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
