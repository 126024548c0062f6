"""Peers side by side: our CEM/MPPI/gradient planners and stable-worldmodel's, pytorch_mppi's and
torchrl's, on the same world model, the same energy and the same start/goal pairs.

Every planner plans from the same raw start/goal observations (held-out validation episodes,
goal 25 env steps after the start) at the same budget (``adapters.peer_budgets``). Reported per
planner: per-plan latency (median over the timed plans, after warm-up, with the same torch
thread count) and its ratio to ours of the same family (CEM, MPPI, gradient), and the energy of
the returned plan, evaluated with OUR energy on OUR model's rollout of the returned actions.

Install the peers into their own venv first (``benchmarks/peers/README.md``), then:

    .venv-peers/bin/python benchmarks/peers/run_peers.py

Plans are timed interleaved (every planner once per start/goal slot, order rotated), so the speed
drift of a shared machine hits all alike; the latency ratio is the median of per-slot ratios.
Writes ``benchmarks/results/peers.{json,md}`` atomically; a rerun with the same settings keeps
the planners already measured (``--fresh`` to redo them).
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
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the adapter modules beside this file

from adapters import Budget, PeerBudget, PlanScorer, peer_budgets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_machine.py
from _machine import cpu_model_name, round_robin

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.envs import get_env_spec
from lewm_mpc.evaluation import EvalConfig, sample_pairs


@dataclass(frozen=True)
class Args:
    """Command-line arguments (each field is a ``--flag``)."""

    model: Path = Path("runs/bench_tworoom/model")
    data: Path = Path("runs/bench_tworoom/tworoom.h5")
    out: Path = Path("benchmarks/results")
    planners: str = "all"  # "all", "ours", or comma-separated row names (e.g. "ours/CEM,swm/CEM")
    pairs: int = 5
    repeats: int = 2
    warmup: int = 2
    threads: int = 2
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
    fresh: bool = False

    def budget(self) -> Budget:
        """The shared budget."""
        names = {f.name for f in dataclasses.fields(Budget)}
        return Budget(**{k: v for k, v in asdict(self).items() if k in names})


class Contender(Protocol):
    """What the runner needs of a planner: reseed, and plan from raw observations."""

    def reset(self, seed: int) -> None: ...

    def plan(self, obs: np.ndarray, goal: np.ndarray) -> Any: ...


@dataclass(frozen=True)
class Ours:
    """One of our planners behind the :class:`Contender` interface."""

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
    library, _, kind = row.name.partition("/")
    if library == "ours":
        planner_class: Callable[..., lm.Planner] = {
            "CEM": lm.CEM, "MPPI": lm.MPPI, "gradient": lm.GradientPlanner
        }[kind]  # fmt: skip
        return Ours(planner_class(model, seed=seed, **kwargs)), f"lewm_mpc {lm.__version__}"
    if library == "swm":
        import peer_swm

        contender = peer_swm.SwmPlanner(kind.lower(), model, kwargs, budget.horizon, seed=seed)
        return contender, f"stable-worldmodel {peer_swm.version()}"
    if library == "pytorch_mppi":
        import peer_mppi

        return peer_mppi.PytorchMppiPlanner(model, kwargs), f"pytorch_mppi {peer_mppi.version()}"
    if library == "torchrl":
        import peer_torchrl

        return peer_torchrl.TorchRLCEMPlanner(model, kwargs), f"torchrl {peer_torchrl.version()}"
    raise ValueError(f"unknown planner row {row.name!r}")


def load_pairs(args: Args) -> list[tuple[np.ndarray, np.ndarray]]:
    """(start, goal) pixel observations from held-out validation episodes."""
    dataset = EpisodeDataset.load(args.data)
    spec = get_env_spec(dataset.meta.env_id)
    config = EvalConfig(num_pairs=args.pairs, goal_offset=args.goal_offset, seed=args.seed)
    _, val_ids = dataset.split(config.val_fraction, seed=config.split_seed)
    pairs, _ = sample_pairs(dataset, val_ids, spec, config)
    rows = [dataset.episode_slice(p.episode).start + p.start_step for p in pairs]
    return [
        (np.array(dataset.pixels[row]), np.array(dataset.pixels[row + args.goal_offset]))
        for row in rows
    ]


def measure(
    contenders: dict[str, Contender],
    scorer: PlanScorer,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    args: Args,
    bar: tqdm,
) -> dict[str, dict[str, Any]]:
    """Warm every contender up, then time ``repeats`` cold plans per pair, interleaved.

    The plans are timed in slots (repeat, pair); within a slot every contender plans once, in
    an order rotated from slot to slot. Drift of a shared machine's speed (other tenants,
    clocks) then hits all contenders alike instead of whichever happened to run during it, and
    each slot gives a paired latency ratio. Each plan is scored with our energy.

    Returns:
        Per contender name: latency p50/p95/min, the per-slot seconds, energies and the
        fraction of returned action entries outside the bounds.
    """
    latents = [scorer.encode(obs, goal) for obs, goal in pairs]
    names = list(contenders)
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
            for name in (names[i] for i in round_robin(len(names), slot)):
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


def main(args: Args) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    budgets = peer_budgets(args.budget())
    if args.planners == "all":
        names = list(budgets)
    elif args.planners == "ours":
        names = [n for n in budgets if n.startswith("ours/")]
    else:
        names = [n.strip() for n in args.planners.split(",") if n.strip()]
        unknown = [n for n in names if n not in budgets]
        if unknown:
            raise ValueError(f"unknown planners {unknown}; choose from {list(budgets)}")
    model = lm.WorldModel.load(args.model)
    model.requires_grad_(False)  # planning never needs parameter gradients (any planner)
    scorer = PlanScorer(model)
    pairs = load_pairs(args)

    path = args.out / "peers.json"
    setup = _setup(args)
    rows: dict[str, dict[str, Any]] = {}
    if path.exists() and not args.fresh:
        previous = json.loads(path.read_text())
        if previous.get("setup") == setup:
            rows = {r["name"]: r for r in previous["rows"]}
    todo = [name for name in names if name not in rows]
    contenders: dict[str, Contender] = {}
    for name in todo:
        try:
            contenders[name], library = build(budgets[name], model, args.budget(), args.seed)
        except ImportError as error:
            raise ImportError(
                f"{name} needs its library ({error}); install the peers with "
                "`bash benchmarks/peers/setup_venv.sh` and run with .venv-peers/bin/python, "
                "or pick planners with --planners (e.g. --planners ours)"
            ) from error
        row = budgets[name]
        rows[name] = {
            "name": name, "family": row.family, "library": library,
            "kwargs": {k: v for k, v in row.kwargs.items()},
            "energy_evals_per_plan": row.energy_evals, "notes": list(row.notes),
        }  # fmt: skip
    if contenders:
        with tqdm(total=len(contenders) * args.repeats * len(pairs), desc="peers") as bar:
            for name, stats in measure(contenders, scorer, pairs, args, bar).items():
                rows[name].update(stats)
    result = _assemble(args, setup, rows, budgets)
    _write(args.out, result)
    print(_markdown(result))
    return result


def _assemble(
    args: Args, setup: dict[str, Any], rows: dict[str, dict[str, Any]], budgets: dict
) -> dict[str, Any]:
    ordered = [dict(rows[n]) for n in budgets if n in rows]
    ours = {r["family"]: r for r in ordered if r["name"].startswith("ours/")}
    for row in ordered:
        reference = ours.get(row["family"])
        row["ours"] = reference["name"] if reference else None
        row["latency_ratio_to_ours"] = _paired_latency_ratio(row, reference) if reference else None
        row["energy_ratio_to_ours"] = (
            _geometric_mean_ratio(row["energy_per_pair"], reference["energy_per_pair"])
            if reference
            else None
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
        "rows": ordered,
    }


def _paired_latency_ratio(row: dict[str, Any], reference: dict[str, Any]) -> float:
    """Median over timing slots of row / reference plan seconds (same repeat and pair, timed
    back to back); the ratio of the p50s when the rows were not timed in the same slots."""
    mine, theirs = row.get("seconds_per_slot"), reference.get("seconds_per_slot")
    if mine and theirs and len(mine) == len(theirs):
        return float(np.median(np.asarray(mine) / np.asarray(theirs)))
    return row["latency_p50_s"] / reference["latency_p50_s"]


def _geometric_mean_ratio(values: list[float], reference: list[float]) -> float:
    """Geometric mean over pairs of value / reference (energies span orders of magnitude
    between easy and hard pairs, so a ratio of means would be the hardest pair's ratio)."""
    ratios = np.asarray(values, dtype=float) / np.maximum(np.asarray(reference, dtype=float), 1e-12)
    return float(np.exp(np.mean(np.log(np.maximum(ratios, 1e-12)))))


def _write(out: Path, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "peers.json", json.dumps(result, indent=1))
    write_text_atomic(out / "peers.md", _markdown(result))


def _markdown(result: dict[str, Any]) -> str:
    budget, setup = result["budget"], result["setup"]
    lines = [
        f"Same world model (`{setup['model']}`), same energy (`lm.GoalDistance()`), same "
        f"{setup['pairs']} held-out start/goal pairs x {setup['repeats']} cold plans each, "
        f"{result['machine']['torch_threads']} torch threads on {result['machine']['processor']}, "
        f"torch {result['machine']['torch']}; plans timed interleaved (every planner once per "
        "slot, order rotated), latency ratio = median over slots of the per-slot ratio. "
        f"Sampling budget {budget['num_samples']} samples x {budget['iterations']} iterations "
        f"(top {budget['topk']}), horizon {budget['horizon']} blocks; gradient budget "
        f"{budget['grad_restarts']} restarts x {budget['grad_iterations']} steps. Energy: OUR "
        "energy of the returned plan on OUR model's rollout (lower is better).",
        "",
        "| planner | library | evals/plan | latency p50 | latency vs ours | energy (mean) | "
        "energy vs ours (geo. mean over pairs) | out of bounds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        ratio = row["latency_ratio_to_ours"]
        energy_ratio = row["energy_ratio_to_ours"]
        lines.append(
            f"| {row['name']} | {row['library']} | {row['energy_evals_per_plan']:,} | "
            f"{1000 * row['latency_p50_s']:.0f} ms | "
            + (f"{ratio:.2f}x {row['ours']}" if ratio is not None else "n/a")
            + f" | {row['energy_mean']:.3f} | "
            + (f"{energy_ratio:.2f}x" if energy_ratio is not None else "n/a")
            + f" | {100 * row['out_of_bounds_fraction']:.0f}% |"
        )
    lines += ["", "Mismatches that remain at equal budget:", ""]
    for row in result["rows"]:
        for note in row["notes"]:
            lines.append(f"- {row['name']}: {note}")
    return "\n".join(lines) + "\n"


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
