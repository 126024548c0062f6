"""Two-Room keep-out: a probe-based hard guardrail against a box across the straight path.

For each held-out pair (same room, start and goal at least ``min_distance`` apart, and room for a
detour: a lane of ``clearance`` beside the margin-grown box, across the direction of travel)
a square keep-out box is centred on the midpoint of the straight segment from start to goal. A
probe maps latents to the agent position; ``KeepOutBox`` penalizes every predicted step (and
points interpolated between steps) inside the box plus a safety margin, and is marked hard. The
margin is calibrated (``calibrate_probe_margin``) on the held-out episodes: the 99% quantile of
the worst distance, over one executed block, between the probed interpolated prediction and the
true agent position (encoder, predictor, probe and the in-block path together); ``--margin-quantile
0`` uses the fixed ``--margin`` instead.
The task energy is the probed goal distance by default (``--task latent`` for ``GoalDistance``).
Each planner runs MPC with and without the guardrail, and the TRUE simulator state is checked
against the box at every executed step.

    .venv/bin/python benchmarks/tworoom_guardrails.py   # needs runs/bench_tworoom (tworoom_cem.py)

Writes ``benchmarks/results/tworoom_guardrails.{json,md}``.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.energies import ProbedGoalDistance
from lewm_mpc.envs import get_env_spec
from lewm_mpc.envs.two_room_keepout import KeepOut, inside_box
from lewm_mpc.evaluation import EvalConfig, run_pair, sample_pairs, wilson_interval


@dataclass(frozen=True)
class Args:
    work: Path = Path("runs/bench_tworoom")
    out: Path = Path("benchmarks/results")
    pairs: int = 50
    box_half: float = 0.07  # half side of the keep-out square (arena widths)
    margin_quantile: float = 0.99  # coverage of the calibrated margin; 0: use `margin`
    margin: float = 0.03  # fixed safety margin, used only with margin_quantile 0
    min_distance: float = 0.3  # start-goal distance, so the box holds neither
    clearance: float = 0.08  # free lane beside the grown box, across the direction of travel
    substeps: int = 5  # guardrail points per predicted step (a block spans 5 env steps)
    running_weight: float = 1.0  # running term of the task energy
    task: str = "probed"  # "probed": ProbedGoalDistance(probe); "latent": GoalDistance
    planners: str = "CEM,MPPI,Gradient"
    probe: str = "mlp"  # latent -> agent xy probe: "linear" or "mlp"
    probe_samples: int = 6000
    iterations: int = 0  # > 0 overrides every planner's iterations (smoke runs); 0: defaults
    seed: int = 0


# CEM and MPPI as LeWorldModel's 300 x 30 without the default L-BFGS polish (as measured)
PLANNERS = {
    "CEM": functools.partial(lm.CEM, iterations=30, polish_steps=0),
    "MPPI": functools.partial(lm.MPPI, iterations=30, polish_steps=0),
    "Gradient": lm.GradientPlanner,
}


def main(args: Args) -> dict:
    torch.manual_seed(args.seed)
    model = lm.WorldModel.load(args.work / "model")
    dataset = EpisodeDataset.load(args.work / "tworoom.h5")
    spec = get_env_spec("tworoom")
    train_ids, val_ids = dataset.split(0.1, seed=0)
    settings = KeepOut(
        args.box_half, args.min_distance, args.clearance, args.substeps,
        args.margin_quantile if args.margin_quantile > 0 else 0.99, args.probe, args.probe_samples,
        None if args.margin_quantile > 0 else args.margin,
    )  # fmt: skip
    started = time.perf_counter()
    probe, margin, calibration = settings.fit_probe(model, dataset, train_ids, val_ids, args.seed)
    probe_seconds = time.perf_counter() - started  # with the margin calibration
    calibrated = (
        {"windows": calibration.windows, "per_step": calibration.per_step}
        if settings.margin is None
        else None
    )

    scenario = settings.scenario(margin)
    config = EvalConfig(num_pairs=args.pairs, seed=args.seed)
    pairs, _ = sample_pairs(dataset, val_ids, spec, config, accept=scenario.accepts)
    env = spec.make(obs_mode="pixels")
    rows = []
    for name in args.planners.split(","):
        cls = PLANNERS[name]
        for guarded in (False, True):
            successes = entered = violating_steps = feasible_plans = plans = 0
            label = f"{name} {'+ keep-out' if guarded else 'task only'}"
            for pair in tqdm(pairs, desc=label, dynamic_ncols=True):
                low, high = scenario.box(pair.start_state, pair.goal_state)
                guardrails = [settings.guardrail(probe, low, high, margin)] if guarded else []
                energy = (
                    ProbedGoalDistance(probe, args.running_weight)
                    if args.task == "probed"
                    else lm.GoalDistance(args.running_weight)
                )
                budget = {"iterations": args.iterations} if args.iterations > 0 else {}
                planner = cls(model, seed=args.seed, energy=energy, guardrails=guardrails, **budget)
                episode = run_pair(env, planner, pair, config)
                hits = inside_box(episode.states, low, high)
                successes += episode.succeeded
                entered += bool(hits.any())
                violating_steps += int(hits.sum())
                feasible_plans += sum(bool(plan.feasible) for plan in episode.plans)
                plans += len(episode.plans)
            rows.append({
                "planner": name, "guardrail": guarded, "pairs": len(pairs),
                "success_rate": successes / len(pairs),
                "success_ci95": wilson_interval(successes, len(pairs)),
                "episodes_entering_box": entered, "violating_steps": violating_steps,
                "plans_feasible_under_model": feasible_plans / max(plans, 1),
            })  # fmt: skip
    env.close()
    result = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()},
        "probe": {"kind": args.probe, "r2": probe.r2_mean, "fit_seconds": round(probe_seconds, 2)},
        "margin": {"value": margin, "quantile": args.margin_quantile, "calibration": calibrated},
        "rows": _merged(args, rows),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "tworoom_guardrails.json", json.dumps(result, indent=1))
    write_text_atomic(args.out / "tworoom_guardrails.md", markdown(result))
    print(markdown(result))
    return result


def _merged(args: Args, rows: list[dict]) -> list[dict]:
    """``rows`` plus the committed rows of planners not run now, if measured with the same
    settings (so slow planners can be measured in a separate run)."""
    path = args.out / "tworoom_guardrails.json"
    if not path.exists():
        return rows
    previous = json.loads(path.read_text())
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()}
    same = {k: v for k, v in previous["args"].items() if k != "planners"} == {
        k: v for k, v in settings.items() if k != "planners"
    }
    ran = {row["planner"] for row in rows}
    kept = [row for row in previous["rows"] if same and row["planner"] not in ran]
    order = [name for name in PLANNERS if name in ran | {row["planner"] for row in kept}]
    return sorted(rows + kept, key=lambda row: (order.index(row["planner"]), row["guardrail"]))


def _margin_text(margin: dict) -> str:
    if margin["calibration"] is None:
        return f"Fixed safety margin {margin['value']:.3f}."
    return (
        f"Safety margin {margin['value']:.3f}: the {100 * margin['quantile']:g}% quantile of the "
        f"worst probed-prediction error over one executed block, measured on "
        f"{margin['calibration']['windows']} held-out windows."
    )


def markdown(result: dict) -> str:
    probe = result["probe"]
    lines = [
        f"Keep-out box across the straight path, {result['rows'][0]['pairs']} held-out same-room "
        f"pairs; {probe['kind']} probe latent -> agent xy, held-out R^2 {probe['r2']:.3f} "
        f"(fitted and margin calibrated in {probe['fit_seconds']:.1f} s). "
        f"{_margin_text(result['margin'])}",
        "",
        "| planner | guardrail | success (95% CI) | episodes entering the box (true state) "
        "| violating steps | plans feasible under the model |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        low, high = row["success_ci95"]
        lines.append(
            f"| {row['planner']} | {'hard keep-out' if row['guardrail'] else 'none'} | "
            f"{100 * row['success_rate']:.0f}% ({100 * low:.0f}-{100 * high:.0f}) | "
            f"{row['episodes_entering_box']}/{row['pairs']} | {row['violating_steps']} | "
            f"{100 * row['plans_feasible_under_model']:.0f}% |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
