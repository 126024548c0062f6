"""Two-Room planner comparison at an equal number of energy evaluations per plan.

Every planner gets the same budget of candidate-plan evaluations (rollout + energy) per plan,
LeWorldModel's reference 300 x 30 = 9,000 by default, on the same held-out pairs and model:

- CEM: 300 samples x 30 iterations (plain, and with iCEM's colored noise + elite carry-over);
- MPPI: 300 samples x 30 iterations;
- CEM and MPPI, then at most 50 L-BFGS evaluations (``polish_steps``; of 4 descents, from the
  best plan and from perturbations of it by the sampling spread; on top of the budget);
- CEM and MPPI at their defaults, off the equal budget: 300 x 2, then the polish (4 descents);
- CMA-ES: 30 samples x 300 generations (a full covariance needs generations more than samples);
- gradient shooting: 30 restarts x up to 300 projected L-BFGS steps (each step also
  back-propagates; it stops earlier once every restart has converged), and the same with Adam;
- hybrid: 10 CEM iterations of 300 samples, then 30 restarts x up to 200 gradient steps
  (L-BFGS, and Adam).

    .venv/bin/python benchmarks/tworoom_planners.py   # needs runs/bench_tworoom (tworoom_cem.py)
    .venv/bin/python benchmarks/tworoom_planners.py --model pretrained:tworoom \
        --only gradient,gradient-adam --tag gradient

``--model`` plans with another model (a run directory or ``pretrained:tworoom``, on its held-out
or regenerated episodes); ``--only`` runs some planners (comma-separated slugs: cem, icem,
cem-full, mppi, mppi-full, cem-default, mppi-default, cem-polish, mppi-polish, cmaes, gradient,
gradient-adam, hybrid, hybrid-adam).
Writes ``benchmarks/results/tworoom_planners[_<tag>].{json,md}``.
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
    model: str = ""  # "": <work>/model on <work>/tworoom.h5
    only: str = ""  # comma-separated planner slugs; "": all
    tag: str = ""  # output name suffix


SLUGS = {
    "cem": "CEM",
    "icem": "CEM + iCEM options (beta 2, keep 0.3)",
    "cem-full": "CEM, full covariance",
    "mppi": "MPPI",
    "mppi-full": "MPPI, full covariance",
    "cem-default": "CEM, default (300 x 2 + polish, 4 x 50 L-BFGS)",
    "mppi-default": "MPPI, default (300 x 2 + polish, 4 x 50 L-BFGS)",
    "cem-polish": "CEM + polish (4 x 50 L-BFGS)",
    "mppi-polish": "MPPI + polish (4 x 50 L-BFGS)",
    "cmaes": "CMA-ES",
    "gradient": "Gradient",
    "gradient-adam": "Gradient (Adam)",
    "hybrid": "Hybrid (CEM -> gradient)",
    "hybrid-adam": "Hybrid (CEM -> gradient, Adam)",
}


def planners(model: lm.WorldModel, args: Args) -> dict[str, lm.Planner]:
    """The planners at one budget of ``samples * iterations`` evaluations per plan."""
    budget = args.samples * args.iterations
    cem_iterations = args.iterations // 3
    hybrid_steps = (budget - cem_iterations * args.samples) // args.restarts
    common = {"seed": args.seed}
    sampling = {**common, "polish_steps": 0}  # the budget's rounds, no gradient
    return {
        "CEM": lm.CEM(model, num_samples=args.samples, iterations=args.iterations,
                      topk=max(1, args.samples // 10), **sampling),
        "CEM + iCEM options (beta 2, keep 0.3)": lm.CEM(
            model, num_samples=args.samples, iterations=args.iterations,
            topk=max(1, args.samples // 10), noise_beta=2.0, keep_elites=0.3, **sampling,
        ),
        "CEM, full covariance": lm.CEM(
            model, num_samples=args.samples, iterations=args.iterations,
            topk=max(1, args.samples // 10), covariance="full", **sampling,
        ),
        "MPPI": lm.MPPI(model, num_samples=args.samples, iterations=args.iterations, **sampling),
        "MPPI, full covariance": lm.MPPI(model, num_samples=args.samples,
                                         iterations=args.iterations, covariance="full",
                                         **sampling),
        "CEM, default (300 x 2 + polish, 4 x 50 L-BFGS)": lm.CEM(model, **common),
        "MPPI, default (300 x 2 + polish, 4 x 50 L-BFGS)": lm.MPPI(model, **common),
        "CEM + polish (4 x 50 L-BFGS)": lm.CEM(
            model, num_samples=args.samples, iterations=args.iterations,
            topk=max(1, args.samples // 10), polish_steps=50, **common,
        ),
        "MPPI + polish (4 x 50 L-BFGS)": lm.MPPI(model, num_samples=args.samples,
                                             iterations=args.iterations, polish_steps=50,
                                             **common),
        "CMA-ES": lm.CMAES(model, num_samples=max(2, args.samples // 10),
                           iterations=args.iterations * 10, **sampling),
        **{
            f"Gradient{suffix}": lm.GradientPlanner(
                model, restarts=args.restarts, iterations=budget // args.restarts,
                optimizer=optimizer, **common,
            )
            for suffix, optimizer in (("", "lbfgs"), (" (Adam)", "adam"))
        },
        **{
            f"Hybrid (CEM -> gradient{suffix})": lm.GradientPlanner(
                model, restarts=args.restarts, iterations=hybrid_steps,
                cem_iterations=cem_iterations, cem_samples=args.samples,
                cem_topk=max(1, args.samples // 10), optimizer=optimizer, **common,
            )
            for suffix, optimizer in (("", "lbfgs"), (", Adam", "adam"))
        },
    }  # fmt: skip


def main(args: Args) -> dict:
    torch.manual_seed(args.seed)
    only = [slug for slug in args.only.split(",") if slug]
    unknown = sorted(set(only) - set(SLUGS))
    if unknown:
        raise SystemExit(f"unknown planners {unknown}; choose from {sorted(SLUGS)}")
    if args.model:
        run = lm.load_run(args.model)
        model, dataset, episode_ids = run.model, run.dataset, run.val_ids
    else:
        model = lm.WorldModel.load(args.work / "model")
        dataset, episode_ids = EpisodeDataset.load(args.work / "tworoom.h5"), None
    spec = get_env_spec("tworoom")
    config = EvalConfig(num_pairs=args.pairs, seed=args.seed)
    chosen = {SLUGS[slug] for slug in only} if only else set(SLUGS.values())
    rows = []
    for name, planner in planners(model, args).items():
        if name not in chosen:
            continue
        report = evaluate(planner, dataset, spec, config, episode_ids=episode_ids)
        print(name, report.summary(), flush=True)
        rows.append({
            "planner": name, "pairs": report.num_pairs, "success_rate": report.success_rate,
            "ci95": report.ci95, "steps_to_success_mean": report.steps_to_success_mean,
            "latency_p50_s": report.latency_p50_s, "latency_p95_s": report.latency_p95_s,
            "energy_evals_per_plan": report.energy_evals_per_plan,
            "config": {k: v for k, v in asdict(planner.config).items()},
        })  # fmt: skip
    result = {"budget_evals_per_plan": args.samples * args.iterations,
              "model": args.model or str(args.work / "model"), "rows": rows}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    name = "tworoom_planners" + (f"_{args.tag}" if args.tag else "")
    write_text_atomic(args.out / f"{name}.json", json.dumps(result, indent=1))
    write_text_atomic(args.out / f"{name}.md", markdown(result))
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    lines = [
        f"Two-Room, {result['rows'][0]['pairs']} held-out pairs, model "
        f"`{result.get('model', 'runs/bench_tworoom/model')}`, a budget of "
        f"{result['budget_evals_per_plan']:,} energy evaluations per plan for every planner "
        "(gradient planners stop earlier once converged).",
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
