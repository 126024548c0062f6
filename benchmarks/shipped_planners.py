"""Planner levers on a shipped model: CEM, CMA-ES, MPPI and CEM variants on the same pairs.

Each lever is one ``lewm-mpc eval`` run of ``pretrained:<env>`` (its regenerated held-out
episodes) with the planner flags below, on validation pairs drawn with ``--eval-seed`` (default
1, not the seed-0 test pairs), so a lever can be chosen here and reported on the test pairs.
Each finished lever's report (the ``lewm-mpc eval --out`` JSON) is kept in
``<work>/<slug>.json`` and a rerun skips it.

    MUJOCO_GL=egl .venv/bin/python benchmarks/shipped_planners.py --env cube
    MUJOCO_GL=egl .venv/bin/python benchmarks/shipped_planners.py --env cube --only cem,cmaes
    MUJOCO_GL=egl .venv/bin/python benchmarks/shipped_planners.py --env pusht --pairs 100 \
        --eval-seed 2 --work runs/shipped_seed2 --tag seed2 --only cem-4-polish,cem-2-polish-4

Writes ``benchmarks/results/shipped_planners_<env>[_<tag>].{json,md}``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lewm_mpc import cli

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _results.py beside this file
from _results import write_results

# slug -> (what it is, the eval flags)
LEVERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "cem": ("CEM 300 x 30, top 30, horizon 5 (reference)", ()),
    "cmaes": ("CMA-ES 30 x 300", ("--planner", "cmaes")),
    "mppi": ("MPPI 300 x 30", ("--planner", "mppi")),
    "cem-full": ("CEM 300 x 30, full covariance", ("--covariance", "full")),
    "cem-polish": ("CEM 300 x 30, then up to 50 L-BFGS evaluations", ("--polish-steps", "50")),
    "cem-4-polish": (
        "CEM 300 x 4, then up to 50 L-BFGS evaluations of one descent",
        ("--iterations", "4", "--polish-steps", "50", "--polish-restarts", "1"),
    ),
    "cem-2-polish-4": (
        "CEM 300 x 2, then up to 50 L-BFGS evaluations of 4 descents (the default)",
        ("--iterations", "2", "--polish-steps", "50", "--polish-restarts", "4"),
    ),
    "cem-3-polish-4": (
        "CEM 300 x 3, then up to 50 L-BFGS evaluations of 4 descents",
        ("--iterations", "3", "--polish-steps", "50", "--polish-restarts", "4"),
    ),
    "mppi-full": ("MPPI 300 x 30, full covariance", ("--planner", "mppi", "--covariance", "full")),
    "cem-receding-5": (
        "CEM 300 x 30, 5 blocks executed per plan (LeWM's protocol)",
        ("--receding", "5"),
    ),
    "cem-horizon-8": ("CEM 300 x 30, horizon 8", ("--horizon", "8")),
    "cem-600x30": ("CEM 600 x 30, top 60", ("--samples", "600", "--topk", "60")),
}


@dataclass(frozen=True)
class Args:
    env: str = "cube"
    pairs: int = 50
    eval_seed: int = 1  # validation pairs; 0 is the test set
    only: str = ""  # comma-separated slugs; "": all
    iterations: int = 0  # > 0 overrides every lever's iterations (smoke runs); 0: theirs
    budget: int = 50  # env steps per pair
    work: Path = Path("runs/shipped_planners")
    out: Path = Path("benchmarks/results")
    tag: str = ""  # appended to the results' name (another pair seed, say)


def run_lever(args: Args, slug: str) -> dict[str, Any]:
    """The lever's eval report, from ``<work>/<env>/<slug>.json`` or a fresh run."""
    path = args.work / args.env / f"{slug}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        smoke = ("--iterations", str(args.iterations)) if args.iterations > 0 else ()
        argv = ["eval", "--model", f"pretrained:{args.env}", "--pairs", str(args.pairs),
                "--eval-seed", str(args.eval_seed), "--budget", str(args.budget),
                *LEVERS[slug][1], *smoke, "--out", str(path)]  # fmt: skip
        if cli.main(argv) != 0:
            raise SystemExit(f"lewm-mpc {' '.join(argv)} failed")
    return json.loads(path.read_text())


def markdown(result: dict[str, Any]) -> str:
    args = result["args"]
    lines = [
        f"Planner levers on `pretrained:{args['env']}`: {args['pairs']} pairs from regenerated "
        f"held-out episodes, pair seed {args['eval_seed']} (validation), budget {args['budget']} "
        "env steps"
        + (
            f"; every lever cut to {args['iterations']} iterations (a smoke run: the "
            "numbers mean nothing)."
            if int(args["iterations"]) > 0
            else "."
        ),
        "",
        "| lever | success (95% CI) | pairs won / lost vs the first row | steps to success | "
        "plan p50 / p95 | evals / plan |",
        "|---|---|---|---|---|---|",
    ]
    first = result["rows"][0]["report"] if result["rows"] else None
    for row in result["rows"]:
        report = row["report"]
        low, high = report["ci95"]
        steps = report["steps_to_success_mean"]
        won, lost = paired(report, first) if report is not first else (None, None)
        lines.append(
            f"| {row['lever']} | {report['success_rate']:.0%} ({low:.0%}-{high:.0%}), "
            f"n={report['num_pairs']} | {'-' if won is None else f'{won} / {lost}'} | "
            f"{'-' if steps is None else f'{steps:.1f}'} | "
            f"{1000 * report['latency_p50_s']:.0f} / {1000 * report['latency_p95_s']:.0f} ms | "
            f"{report['energy_evals_per_plan']:,.0f} |"
        )
    lines += ["", "Latencies come from separate runs, not interleaved: compare them loosely."]
    return "\n".join(lines) + "\n"


def paired(
    report: dict[str, Any], reference: dict[str, Any] | None
) -> tuple[int, int] | tuple[None, None]:
    """(pairs only ``report`` solved, pairs only ``reference`` solved) over the pairs both
    planned (the same seeded pairs: same episode and start step), or (None, None)."""
    if reference is None:
        return None, None
    solved = {(p["episode"], p["start_step"]): p["success"] for p in reference.get("pairs", [])}
    both = [(p["success"], solved[key]) for p in report.get("pairs", [])
            if (key := (p["episode"], p["start_step"])) in solved]  # fmt: skip
    if not both:
        return None, None
    return sum(a and not b for a, b in both), sum(b and not a for a, b in both)


def main(args: Args) -> dict[str, Any]:
    slugs = [slug for slug in args.only.split(",") if slug] or list(LEVERS)
    unknown = sorted(set(slugs) - set(LEVERS))
    if unknown:
        raise SystemExit(f"unknown levers {unknown}; choose from {sorted(LEVERS)}")
    rows = [{"slug": slug, "lever": LEVERS[slug][0], "report": run_lever(args, slug)}
            for slug in slugs]  # fmt: skip
    name = f"shipped_planners_{args.env}" + (f"_{args.tag}" if args.tag else "")
    return write_results(args.out, name, args, rows, markdown)


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
