"""Two-Room with CEM: training time, success on held-out pairs, plan latency and model FLOP/s.

Reproduce (2 CPU cores, ~15 min; every stage resumes if interrupted):

    .venv/bin/python benchmarks/tworoom_cem.py

Writes ``benchmarks/results/tworoom_cem.{json,md}``. Data and the model go to ``--work``
(default ``runs/bench_tworoom``); an existing model there is reused, and its recorded training
time is reported.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.data.collection import collect_dataset
from lewm_mpc.envs import get_env_spec
from lewm_mpc.evaluation import EvalConfig, evaluate
from lewm_mpc.training import TrainConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _machine.py beside this file
from _machine import matmul_peak_gflops


@dataclass(frozen=True)
class Args:
    work: Path = Path("runs/bench_tworoom")
    out: Path = Path("benchmarks/results")
    episodes: int = 300
    steps: int = 3000
    pairs: int = 100
    latency_plans: int = 30
    samples: int = 300  # CEM budget (LeWorldModel's reference 300 x 30; smaller for smoke runs)
    iterations: int = 30
    seed: int = 0


def plan_flops(planner: lm.CEM, obs: np.ndarray, goal: np.ndarray) -> int:
    """Model FLOPs of one plan (encoder, rollouts, energy), counted by torch's FLOP counter."""
    counter = FlopCounterMode(display=False)
    with counter:
        planner.plan(obs, goal)
    return counter.get_total_flops()


def main(args: Args) -> dict:
    torch.manual_seed(args.seed)
    data = collect_dataset("tworoom", args.work / "tworoom.h5", args.episodes, seed=args.seed)
    run = args.work / "model"
    summary = train(
        data, run, lm.named_config("cpu"), TrainConfig(steps=args.steps, seed=args.seed)
    )
    model = lm.WorldModel.load(run)
    train_minutes = summary.seconds / 60

    dataset = EpisodeDataset.load(data)
    spec = get_env_spec("tworoom")
    # Reference budget (300 x 30, top 30, horizon 5) with our default energy and with LeWM's
    # terminal-only goal distance, on the same held-out pairs.
    eval_config = EvalConfig(num_pairs=args.pairs, seed=args.seed)
    budget = {"num_samples": args.samples, "iterations": args.iterations,
              "topk": max(1, args.samples // 10), "seed": args.seed, "polish_steps": 0}  # fmt: skip
    terminal = evaluate(
        lm.CEM(model, energy=lm.GoalDistance(0.0), **budget), dataset, spec, eval_config
    )
    planner = lm.CEM(model, **budget)
    report = evaluate(planner, dataset, spec, eval_config)

    # Plan latency and throughput on validation frames, outside the control loop.
    _, val_ids = dataset.split(0.1, seed=args.seed)
    rows = dataset.episode_slice(int(val_ids[0]))
    obs, goal = dataset.pixels[rows.start], dataset.pixels[rows.start + 25]
    planner.reset()
    for _ in range(3):
        planner.plan(obs, goal)  # warm-up
    latencies = []
    for _ in range(args.latency_plans):
        planner.reset()
        latencies.append(planner.plan(obs, goal).solve_s)
    flops = plan_flops(planner, obs, goal)
    median = float(np.median(latencies))
    peak = matmul_peak_gflops()
    result = {
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "matmul_peak_gflops": round(peak, 1),
        },
        "data": {"episodes": dataset.num_episodes, "frames": dataset.num_rows},
        "model": {
            "parameters": model.num_parameters(),
            "train_steps": summary.steps,
            "train_minutes": round(train_minutes, 2),
            "val_prediction_loss": round(summary.val_prediction, 5),
        },
        "eval": {
            "pairs": report.num_pairs,
            "successes": report.successes,
            "success_rate": report.success_rate,
            "ci95": report.ci95,
            "skipped_solved": report.skipped_solved,
            "steps_to_success_mean": report.steps_to_success_mean,
            "latency_p50_s": report.latency_p50_s,
            "latency_p95_s": report.latency_p95_s,
            "seconds": round(report.seconds, 1),
        },
        "eval_terminal_cost": {
            "successes": terminal.successes,
            "success_rate": terminal.success_rate,
            "ci95": terminal.ci95,
            "steps_to_success_mean": terminal.steps_to_success_mean,
        },
        "plan": {
            "budget": asdict(planner.config),
            "p50_s": median,
            "p95_s": float(np.percentile(latencies, 95)),
            "gflop_per_plan": round(flops / 1e9, 3),
            "achieved_gflops": round(flops / median / 1e9, 1),
            "fraction_of_peak": round(flops / median / 1e9 / peak, 3),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "tworoom_cem.json", json.dumps(result, indent=1))
    write_text_atomic(args.out / "tworoom_cem.md", _markdown(result))
    print(_markdown(result))
    return result


def _steps(mean: float | None) -> str:
    return "-" if mean is None else f"{mean:.1f}"


def _markdown(r: dict) -> str:
    e, p, m, t = r["eval"], r["plan"], r["model"], r["eval_terminal_cost"]
    low, high = e["ci95"]
    t_low, t_high = t["ci95"]
    budget = f"{p['budget']['num_samples']}x{p['budget']['iterations']}"
    return "\n".join(
        [
            "| metric | value |",
            "|---|---|",
            f"| Two-Room success, CEM {budget}, `GoalDistance()` ({e['pairs']} held-out pairs) | "
            f"**{100 * e['success_rate']:.0f}%** (95% CI {100 * low:.0f}-{100 * high:.0f}), "
            f"{_steps(e['steps_to_success_mean'])} steps to success |",
            f"| same pairs, LeWM terminal cost `GoalDistance(0.0)` | "
            f"{100 * t['success_rate']:.0f}% (95% CI {100 * t_low:.0f}-{100 * t_high:.0f}), "
            f"{_steps(t['steps_to_success_mean'])} steps to success |",
            f"| solved starts skipped | {e['skipped_solved']} |",
            f"| training | {m['train_steps']} steps, {m['train_minutes']:.1f} min, "
            f"{m['parameters'] / 1e6:.2f}M params, {r['data']['episodes']} episodes |",
            f"| plan latency p50 / p95 (in loop) | {1000 * e['latency_p50_s']:.0f} / "
            f"{1000 * e['latency_p95_s']:.0f} ms |",
            f"| plan latency p50 / p95 (isolated) | {1000 * p['p50_s']:.0f} / "
            f"{1000 * p['p95_s']:.0f} ms |",
            f"| model FLOPs per plan | {p['gflop_per_plan']:.2f} GFLOP |",
            f"| achieved model throughput | {p['achieved_gflops']:.0f} GFLOP/s = "
            f"{100 * p['fraction_of_peak']:.0f}% of measured fp32 matmul peak "
            f"({r['machine']['matmul_peak_gflops']:.0f} GFLOP/s) |",
            "",
        ]
    )


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
