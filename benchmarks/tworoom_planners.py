"""Two-Room planner comparison at an equal number of energy evaluations per plan.

Every planner gets the same budget of candidate-plan evaluations (rollout + energy) per plan,
LeWorldModel's reference 300 x 30 = 9,000 by default, on the same held-out pairs and model:

- CEM: 300 samples x 30 iterations (plain, and with iCEM's colored noise + elite carry-over);
- MPPI: 300 samples x 30 iterations;
- gradient shooting: 30 restarts x 300 Adam steps (each step also back-propagates);
- hybrid: 10 CEM iterations of 300 samples, then 30 restarts x 200 Adam steps.

    .venv/bin/python benchmarks/tworoom_planners.py   # needs runs/bench_tworoom (tworoom_cem.py)

Writes ``benchmarks/results/tworoom_planners.{json,md}``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.envs import get_env_spec
from lewm_mpc.evaluation import EvalConfig, evaluate


@dataclass(frozen=True)
class Args:
    work: Path = Path("runs/bench_tworoom")
    out: Path = Path("benchmarks/results")
    pairs: int = 100
    samples: int = 300  # per sampling iteration; budget = samples * iterations
    iterations: int = 30
    restarts: int = 30
    seed: int = 0


def planners(model: lm.WorldModel, args: Args) -> dict[str, lm.Planner]:
    """The planners at one budget of ``samples * iterations`` evaluations per plan."""
    budget = args.samples * args.iterations
    cem_iterations = args.iterations // 3
    hybrid_steps = (budget - cem_iterations * args.samples) // args.restarts
    common = {"seed": args.seed}
    return {
        "CEM": lm.CEM(model, num_samples=args.samples, iterations=args.iterations,
                      topk=max(1, args.samples // 10), **common),
        "CEM + iCEM options (beta 2, keep 0.3)": lm.CEM(
            model, num_samples=args.samples, iterations=args.iterations,
            topk=max(1, args.samples // 10), noise_beta=2.0, keep_elites=0.3, **common,
        ),
        "MPPI": lm.MPPI(model, num_samples=args.samples, iterations=args.iterations, **common),
        "Gradient": lm.GradientPlanner(model, restarts=args.restarts,
                                       iterations=budget // args.restarts, **common),
        "Hybrid (CEM -> gradient)": lm.GradientPlanner(
            model, restarts=args.restarts, iterations=hybrid_steps,
            cem_iterations=cem_iterations, cem_samples=args.samples,
            cem_topk=max(1, args.samples // 10), **common,
        ),
    }  # fmt: skip


def main(args: Args) -> dict:
    torch.manual_seed(args.seed)
    model = lm.WorldModel.load(args.work / "model")
    dataset = EpisodeDataset.load(args.work / "tworoom.h5")
    spec = get_env_spec("tworoom")
    config = EvalConfig(num_pairs=args.pairs, seed=args.seed)
    rows = []
    for name, planner in planners(model, args).items():
        report = evaluate(planner, dataset, spec, config)
        print(name, report.summary(), flush=True)
        rows.append({
            "planner": name, "pairs": report.num_pairs, "success_rate": report.success_rate,
            "ci95": report.ci95, "steps_to_success_mean": report.steps_to_success_mean,
            "latency_p50_s": report.latency_p50_s, "latency_p95_s": report.latency_p95_s,
            "energy_evals_per_plan": report.energy_evals_per_plan,
            "config": {k: v for k, v in asdict(planner.config).items()},
        })  # fmt: skip
    result = {"budget_evals_per_plan": args.samples * args.iterations, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "tworoom_planners.json", json.dumps(result, indent=1))
    write_text_atomic(args.out / "tworoom_planners.md", markdown(result))
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    lines = [
        f"Two-Room, {result['rows'][0]['pairs']} held-out pairs, "
        f"{result['budget_evals_per_plan']:,} energy evaluations per plan for every planner.",
        "",
        "| planner | success (95% CI) | steps to success | plan latency p50 / p95 | evals/plan |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        low, high = row["ci95"]
        steps = row["steps_to_success_mean"]
        lines.append(
            f"| {row['planner']} | {100 * row['success_rate']:.0f}% "
            f"({100 * low:.0f}-{100 * high:.0f}) | "
            f"{'n/a' if steps is None else f'{steps:.1f}'} | "
            f"{1000 * row['latency_p50_s']:.0f} / {1000 * row['latency_p95_s']:.0f} ms | "
            f"{row['energy_evals_per_plan']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
