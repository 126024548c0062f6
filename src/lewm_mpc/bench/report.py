"""Aggregate job results per (env, planner, mode) and write summary.{json,csv,md} and the plot."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from lewm_mpc.atomic import atomic_write, write_text_atomic
from lewm_mpc.bench.budget import PLANNERS
from lewm_mpc.bench.jobs import ENVS, MODES
from lewm_mpc.bench.worker import JobResult
from lewm_mpc.evaluation import wilson_interval


@dataclass(frozen=True)
class SummaryRow:
    """One (env, planner, mode) cell of the comparison.

    Attributes:
        env: environment name.
        planner: planner name.
        mode: "equal-budget" or "equal-time".
        episodes: jobs (pairs x seeds) aggregated.
        successes: episodes that reached the goal.
        success_rate: successes / episodes.
        ci95_low: lower end of the 95% Wilson interval of the success rate.
        ci95_high: upper end.
        steps_to_success_mean: mean env steps to success over successful episodes.
        latency_p50_s: median plan latency over every plan of every episode.
        latency_p95_s: 95th percentile of the same.
        energy_evals_per_plan: mean energy evaluations per plan.
        budget_evals: configured evaluations per plan.
        deadline_s: per-plan deadline (equal-time mode).
        final_energy_mean: mean energy of the episodes' last plans.
        violations: env steps inside a keep-out region, true state, summed over episodes
            (None: the env has no guardrail).
        episodes_violating: episodes with at least one such step (None: no guardrail).
        plans: plans aggregated.
    """

    env: str
    planner: str
    mode: str
    episodes: int
    successes: int
    success_rate: float
    ci95_low: float
    ci95_high: float
    steps_to_success_mean: float | None
    latency_p50_s: float
    latency_p95_s: float
    energy_evals_per_plan: float
    budget_evals: int
    deadline_s: float | None
    final_energy_mean: float | None
    violations: int | None
    episodes_violating: int | None
    plans: int


def _order(values: Sequence[str], known: Sequence[str]) -> list[str]:
    return sorted(set(values), key=lambda v: (known.index(v) if v in known else len(known), v))


def summarize(results: Sequence[JobResult]) -> list[SummaryRow]:
    """One row per (env, planner, mode) present in ``results``, in env, mode, planner order."""
    groups: dict[tuple[str, str, str], list[JobResult]] = {}
    for result in results:
        job = result.job
        groups.setdefault((job.env, job.planner, job.mode), []).append(result)
    rows = []
    for env in _order([k[0] for k in groups], ENVS):
        for mode in _order([k[2] for k in groups], MODES):
            for planner in _order([k[1] for k in groups], PLANNERS):
                group = groups.get((env, planner, mode))
                if group:
                    rows.append(_row(env, planner, mode, group))
    return rows


def _row(env: str, planner: str, mode: str, group: list[JobResult]) -> SummaryRow:
    successes = sum(r.success for r in group)
    steps = [r.steps_to_success for r in group if r.steps_to_success is not None]
    latencies = np.array([s for r in group for s in r.plan_seconds])
    evals = [e for r in group for e in r.energy_evals]
    finals = [r.final_energy for r in group if r.final_energy is not None]
    violations = [r.violations for r in group]
    measured = all(v is not None for v in violations)
    low, high = wilson_interval(successes, len(group))
    budget = group[0].job.budget
    return SummaryRow(
        env=env,
        planner=planner,
        mode=mode,
        episodes=len(group),
        successes=successes,
        success_rate=successes / len(group),
        ci95_low=low,
        ci95_high=high,
        steps_to_success_mean=float(np.mean(steps)) if steps else None,
        latency_p50_s=float(np.percentile(latencies, 50)) if latencies.size else 0.0,
        latency_p95_s=float(np.percentile(latencies, 95)) if latencies.size else 0.0,
        energy_evals_per_plan=sum(evals) / max(1, len(evals)),
        budget_evals=budget.evals,
        deadline_s=budget.deadline_s,
        final_energy_mean=float(np.mean(finals)) if finals else None,
        violations=int(sum(violations)) if measured else None,  # type: ignore[arg-type]
        episodes_violating=sum(bool(v) for v in violations) if measured else None,
        plans=len(evals),
    )


def markdown(rows: Sequence[SummaryRow]) -> str:
    """The comparison as a markdown table."""
    lines = [
        "| env | mode | planner | episodes | success (95% CI) | steps to success "
        "| plan latency p50 / p95 | evals/plan | final plan energy "
        "| keep-out violations (episodes / steps) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        mode = row.mode if row.deadline_s is None else f"{row.mode} ({row.deadline_s:g} s)"
        steps = "n/a" if row.steps_to_success_mean is None else f"{row.steps_to_success_mean:.1f}"
        energy = "n/a" if row.final_energy_mean is None else f"{row.final_energy_mean:.4g}"
        violations = (
            "no guardrail"
            if row.violations is None
            else f"{row.episodes_violating}/{row.episodes} / {row.violations}"
        )
        lines.append(
            f"| {row.env} | {mode} | {row.planner} | {row.episodes} | "
            f"{100 * row.success_rate:.0f}% ({100 * row.ci95_low:.0f}-{100 * row.ci95_high:.0f})"
            f" | {steps} | {1000 * row.latency_p50_s:.0f} / {1000 * row.latency_p95_s:.0f} ms | "
            f"{row.energy_evals_per_plan:,.0f} | {energy} | {violations} |"
        )
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[SummaryRow]) -> str:
    """The rows as CSV with a header (empty cells for None)."""
    buffer = io.StringIO()
    names = [f.name for f in fields(SummaryRow)]
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in asdict(row).items()})
    return buffer.getvalue()


def _import_pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "the success-vs-latency plot needs matplotlib: pip install 'lewm-mpc[plots]' "
            "(or pass --no-plot)"
        ) from None
    return plt


def plot_success_vs_latency(rows: Sequence[SummaryRow], path: str | Path) -> Path:
    """One panel per env: success rate (95% CI bars) against median plan latency.

    Colour: planner; marker: mode. At most three panels per row; constrained layout, plain
    millisecond tick labels (rotated, major ticks only) and the legend below the panels, so no
    label overlaps another. Written atomically as PNG.
    """
    plt = _import_pyplot()
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    envs = _order([row.env for row in rows], ENVS)
    columns = min(3, max(1, len(envs)))
    lines = max(1, -(-len(envs) // columns))  # ceil
    figure, axes = plt.subplots(lines, columns, figsize=(4.4 * columns, 3.4 * lines + 0.8),
                                squeeze=False, layout="constrained")  # fmt: skip
    for unused in axes.flat[len(envs) :]:
        unused.set_visible(False)
    names = [*PLANNERS, *_order([row.planner for row in rows if row.planner not in PLANNERS], ())]
    colors = {name: f"C{i}" for i, name in enumerate(names)}  # built-ins keep their colours
    markers = {"equal-budget": "o", "equal-time": "s"}
    for axis, env in zip(axes.flat, envs, strict=False):
        for row in (r for r in rows if r.env == env):
            rate = 100 * row.success_rate
            error = [[rate - 100 * row.ci95_low], [100 * row.ci95_high - rate]]
            axis.errorbar(
                1000 * row.latency_p50_s, rate, yerr=error, fmt=markers.get(row.mode, "o"),
                color=colors.get(row.planner, "k"), capsize=3,
                label=f"{row.planner}, {row.mode}",
            )  # fmt: skip
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())  # 2x10^3-style labels collided
        axis.tick_params(axis="x", which="major", labelrotation=30)
        axis.set_ylim(-5, 105)
        axis.set_title(env)
        axis.set_xlabel("plan latency p50 (ms)")
        axis.grid(alpha=0.3)
    for axis in axes[:, 0]:
        axis.set_ylabel("success (%), 95% CI")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", fontsize="small",
                      ncol=min(4, 2 * columns, len(handles)))  # fmt: skip
    path = Path(path)
    with atomic_write(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


@dataclass(frozen=True)
class ReportFiles:
    """Paths of the written summaries (``plot`` None when not drawn)."""

    json: Path
    csv: Path
    markdown: Path
    plot: Path | None


def write_report(
    results: Sequence[JobResult], out: str | Path, meta: dict[str, Any], plot: bool = True
) -> ReportFiles:
    """Write ``summary.json`` (rows + ``meta``), ``summary.csv``, ``summary.md`` and, with
    ``plot``, ``success_vs_latency.png`` into ``out`` (each atomically; the plot last, so a
    missing matplotlib leaves the tables written)."""
    out = Path(out)
    rows = summarize(results)
    payload = {**meta, "rows": [asdict(row) for row in rows]}
    files = ReportFiles(out / "summary.json", out / "summary.csv", out / "summary.md", None)
    write_text_atomic(files.json, json.dumps(payload, indent=1))
    write_text_atomic(files.csv, to_csv(rows))
    write_text_atomic(files.markdown, markdown(rows))
    if not plot:
        return files
    return ReportFiles(files.json, files.csv, files.markdown,
                       plot_success_vs_latency(rows, out / "success_vs_latency.png"))  # fmt: skip
