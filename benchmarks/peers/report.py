"""From measured rows to the comparison: ratios to ours, time to a peer's plan quality, and the
markdown tables of ``benchmarks/results/peers.md``.

Pure functions over the runner's row dicts (no model, no peer library), so the default test suite
checks them in the main venv.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

OURS_REFERENCES = ("ours/CEM", "ours/MPPI", "ours/gradient")
"""Our plain planners, the reference of their family (latency and energy ratios)."""
OURS_CURVES = ("ours/CEM", "ours/MPPI", "ours/CEM+polish", "ours/MPPI+polish",
               "ours/CEM default", "ours/MPPI default", "ours/gradient")  # fmt: skip
"""Our rows whose energy-vs-time curves are read for the time to each peer's quality."""
POLISH_SWEPT = "polish_steps"
"""A row's ``swept`` value when its sweep varies the polish length (our planners at their
defaults), not the iterations."""


# ---------------------------------------------------------------------------------- ratios
def paired_latency_ratio(row: dict[str, Any], reference: dict[str, Any]) -> float:
    """Median over timing slots of row / reference plan seconds (same repeat and pair, timed
    back to back); the ratio of the p50s when the rows were not timed in the same slots."""
    mine, theirs = row.get("seconds_per_slot"), reference.get("seconds_per_slot")
    if mine and theirs and len(mine) == len(theirs):
        return float(np.median(np.asarray(mine) / np.asarray(theirs)))
    return row["latency_p50_s"] / reference["latency_p50_s"]


def geometric_mean_ratio(values: Sequence[float], reference: Sequence[float]) -> float:
    """Geometric mean over pairs of value / reference: every pair weighs the same, so easy pairs
    (energies near 0, where small absolute gaps are large ratios) count as much as hard ones."""
    ratios = np.asarray(values, dtype=float) / np.maximum(np.asarray(reference, dtype=float), 1e-12)
    return float(np.exp(np.mean(np.log(np.maximum(ratios, 1e-12)))))


def arithmetic_mean_ratio(values: Sequence[float], reference: Sequence[float]) -> float:
    """Mean energy over mean energy: dominated by the hardest pairs (largest energies)."""
    return float(np.mean(values) / max(float(np.mean(reference)), 1e-12))


# ----------------------------------------------------------------------- time to quality
@dataclass(frozen=True)
class TimeToEnergy:
    """When a curve first reaches an energy.

    Attributes:
        seconds: plan time to reach it (None: not reached within the sweep).
        iterations: the matching iteration (step) count, interpolated like the time.
        bound: ``"interpolated"`` (between two budgets of the sweep), ``"at most"`` (already
            reached at its smallest budget) or ``"not reached"``.
    """

    seconds: float | None
    iterations: float | None
    bound: str


def time_to_energy(curve: Sequence[dict[str, Any]], target: float) -> TimeToEnergy:
    """The plan time at which a sweep's mean energy first drops to ``target``.

    Between the last budget above the target and the first at or below it, the energy is taken
    as linear in log time (and in log iterations): the budgets are spaced geometrically.

    Args:
        curve: the sweep, by increasing budget: dicts with ``iterations``, ``latency_p50_s``
            and ``energy_mean``.
        target: the energy to reach.
    """
    previous = None
    for point in curve:
        energy = point["energy_mean"]
        if energy <= target:
            if previous is None:
                return TimeToEnergy(point["latency_p50_s"], point["iterations"], "at most")
            above = previous["energy_mean"]  # > target >= energy
            fraction = (above - target) / (above - energy)
            seconds = _log_between(previous["latency_p50_s"], point["latency_p50_s"], fraction)
            iterations = _log_between(previous["iterations"], point["iterations"], fraction)
            return TimeToEnergy(seconds, iterations, "interpolated")
        previous = point
    return TimeToEnergy(None, None, "not reached")


def _log_between(low: float, high: float, fraction: float) -> float:
    """``fraction`` of the way from ``low`` to ``high`` in log space."""
    return math.exp(math.log(low) + fraction * (math.log(high) - math.log(low)))


def time_to_quality(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each of our curves and each peer row: our time to the peer's full-budget mean
    energy, and the speed-up = the peer's full-budget plan time / that time.

    Returns:
        One dict per (ours, peer): ``ours``, ``peer``, ``target_energy``, ``peer_seconds``,
        ``seconds``, ``iterations``, ``bound`` and ``speedup`` (None when not reached; a lower
        bound when ``bound == "at most"``).
    """
    by_name = {row["name"]: row for row in rows}
    results = []
    for ours in (by_name[n] for n in OURS_CURVES if n in by_name and by_name[n].get("sweep")):
        peers = (r for r in rows if not r["name"].startswith("ours/"))
        for peer in (r for r in peers if r.get("variant") != "stepped"):
            reached = time_to_energy(ours["sweep"], peer["energy_mean"])
            speedup = peer["latency_p50_s"] / reached.seconds if reached.seconds else None
            results.append(
                {
                    "ours": ours["name"],
                    "peer": peer["name"],
                    "target_energy": peer["energy_mean"],
                    "peer_seconds": peer["latency_p50_s"],
                    **asdict(reached),
                    "speedup": speedup,
                }
            )
    return results


# ---------------------------------------------------------------------------------- markdown
def _ratio(value: float | None, suffix: str = "x") -> str:
    return "n/a" if value is None else f"{value:.2f}{suffix}"


def _speedup(entry: dict[str, Any], budget: dict[str, Any], swept: str | None) -> str:
    if entry["speedup"] is None:
        return "not reached"
    samples = budget["num_samples"] if entry["ours"] != "ours/gradient" else budget["grad_restarts"]
    at = f"{samples}x{entry['iterations']:.3g}"
    if swept == POLISH_SWEPT:
        at = f"{entry['iterations']:.3g} L-BFGS"
    sign = "≥" if entry["bound"] == "at most" else ""
    return f"{sign}{entry['speedup']:.2f}x ({1000 * entry['seconds']:.0f} ms, {at})"


def markdown(result: dict[str, Any]) -> str:
    """``peers.md``: the setup, the main table, energy vs time, time to quality, tuning."""
    budget, setup, machine = result["budget"], result["setup"], result["machine"]
    rows = result["rows"]
    lines = [
        f"Same world model (`{setup['model']}`), same energy (`lm.GoalDistance()`), same "
        f"{setup['pairs']} held-out start/goal pairs x {setup['repeats']} cold plans each, "
        f"{machine['torch_threads']} torch threads on {machine['processor']}, torch "
        f"{machine['torch']}; plans timed interleaved (every planner at every budget once per "
        "slot, order rotated), latency ratio = median over slots of the per-slot ratio. Full "
        f"budget {budget['num_samples']} samples x {budget['iterations']} iterations (top "
        f"{budget['topk']}), horizon {budget['horizon']} blocks; gradient "
        f"{budget['grad_restarts']} restarts x {budget['grad_iterations']} steps. pytorch_mppi "
        f"and torchrl call the model with the `{setup['peer_rollout']}` rollout. Energy: OUR "
        "energy of the returned plan on OUR model's rollout (lower is better); vs ours: the "
        "geometric mean over pairs of the per-pair ratio / the ratio of the mean energies.",
        "",
        "| planner | library | evals/plan | latency p50 | latency vs ours | energy (mean) | "
        "energy vs ours, geometric mean / arithmetic mean | out of bounds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['library']} | {row['energy_evals_per_plan']:,} | "
            f"{1000 * row['latency_p50_s']:.0f} ms | "
            + (
                f"{row['latency_ratio_to_ours']:.2f}x {row['ours']}"
                if row["latency_ratio_to_ours"] is not None
                else "n/a"
            )
            + f" | {row['energy_mean']:.3f} | {_ratio(row['energy_ratio_to_ours'])} / "
            f"{_ratio(row['energy_mean_ratio_to_ours'])} | "
            f"{100 * row['out_of_bounds_fraction']:.0f}% |"
        )
    stepped = [r for r in rows if r.get("latency_ratio_to_fused") is not None]
    if stepped:
        ratios = "; ".join(
            f"{r['name']} takes {r['latency_ratio_to_fused']:.2f}x the plan time of {r['base']}"
            for r in stepped
        )
        lines += [
            "",
            f"Stepped vs fused model calls in the same peer (paired, same slots): {ratios}.",
        ]
    lines += _sweep_tables(rows)
    lines += _quality_table(result.get("time_to_quality", []), rows, budget)
    lines += _tuning_table(result.get("tuning", {}), setup)
    lines += ["", "Mismatches that remain at equal budget:", ""]
    by_name = {row["name"]: row for row in rows}
    for row in rows:
        base = by_name.get(row.get("base", row["name"]))
        inherited = set(base["notes"]) if base is not None and base is not row else set()
        for note in (n for n in row["notes"] if n not in inherited):
            lines.append(f"- {row['name']}: {note}")
    return "\n".join(lines) + "\n"


def _sweep_tables(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    kinds = (("sampling planners", "iterations"), ("gradient planners", "steps"),
             ("our sampling planners at their defaults", "L-BFGS evaluations"))  # fmt: skip
    for title, unit in kinds:
        swept = [r for r in rows if r.get("sweep") and _curve_kind(r) == unit]
        if not swept:
            continue
        budgets = sorted({p["iterations"] for r in swept for p in r["sweep"]})
        lines += [
            "",
            f"Energy vs plan time, {title} (mean energy / median plan time at each "
            f"number of {unit}, same slots):",
            "",
            f"| planner | {' | '.join(f'{b} {unit}' for b in budgets)} |",
            "|---|" + "---|" * len(budgets),
        ]
        for row in swept:
            points = {p["iterations"]: p for p in row["sweep"]}
            cells = [
                f"{points[b]['energy_mean']:.2f} / {1000 * points[b]['latency_p50_s']:.0f} ms"
                if b in points
                else ""
                for b in budgets
            ]
            lines.append(f"| {row['name']} | {' | '.join(cells)} |")
    return lines


def _curve_kind(row: dict[str, Any]) -> str:
    """What a row's sweep varies: iterations, gradient steps or the polish length."""
    if row.get("swept") == POLISH_SWEPT:
        return "L-BFGS evaluations"
    return "steps" if row["family"] == "gradient" else "iterations"


def _quality_table(
    entries: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], budget: dict[str, Any]
) -> list[str]:
    if not entries:
        return []
    ours = list(dict.fromkeys(e["ours"] for e in entries))
    peers = list(dict.fromkeys(e["peer"] for e in entries))
    by_key = {(e["ours"], e["peer"]): e for e in entries}
    swept = {row["name"]: row.get("swept") for row in rows}
    lines = [
        "",
        "Time to a peer's quality: the plan time our planner needs to reach the peer's mean "
        "energy at the full budget (interpolated in log time between the sweep's budgets), and "
        "the speed-up = the peer's full-budget plan time / that time (≥: reached at our "
        "smallest budget already).",
        "",
        f"| peer | its energy / plan time | {' | '.join(ours)} |",
        "|---|---|" + "---|" * len(ours),
    ]
    for peer in peers:
        first = by_key[(ours[0], peer)]
        cells = [_speedup(by_key[(o, peer)], budget, swept.get(o)) for o in ours]
        lines.append(
            f"| {peer} | {first['target_energy']:.3f} / {1000 * first['peer_seconds']:.0f} ms | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def _tuning_table(tuning: dict[str, Any], setup: dict[str, Any]) -> list[str]:
    if not tuning:
        return []
    lines = [
        "",
        f"Tuned rows: every setting of a small grid planned {setup['tune_pairs']} tuning pairs "
        f"once each at the full budget (pairs seeded {setup['tune_seed']}, drawn from held-out "
        "episodes that no reported pair uses); kept: the lowest geometric mean energy.",
        "",
        "| peer | grid | default: energy geo. mean | tuned setting | tuned: energy geo. mean |",
        "|---|---|---|---|---|",
    ]
    for name, data in tuning.items():
        grid = data["grid"]
        knobs = {k: sorted({g["settings"][k] for g in grid}) for k in grid[0]["settings"]}
        default = data.get("default_score")
        best = min(g["energy_geo_mean"] for g in grid)
        lines.append(
            f"| {name} | {', '.join(f'{k} {v}' for k, v in knobs.items())} | "
            + ("n/a" if default is None else f"{default:.3f}")
            + f" | {', '.join(f'{k}={v}' for k, v in data['best'].items())} | {best:.3f} |"
        )
    return lines
