"""Planning success per environment: data, training, probe R², CEM success, floor and oracle.

For one environment (``--env``), following its recipe (``lewm_mpc.recipes``):

1. collect the dataset (resumable; ``--workers`` processes);
2. train the default CPU world model (resumes; an existing model is reused and its recorded
   training time reported);
3. fit linear and MLP probes latent -> position (agent / fingertip / block / cube) and report
   their held-out R²;
4. run CEM at LeWorldModel's budget (300 x 30, top 30, horizon 5) on ``--pairs`` held-out pairs
   of the evaluation protocol;
5. a random-policy floor: uniform random actions for the same budget on the same pairs;
6. an oracle upper bound on the first ``--oracle-pairs`` pairs: CEM with the true simulator as
   its model (``lm.SimulatorModel``, state reset + step) and a state-space goal distance, at a
   reduced budget (simulating 9000 rollouts per plan in Python is too slow), beside the learned
   model at that same reduced budget on the same pairs, which separates planner limits from
   world-model limits.

Every finished stage is cached under ``--work/<env>/stages.json``, so an interrupted run resumes.

    .venv/bin/python benchmarks/env_success.py --env reacher

Writes ``benchmarks/results/env_success_<env>.json`` and the table of every env measured so far,
``benchmarks/results/env_success.md``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.data.collection import collect_dataset
from lewm_mpc.energies import fit_probe_from_dataset
from lewm_mpc.envs import EnvSpec, get_env_spec
from lewm_mpc.evaluation import EvalConfig, Pair, evaluate, run_pair, sample_pairs, wilson_interval
from lewm_mpc.planners.base import Planner
from lewm_mpc.recipes import Recipe, get_recipe
from lewm_mpc.training import train

LEWM = {"tworoom": 87, "reacher": 86, "pusht": 96, "cube": 74}  # published success (%)


@dataclass(frozen=True)
class Args:
    env: str = "reacher"
    work: Path = Path("runs/bench")
    out: Path = Path("benchmarks/results")
    pairs: int = 50
    oracle_pairs: int = 10
    oracle_samples: int = 64
    oracle_iterations: int = 8
    workers: int = 0  # 0: the recipe's
    episodes: int = 0  # 0: the recipe's; otherwise a scaled run with its own work dir and row
    train_steps: int = 0  # 0: the recipe's
    samples: int = 300  # CEM budget (LeWorldModel's reference 300 x 30; smaller for smoke runs)
    iterations: int = 30
    seed: int = 0


class Stages:
    """Results of finished stages, kept in a JSON file written atomically after each stage."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def run(self, name: str, fn: Any) -> Any:
        if name not in self.done:
            self.done[name] = fn()
            write_text_atomic(self.path, json.dumps(self.done, indent=1))
        return self.done[name]


def scaled(recipe: Recipe, episodes: int, train_steps: int) -> tuple[Recipe, str]:
    """The recipe with more (or fewer) episodes / training steps, and the tag naming the run
    (``""`` for the recipe itself)."""
    episodes = episodes or recipe.episodes
    steps = train_steps or recipe.train.steps
    if (episodes, steps) == (recipe.episodes, recipe.train.steps):
        return recipe, ""
    train_config = replace(recipe.train, steps=steps)
    return replace(recipe, episodes=episodes, train=train_config), f"_{episodes}ep_{steps}steps"


def success_summary(successes: list[bool], steps: list[int | None]) -> dict[str, Any]:
    hits = [s for s in steps if s is not None]
    return {
        "pairs": len(successes),
        "successes": int(sum(successes)),
        "success_rate": float(np.mean(successes)),
        "ci95": wilson_interval(int(sum(successes)), len(successes)),
        "steps_to_success_mean": float(np.mean(hits)) if hits else None,
    }


def random_floor(spec: EnvSpec, env_config: dict, pairs: list[Pair], config: EvalConfig,
                 seed: int) -> dict[str, Any]:  # fmt: skip
    """Uniform random actions for the protocol's budget on each pair (state observations)."""
    env = spec.make(obs_mode="state", env_config=env_config)
    rng = np.random.default_rng(seed)
    successes, steps = [], []
    try:
        for pair in pairs:
            env.reset(options={"state": pair.start_state, "goal": pair.goal_state})
            hit = None
            for t in range(config.budget):
                env.step(rng.uniform(env.action_space.low, env.action_space.high))
                if spec.is_success(env.unwrapped.get_state(), pair.goal_state):
                    hit = t + 1
                    break
            successes.append(hit is not None)
            steps.append(hit)
    finally:
        env.close()
    return success_summary(successes, steps)


def run_pairs(planner: Planner, env: Any, pairs: list[Pair], config: EvalConfig,
              desc: str) -> dict[str, Any]:  # fmt: skip
    successes, steps, latencies = [], [], []
    for pair in tqdm(pairs, desc=desc, dynamic_ncols=True):
        episode = run_pair(env, planner, pair, config)
        successes.append(episode.succeeded)
        steps.append(episode.steps_to_success)
        latencies += [plan.solve_s for plan in episode.plans]
    return {**success_summary(successes, steps), "plan_p50_s": float(np.median(latencies))}


def main(args: Args) -> dict[str, Any]:
    recipe: Recipe = get_recipe(args.env)
    spec = get_env_spec(args.env)
    recipe, tag = scaled(recipe, args.episodes, args.train_steps)
    work = args.work / f"{spec.name}{tag}"
    work.mkdir(parents=True, exist_ok=True)
    stages = Stages(work / "stages.json")
    torch.manual_seed(args.seed)

    started = time.perf_counter()
    data = collect_dataset(
        spec.name, work / "data.h5", recipe.episodes, recipe.episode_steps, args.seed,
        args.workers or recipe.workers,
    )  # fmt: skip
    collect_minutes = stages.run("collect_minutes", lambda: (time.perf_counter() - started) / 60)
    summary = train(data, work / "model", recipe.model, replace(recipe.train, seed=args.seed))
    model = lm.WorldModel.load(work / "model")
    dataset = EpisodeDataset.load(data)
    train_ids, val_ids = dataset.split(recipe.train.val_fraction, seed=0)

    def probes() -> dict[str, float]:
        return {
            kind: fit_probe_from_dataset(
                model, dataset, train_ids, recipe.probe_target, kind=kind, seed=args.seed
            ).r2_mean
            for kind in ("linear", "mlp")
        }

    probe_r2 = stages.run("probe_r2", probes)
    config = EvalConfig(num_pairs=args.pairs, seed=args.seed)
    pairs, _ = sample_pairs(dataset, val_ids, spec, config)
    env_config = dataset.meta.env_config

    def cem() -> dict[str, Any]:
        planner = lm.CEM(model, num_samples=args.samples, iterations=args.iterations,
                         topk=max(1, args.samples // 10), seed=args.seed,
                         polish_steps=0)  # fmt: skip
        report = evaluate(planner, dataset, spec, config)
        return {
            **success_summary([p.success for p in report.pairs],
                              [p.steps_to_success for p in report.pairs]),
            "skipped_solved": report.skipped_solved,
            "plan_p50_s": report.latency_p50_s,
            "plan_p95_s": report.latency_p95_s,
            "minutes": report.seconds / 60,
            "num_samples": args.samples,
            "iterations": args.iterations,
        }  # fmt: skip

    reference = (args.samples, args.iterations) == (300, 30)
    cem_result = stages.run("cem" if reference else f"cem_{args.samples}x{args.iterations}", cem)
    floor = stages.run("random", lambda: random_floor(spec, env_config, pairs, config, args.seed))

    subset = pairs[: args.oracle_pairs]
    small = {"num_samples": args.oracle_samples, "iterations": args.oracle_iterations,
             "topk": max(2, args.oracle_samples // 10), "polish_steps": 0}  # fmt: skip

    def oracle() -> dict[str, Any]:
        with lm.SimulatorModel(spec, env_config) as simulator:
            env = simulator.make_env()
            planner = lm.CEM(simulator, seed=args.seed, energy=simulator.energy(), **small)
            result = run_pairs(planner, env, subset, config, "oracle")
        env.close()
        return result

    def learned_small() -> dict[str, Any]:
        env = spec.make(obs_mode="pixels", env_config=env_config)
        result = run_pairs(lm.CEM(model, seed=args.seed, **small), env, subset, config, "small")
        env.close()
        return result

    oracle_result = stages.run("oracle", oracle)
    small_result = stages.run("learned_small_budget", learned_small)

    result = {
        "env": spec.name,
        "lewm_success_pct": LEWM.get(spec.name),  # None: not in the LeWM paper
        "recipe": {
            "episodes": recipe.episodes,
            "episode_steps": recipe.episode_steps,
            "frames": dataset.num_rows,
            "train_steps": summary.steps,
            "batch_size": recipe.train.batch_size,
        },
        "collect_minutes": round(collect_minutes, 2),
        "train_minutes": round(summary.seconds / 60, 2),
        "parameters": model.num_parameters(),
        "val_prediction_loss": summary.val_prediction,
        "probe": {"target": recipe.probe_name, "r2": probe_r2},
        "cem": cem_result,
        "random": floor,
        "oracle_budget": small,
        "oracle": oracle_result,
        "learned_at_oracle_budget": small_result,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / f"env_success_{spec.name}{tag}.json", json.dumps(result, indent=1))
    table = markdown(args.out)
    write_text_atomic(args.out / "env_success.md", table)
    print(table)
    return result


def _pct(summary: dict[str, Any]) -> str:
    low, high = summary["ci95"]
    return f"{100 * summary['success_rate']:.0f}% ({100 * low:.0f}-{100 * high:.0f})"


def markdown(out: Path) -> str:
    """The table of every ``env_success_*.json`` in ``out``."""
    lines = [
        "| env | LeWM | CEM 300x30 (95% CI) | random floor | oracle (simulator) | learned, same "
        "small budget | pairs (oracle) | data | training | val pred. loss | probe R² "
        "(linear / MLP) | plan p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(out.glob("env_success_*.json")):
        r = json.loads(path.read_text())
        budget, probe = r["oracle_budget"], r["probe"]
        cem_budget = (r["cem"].get("num_samples", 300), r["cem"].get("iterations", 30))
        at = "" if cem_budget == (300, 30) else " at {}x{}".format(*cem_budget)
        lewm = "-" if r["lewm_success_pct"] is None else f"{r['lewm_success_pct']}%"
        lines.append(
            f"| {r['env']} | {lewm} | **{_pct(r['cem'])}**{at} | "
            f"{_pct(r['random'])} | {_pct(r['oracle'])} | {_pct(r['learned_at_oracle_budget'])} "
            f"| {r['cem']['pairs']} ({r['oracle']['pairs']}, CEM "
            f"{budget['num_samples']}x{budget['iterations']}) | "
            f"{r['recipe']['episodes']} ep, {r['recipe']['frames']} frames, "
            f"{r['collect_minutes']:.1f} min | {r['recipe']['train_steps']} steps, "
            f"{r['train_minutes']:.1f} min | {r['val_prediction_loss']:.4f} | "
            f"{probe['target']}: {probe['r2']['linear']:.3f} / {probe['r2']['mlp']:.3f} | "
            f"{1000 * r['cem']['plan_p50_s']:.0f} ms |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
