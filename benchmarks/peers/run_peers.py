"""Peers side by side: our CEM/MPPI/gradient planners and stable-worldmodel's, pytorch_mppi's and
torchrl's, on the same world model, the same energy and the same start/goal pairs.

Every planner plans from the same raw start/goal observations (held-out validation episodes,
goal 25 env steps after the start) at the same budget (``adapters.peer_budgets``), and at a sweep
of smaller iteration counts (``--sweep``, ``--grad-sweep``). Reported per planner: per-plan
latency (median over the timed plans, after warm-up, with the same torch thread count) and its
ratio to ours of the same family (CEM, MPPI, gradient); the energy of the returned plan,
evaluated with OUR energy on OUR model's rollout of the returned actions, and its ratio to ours
(geometric mean over pairs, and ratio of the means); the energy-vs-time curve of the sweep; and
the time each of our planners needs to reach each peer's full-budget mean energy. Each peer also
gets a row with its settings tuned on other pairs (``tuning.py``).

Install the peers into their own venv first (``benchmarks/peers/README.md``), then:

    .venv-peers/bin/python benchmarks/peers/run_peers.py

Plans are timed interleaved (every planner at every budget once per start/goal slot, order
rotated), so the speed drift of a shared machine hits all alike; the latency ratio is the median
of per-slot ratios. Writes ``benchmarks/results/peers.{json,md}`` atomically; a rerun with the
same settings keeps the planners already measured (``--fresh`` to redo them).
``--planners ours`` runs only our planners (no peer installed needed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the adapter modules beside this file

import report
import tuning
from adapters import Budget, Contender, PeerBudget, PlanScorer, peer_budgets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_machine.py
from _machine import cpu_model_name, round_robin

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.evaluation import EvalConfig, sample_pairs

Pairs = list[tuple[np.ndarray, np.ndarray]]
STEPPED = ("pytorch_mppi/MPPI", "torchrl/CEM")
"""Peers whose loop steps the model: each also gets a full-budget row with the stepped model."""


@dataclass(frozen=True)
class Args:
    """Command-line arguments (each field is a ``--flag``)."""

    model: str = "pretrained:tworoom"  # checkpoint directory or a shipped model
    data: str = ""  # dataset file; "": the model's own, or regenerated held-out episodes
    out: Path = Path("benchmarks/results")
    planners: str = "all"  # "all", "ours", or comma-separated row names (e.g. "ours/CEM,swm/CEM")
    pairs: int = 5
    repeats: int = 3
    warmup: int = 1  # warm-up plans per planner and budget
    threads: int = 1  # 2 threads on 2 busy cores stalled plans 5-8x
    seed: int = 0
    goal_offset: int = 25
    horizon: int = 5
    num_samples: int = 300
    iterations: int = 30
    topk: int = 30
    grad_restarts: int = 8
    grad_iterations: int = 100
    grad_lr: float = 0.1
    mppi_lambda: float = 1.0
    mppi_noise_sigma: float = 1.0
    swm_mppi_temperature: float = 0.5
    polish_steps: int = 50  # L-BFGS evaluations of the "+polish" rows
    sweep: str = "1,2,4,8,15,30"  # iterations of the sampling planners' energy-vs-time sweep
    grad_sweep: str = "3,6,12,25,50,100"  # steps of the gradient planners' sweep
    polish_sweep: str = "5,10,20,30,40,50"  # polish lengths of our planners at their defaults
    tune_pairs: int = 4  # pairs each peer's grid is tried on (0: no tuned rows)
    tune_seed: int = 1  # seed of the tuning pairs (drawn from episodes no reported pair uses)
    peer_rollout: str = "fused"  # "fused" or "stepped": how pytorch_mppi/torchrl call the model
    no_stepped: bool = False  # skip the full-budget "stepped" rows (what the fused rollout saves)
    fresh: bool = False

    def budget(self) -> Budget:
        """The shared budget."""
        names = {f.name for f in dataclasses.fields(Budget)}
        return Budget(**{k: v for k, v in asdict(self).items() if k in names})

    def sweep_of(self, row: PeerBudget) -> list[int]:
        """The row's iteration counts (gradient steps, polish lengths), ending at its full
        budget (only that for a "stepped" row)."""
        if row.variant_name == "stepped":
            return [row.iterations]
        if row.iterations_key == "polish_steps":  # our planners at their defaults
            text, full = self.polish_sweep, self.polish_steps
        elif row.family == "gradient":
            text, full = self.grad_sweep, self.grad_iterations
        else:
            text, full = self.sweep, self.iterations
        values = sorted({int(v) for v in text.split(",") if v.strip()} | {full})
        if values[0] < 1 or values[-1] > full:
            raise ValueError(f"sweep {text!r} must lie in [1, {full}]")
        return values


# -------------------------------------------------------------------------------- planners
@dataclass(frozen=True)
class Ours:
    """One of our planners behind the :class:`~adapters.Contender` interface."""

    planner: lm.Planner

    def reset(self, seed: int) -> None:
        self.planner.reset(seed=seed)  # cold start, like every peer

    def plan(self, obs: np.ndarray, goal: np.ndarray) -> np.ndarray:
        return self.planner.plan(obs, goal).actions  # (H * block, A)


def build(
    row: PeerBudget, model: lm.WorldModel, budget: Budget, seed: int
) -> tuple[Contender, str]:
    """The planner of one row and the library (with version) it comes from."""
    kwargs = dict(row.kwargs)
    if row.library == "ours":
        planner_class: Callable[..., lm.Planner] = {
            "CEM": lm.CEM,
            "MPPI": lm.MPPI,
            "gradient": lm.GradientPlanner,
        }[row.kind.partition("+")[0]]  # fmt: skip  (a "+polish" row: polish_steps in kwargs)
        return Ours(planner_class(model, seed=seed, **kwargs)), f"lewm_mpc {lm.__version__}"
    if row.library == "swm":
        import peer_swm

        contender = peer_swm.SwmPlanner(row.kind.lower(), model, kwargs, budget.horizon, seed=seed)
        return contender, f"stable-worldmodel {peer_swm.version()}"
    if row.library == "pytorch_mppi":
        import peer_mppi

        return peer_mppi.PytorchMppiPlanner(model, kwargs), f"pytorch_mppi {peer_mppi.version()}"
    if row.library == "torchrl":
        import peer_torchrl

        return peer_torchrl.TorchRLCEMPlanner(model, kwargs), f"torchrl {peer_torchrl.version()}"
    raise ValueError(f"unknown planner row {row.name!r}")


def _config_of(contender: Contender) -> dict[str, Any] | None:
    """Our planner's full config (JSON-ready), None for a peer."""
    if not isinstance(contender, Ours):
        return None
    return {k: v if isinstance(v, int | float | str | bool | None) else str(v)
            for k, v in asdict(contender.planner.config).items()}  # fmt: skip


# ----------------------------------------------------------------------------------- pairs
def load_pairs(run: lm.Run, args: Args, tune: bool) -> tuple[Pairs, Pairs, dict[str, Any]]:
    """(start, goal) pixel observations: the reported pairs from the model's held-out episodes,
    and (if ``tune``) ``args.tune_pairs`` tuning pairs from held-out episodes that no reported
    pair uses.

    Returns:
        Reported pairs, tuning pairs, and where they came from (JSON-ready).
    """
    if run.env_spec is None:
        raise ValueError(f"{run.data_path} holds no built-in env's data: no start/goal pairs")
    dataset, block = run.dataset, run.dataset.action_block

    def draw(episodes: np.ndarray, num: int, seed: int) -> tuple[Pairs, list[list[int]]]:
        config = EvalConfig(num_pairs=num, goal_offset=args.goal_offset, seed=seed)
        pairs, _ = sample_pairs(dataset, episodes, run.env_spec, config)
        rows = [dataset.episode_slice(p.episode).start + p.start_step // block for p in pairs]
        offset = args.goal_offset // block
        observations = [
            (np.array(dataset.pixels[row]), np.array(dataset.pixels[row + offset])) for row in rows
        ]
        return observations, [[int(p.episode), int(p.start_step)] for p in pairs]

    reported, reported_at = draw(run.val_ids, args.pairs, args.seed)
    tuning_pairs: Pairs = []
    tuning_at: list[list[int]] = []
    if tune:
        spare = np.setdiff1d(run.val_ids, [episode for episode, _ in reported_at])
        tuning_pairs, tuning_at = draw(spare, args.tune_pairs, args.tune_seed)
    source = {
        "data": str(run.data_path),
        "regenerated": run.regenerated,
        "reported_pairs": reported_at,  # [episode, start step]
        "tuning_pairs": tuning_at,
    }
    return reported, tuning_pairs, source


# -------------------------------------------------------------------------------- measuring
def measure(
    contenders: dict[str, Contender],
    scorer: PlanScorer,
    pairs: Pairs,
    args: Args,
    bar: Any,
    groups: list[list[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Warm every contender up, then time ``repeats`` cold plans per pair, interleaved.

    The plans are timed in slots (repeat, pair); within a slot every contender plans once, in
    an order rotated from slot to slot. Drift of a shared machine's speed (other tenants,
    clocks) then hits all contenders alike instead of whichever happened to run during it, and
    each slot gives a paired latency ratio. Each plan is scored with our energy.

    Args:
        contenders: the planners, by name.
        scorer: our energy of a returned plan.
        pairs: (start, goal) observations.
        args: repeats, warm-up plans, seed.
        bar: progress (``update(1)`` per timed plan).
        groups: contenders planned back to back (e.g. every planner at one budget); the groups
            and the contenders within each are rotated from slot to slot. Default: one group.

    Returns:
        Per contender name: latency p50/p95/min, the per-slot seconds, energies and the
        fraction of returned action entries outside the bounds.
    """
    latents = [scorer.encode(obs, goal) for obs, goal in pairs]
    names = list(contenders)
    groups = groups if groups is not None else [names]
    for name in names:
        for index in range(args.warmup):
            contenders[name].reset(args.seed + 10_000 + index)
            contenders[name].plan(*pairs[0])
    seconds: dict[str, list[float]] = {name: [] for name in names}
    energies: dict[str, list[float]] = {name: [] for name in names}
    outside: dict[str, list[float]] = {name: [] for name in names}
    slot = 0
    for repeat in range(args.repeats):
        for index, (obs, goal) in enumerate(pairs):
            for group in (groups[g] for g in round_robin(len(groups), slot)):
                for name in (group[i] for i in round_robin(len(group), slot)):
                    contender = contenders[name]
                    contender.reset(args.seed + repeat * len(pairs) + index)
                    start = time.perf_counter()
                    actions = contender.plan(obs, goal)
                    seconds[name].append(time.perf_counter() - start)
                    scored = scorer.score(*latents[index], actions)
                    energies[name].append(scored.energy)
                    outside[name].append(scored.out_of_bounds)
                    bar.update(1)
            slot += 1
    stats = {}
    for name in names:
        energy = np.array(energies[name]).reshape(args.repeats, len(pairs))
        stats[name] = {
            "latency_p50_s": float(np.median(seconds[name])),
            "latency_p95_s": float(np.percentile(seconds[name], 95)),
            "latency_min_s": float(np.min(seconds[name])),
            "plans_timed": len(seconds[name]),
            "seconds_per_slot": [float(x) for x in seconds[name]],
            "energy_mean": float(energy.mean()),
            "energy_median": float(np.median(energy)),
            "energy_per_pair": [float(e) for e in energy.mean(axis=0)],
            "out_of_bounds_fraction": float(np.mean(outside[name])),
        }
    return stats


def _setup(args: Args) -> dict[str, Any]:
    """What a result depends on (a rerun reuses rows only when this is unchanged)."""
    skip = {"out", "planners", "fresh"}
    return {k: str(v) for k, v in asdict(args).items() if k not in skip}


def _select(args: Args, budgets: dict[str, PeerBudget]) -> list[str]:
    """The default rows asked for (tuned rows follow their peer)."""
    if args.planners == "all":
        return list(budgets)
    if args.planners == "ours":
        return [n for n in budgets if n.startswith("ours/")]
    names = [n.strip() for n in args.planners.split(",") if n.strip()]
    unknown = [n for n in names if n not in budgets]
    if unknown:
        raise ValueError(f"unknown planners {unknown}; choose from {list(budgets)}")
    return names


def _tune(
    names: list[str],
    budgets: dict[str, PeerBudget],
    previous: dict[str, Any],
    model: lm.WorldModel,
    scorer: PlanScorer,
    pairs: Pairs,
    args: Args,
) -> dict[str, tuning.Tuning]:
    """Each selected peer's grid, tried on the tuning pairs (or reused from ``previous``)."""
    todo = [n for n in names if n in tuning.GRIDS and n not in previous]
    found = {n: tuning.Tuning.from_dict(previous[n]) for n in names if n in previous}
    if not todo:
        return found
    total = sum(len(tuning.grid_settings(budgets[n])) for n in todo) * len(pairs)
    with tqdm(total=total, desc="tuning") as bar:
        for name in todo:
            found[name] = tuning.tune(
                budgets[name], lambda row: build(row, model, args.budget(), args.seed)[0],
                scorer, pairs, seed=args.seed + 20_000, on_plan=lambda: bar.update(1),
            )  # fmt: skip
    return found


def main(args: Args) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    budgets = peer_budgets(args.budget(), args.peer_rollout)
    names = _select(args, budgets)
    run = lm.load_run(args.model, data_path=args.data or None)
    model = run.model
    model.requires_grad_(False)  # planning never needs parameter gradients (any planner)
    scorer = PlanScorer(model)
    tune = args.tune_pairs > 0 and any(name in tuning.GRIDS for name in names)
    pairs, tuning_pairs, source = load_pairs(run, args, tune)

    path = args.out / "peers.json"
    setup = _setup(args)
    rows: dict[str, dict[str, Any]] = {}
    previous_tuning: dict[str, Any] = {}
    if path.exists() and not args.fresh:
        previous = json.loads(path.read_text())
        if previous.get("setup") == setup:
            rows = {r["name"]: r for r in previous["rows"]}
            previous_tuning = previous.get("tuning", {})
    tuned = (
        _tune(names, budgets, previous_tuning, model, scorer, tuning_pairs, args) if tune else {}
    )
    selected: dict[str, PeerBudget] = {}  # default rows, each followed by its variants
    for name in names:
        selected[name] = budgets[name]
        if name in tuned:
            selected[f"{name} tuned"] = budgets[name].tuned(tuned[name].best)
        if name in STEPPED and args.peer_rollout == "fused" and not args.no_stepped:
            selected[f"{name} stepped"] = budgets[name].stepped()
    names = list(selected)
    todo = [name for name in names if name not in rows]
    contenders: dict[str, Contender] = {}
    groups: dict[int, list[str]] = {}  # sweep level -> contenders at it
    for name in todo:
        row = selected[name]
        try:
            contender, library = build(row, model, args.budget(), args.seed)
        except ImportError as error:
            raise ImportError(
                f"{name} needs its library ({error}); install the peers with "
                "`bash benchmarks/peers/setup_venv.sh` and run with .venv-peers/bin/python, "
                "or pick planners with --planners (e.g. --planners ours)"
            ) from error
        rows[name] = {
            "name": name, "base": row.base, "variant": row.variant_name,
            "family": row.family, "library": library,
            "kwargs": dict(row.kwargs), "config": _config_of(contender),
            "energy_evals_per_plan": row.energy_evals, "notes": list(row.notes),
            "swept": row.iterations_key,
        }  # fmt: skip
        sweep = args.sweep_of(row)
        for level, iterations in enumerate(sweep):
            key = f"{name}@{iterations}"
            if iterations == row.iterations:
                contenders[key] = contender
            else:
                contenders[key] = build(row.at(iterations), model, args.budget(), args.seed)[0]
            groups.setdefault(level - len(sweep), []).append(key)  # full budget: level -1
    if contenders:
        with tqdm(total=len(contenders) * args.repeats * len(pairs), desc="peers") as bar:
            stats = measure(contenders, scorer, pairs, args, bar, [*groups.values()])
        for name in todo:
            row = selected[name]
            rows[name].update(stats[f"{name}@{row.iterations}"])
            rows[name]["sweep"] = [
                {"iterations": it, "energy_evals": row.at(it).energy_evals,
                 **{k: v for k, v in stats[f"{name}@{it}"].items() if k != "seconds_per_slot"}}
                for it in args.sweep_of(row)
            ]  # fmt: skip
    result = _assemble(args, setup, rows, names, source, tuned)
    _write(args.out, result)
    print(report.markdown(result))
    return result


def _assemble(
    args: Args,
    setup: dict[str, Any],
    rows: dict[str, dict[str, Any]],
    names: list[str],
    source: dict[str, Any],
    tuned: dict[str, tuning.Tuning],
) -> dict[str, Any]:
    ordered = [dict(rows[n]) for n in names if n in rows]
    # Each family's reference: our plain planner (the "+polish" and "default" rows are
    # compared with it too).
    ours = {r["family"]: r for r in ordered if r["name"] in report.OURS_REFERENCES}
    for row in ordered:
        fused = rows.get(row["base"]) if row.get("variant") == "stepped" else None
        row["latency_ratio_to_fused"] = report.paired_latency_ratio(row, fused) if fused else None
        reference = ours.get(row["family"])
        row["ours"] = reference["name"] if reference else None
        row["latency_ratio_to_ours"] = (
            report.paired_latency_ratio(row, reference) if reference else None
        )
        mine, theirs = row["energy_per_pair"], reference["energy_per_pair"] if reference else None
        row["energy_ratio_to_ours"] = report.geometric_mean_ratio(mine, theirs) if theirs else None
        row["energy_mean_ratio_to_ours"] = (
            report.arithmetic_mean_ratio(mine, theirs) if theirs else None
        )
    return {
        "setup": setup,
        "machine": {
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "processor": cpu_model_name(),
        },
        "budget": asdict(args.budget()),
        "pairs": source,
        "rows": ordered,
        "time_to_quality": report.time_to_quality(ordered),
        "tuning": {name: result.to_dict() for name, result in tuned.items()},
    }


def _write(out: Path, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "peers.json", json.dumps(result, indent=1))
    write_text_atomic(out / "peers.md", report.markdown(result))


def parse_args(argv: list[str] | None = None) -> Args:
    """``Args`` from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field, default in asdict(Args()).items():
        flag = f"--{field.replace('_', '-')}"
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=type(default), default=default)
    return Args(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    main(parse_args())
