"""How PushT episodes fail: the closest approach to the goal, and success by the turn a goal asks.

Runs a PushT model (default the shipped one) with CEM at the reference budget on held-out pairs
(regenerated, ``--eval-seed``; the pairs of ``lewm-mpc eval --model M --pairs N --eval-seed S``)
and records, per pair, the start's position error (the success test's norm over agent and block
xy) and angle error, and the step of the episode closest to success (the smallest position
error / 20 px + angle error / 20°) with both errors there. Reported: success by the block turn the
goal asks (its start angle error), and how close the failures came.

    MUJOCO_GL=egl .venv/bin/python benchmarks/pusht_failures.py --pairs 50 --eval-seed 1

Writes ``benchmarks/results/pusht_failures[_<tag>].{json,md}``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lewm_mpc as lm
from lewm_mpc.envs.pusht import SUCCESS_ANGLE, SUCCESS_DISTANCE, pose_error
from lewm_mpc.evaluation import EvalConfig, run_pair, sample_pairs

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _results.py beside this file
from _results import pair_seed, reference_cem, write_results

TURNS = ((0, 20), (20, 45), (45, 180))  # degrees of block turn start -> goal


@dataclass(frozen=True)
class Args:
    model: str = "pretrained:pusht"
    pairs: int = 50
    eval_seed: int = 1
    planner_seed: int = 0
    near_px: float = 40.0  # a failure within near_px and near_degrees is a near miss
    near_degrees: float = 40.0
    out: Path = Path("benchmarks/results")
    tag: str = ""


def pair_row(episode: lm.control.Episode, goal: np.ndarray) -> dict[str, Any]:
    """Errors at the start and at the step closest to success (position px, angle degrees)."""
    distance, angle = pose_error(episode.states, goal[None])  # (T + 1,) each
    closest = int(np.argmin(distance / SUCCESS_DISTANCE + angle / SUCCESS_ANGLE))
    return {"success": bool(episode.succeeded), "start_px": float(distance[0]),
            "start_degrees": float(np.degrees(angle[0])), "closest_step": closest,
            "closest_px": float(distance[closest]),
            "closest_degrees": float(np.degrees(angle[closest]))}  # fmt: skip


def summary(rows: list[dict[str, Any]], args: Args) -> dict[str, Any]:
    """Success per turn bin; where the failures ended."""
    turn = np.array([row["start_degrees"] for row in rows])
    solved = np.array([row["success"] for row in rows])
    bins = []
    for low, high in TURNS:
        inside = (turn >= low) & (turn < high)
        bins.append({"degrees": [low, high], "pairs": int(inside.sum()),
                     "solved": int(solved[inside].sum())})  # fmt: skip
    failed = [row for row in rows if not row["success"]]
    near = [
        row
        for row in failed
        if row["closest_px"] < args.near_px and row["closest_degrees"] < args.near_degrees
    ]
    angle_limit = float(np.degrees(SUCCESS_ANGLE))

    def median(values: np.ndarray) -> float | None:
        return float(np.median(values)) if values.size else None

    return {
        "by_turn": bins,
        "failures": len(failed),
        "near_misses": len(near),
        "failures_position_met": sum(row["closest_px"] < SUCCESS_DISTANCE for row in failed),
        "failures_angle_met": sum(row["closest_degrees"] < angle_limit for row in failed),
        "median_turn_solved": median(turn[solved]),
        "median_turn_failed": median(turn[~solved]),
    }


def markdown(result: dict[str, Any]) -> str:
    args, totals = result["args"], result["summary"]
    solved = sum(row["success"] for row in result["rows"])
    lines = [f"{args['model']}, CEM at the reference budget, {len(result['rows'])} regenerated "
             f"held-out pairs (seed {args['eval_seed']}): {solved} solved.", "",
             "| block turn the goal asks | solved |", "|---|---|"]  # fmt: skip
    for entry in totals["by_turn"]:
        low, high = entry["degrees"]
        lines.append(f"| {low}-{high}° | {entry['solved']} / {entry['pairs']} |")

    def degrees(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}°"

    lines += [
        "",
        f"Of {totals['failures']} failures, {totals['near_misses']} came within "
        f"{args['near_px']} px and {args['near_degrees']}° of the goal at their closest step; "
        f"there {totals['failures_position_met']} met the position test and "
        f"{totals['failures_angle_met']} the angle test (both at once would be a success). "
        f"Median turn asked: {degrees(totals['median_turn_solved'])} by the solved pairs, "
        f"{degrees(totals['median_turn_failed'])} by the failed ones.",
    ]
    return "\n".join(lines) + "\n"


def main(args: Args) -> dict[str, Any]:
    torch.set_num_threads(1)
    run = lm.load_run(args.model, regenerate=True)
    assert run.env_spec is not None and run.env_spec.name == "pusht", "a PushT model"
    config = EvalConfig(num_pairs=args.pairs, seed=args.eval_seed)
    pairs, _ = sample_pairs(run.dataset, run.val_ids, run.env_spec, config)
    env = run.env_spec.make_for_budget(config.budget, "pixels", run.dataset.meta.env_config)
    planner = reference_cem(run, args.planner_seed)
    rows = []
    for index, pair in enumerate(pairs):
        planner.reset(seed=pair_seed(args.planner_seed, index))
        rows.append(
            {"pair": index, **pair_row(run_pair(env, planner, pair, config), pair.goal_state)}
        )
    env.close()
    name = "pusht_failures" + (f"_{args.tag}" if args.tag else "")
    return write_results(args.out, name, args, rows, markdown, summary=summary(rows, args))


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
