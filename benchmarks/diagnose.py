"""Planner limits vs model limits: the simulator oracle and the learned model on the same pairs.

For one environment whose dataset and model exist under ``--work`` (as ``env_success.py`` leaves
them: ``data.h5`` and ``model/``; or ``--model`` and ``--data``, where a shipped model without
``--data`` gets its regenerated held-out episodes), on the first ``--pairs`` held-out pairs of the
evaluation protocol:

1. **oracle**: CEM at the full budget with the true simulator as its model
   (``lm.SimulatorModel``: state reset + step; latent = env state, energy = goal-feature
   distance). What the planner achieves with a perfect model.
2. **learned**: the same CEM budget, horizon and receding horizon with the learned model.
3. **probe R²** of the block pose (PushT: block xy, cos/sin of its angle; Cube: cube xyz; other
   envs: their probe target), linear and MLP, on held-out episodes: how much of the task state
   the latents carry.

Every (planner, pair) job runs in its own process (``--workers``) and is appended to
``<work>/diagnosis/jobs.jsonl`` when it finishes, so a killed run resumes where it stopped.

    .venv/bin/python benchmarks/diagnose.py --env pusht --pairs 10 --workers 2
    .venv/bin/python benchmarks/diagnose.py --env cube --model pretrained:cube
    .venv/bin/python benchmarks/diagnose.py --env pusht --kinds oracle --data goal.h5 --work W

With ``--kinds oracle`` no model is needed: the pairs come from the validation episodes of the
split a model trained on ``--data`` with the default settings would use.

Writes ``benchmarks/results/diagnosis_<env>.json`` and the table of every env diagnosed so far,
``benchmarks/results/diagnosis.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lewm_mpc.atomic import write_text_atomic

LEWM = {"tworoom": 87, "reacher": 86, "pusht": 96, "cube": 74}  # published success (%)


@dataclass(frozen=True)
class Job:
    """One planner on one pair."""

    kind: str  # "oracle" | "learned"
    pair: int


def _pose_target(env: str) -> Any:
    """What the diagnosis probes: the block (cube) pose, else the env's probe target."""
    from lewm_mpc.envs import get_env_spec

    if env == "pusht":

        def block_pose(states: np.ndarray) -> np.ndarray:
            states = np.asarray(states, np.float64)
            angle = states[..., 4:5]
            return np.concatenate([states[..., 2:4], np.cos(angle), np.sin(angle)], axis=-1)

        return "block xy + (cos, sin) angle", block_pose
    probe = get_env_spec(env).probe
    return probe.name, probe.read


@dataclass(frozen=True)
class _Episodes:
    """What the oracle needs of a run when there is no model: the data and its split."""

    dataset: Any
    val_ids: Any


def _setup(args: argparse.Namespace) -> tuple[Any, Any, list]:
    import lewm_mpc as lm
    from lewm_mpc.data import EpisodeDataset
    from lewm_mpc.envs import get_env_spec
    from lewm_mpc.evaluation import EvalConfig, sample_pairs
    from lewm_mpc.training import TrainConfig

    spec = get_env_spec(args.env)
    if "learned" in args.kinds.split(",") or args.model is not None:
        run = lm.load_run(args.model, args.data, regenerated_episodes=args.regenerated_episodes,
                          progress=True)  # the model's own split  # fmt: skip
    else:  # oracle only: the split a default training run on this dataset holds out
        dataset = EpisodeDataset.load(args.data)
        defaults = TrainConfig()
        run = _Episodes(dataset, dataset.split(defaults.val_fraction, defaults.seed)[1])
    config = EvalConfig(num_pairs=args.pairs, seed=args.seed)
    pairs, _ = sample_pairs(run.dataset, run.val_ids, spec, config)
    return spec, run, pairs


def _run_job(payload: tuple[argparse.Namespace, Job]) -> dict[str, Any]:
    import torch

    import lewm_mpc as lm
    from lewm_mpc.evaluation import EvalConfig, run_pair

    args, job = payload
    torch.set_num_threads(1)
    spec, run, pairs = _setup(args)
    pair = pairs[job.pair]
    config = EvalConfig(num_pairs=args.pairs, seed=args.seed)
    budget = {"horizon": args.horizon, "num_samples": args.samples, "iterations": args.iterations,
              "topk": args.topk, "receding_horizon": args.receding, "seed": args.seed,
              "polish_steps": 0}  # fmt: skip
    started = time.perf_counter()
    env_config = run.dataset.meta.env_config
    if job.kind == "oracle":
        with lm.SimulatorModel(spec, env_config) as simulator:
            env = simulator.make_env()
            planner = lm.CEM(simulator, energy=simulator.energy(), **budget)
            episode = run_pair(env, planner, pair, config)
    else:
        env = spec.make(obs_mode="pixels", env_config=env_config)
        episode = run_pair(env, lm.CEM(run.model, **budget), pair, config)
    env.close()
    return {**asdict(job), "success": bool(episode.succeeded),
            "steps_to_success": episode.steps_to_success,
            "plans": len(episode.plans), "seconds": time.perf_counter() - started}  # fmt: skip


def _probe_r2(args: argparse.Namespace) -> dict[str, Any]:
    from lewm_mpc.energies import fit_probe_from_dataset

    _, run, _ = _setup(args)
    if isinstance(run, _Episodes):
        return {"target": "none (no model)", "r2": {"linear": float("nan"), "mlp": float("nan")}}
    name, target = _pose_target(args.env)
    probes = {kind: fit_probe_from_dataset(run.model, run.dataset, run.train_ids, target,
                                           kind=kind, seed=args.seed)
              for kind in ("linear", "mlp")}  # fmt: skip
    return {"target": name, "r2": {kind: probe.r2_mean for kind, probe in probes.items()},
            "r2_per_output": {kind: list(probe.r2) for kind, probe in probes.items()}}  # fmt: skip


def _data_policy(args: argparse.Namespace) -> str | None:
    """The data policy of the episodes the pairs come from (None: the model's regenerated)."""
    if args.data is None:
        return None
    from lewm_mpc.data import EpisodeDataset

    return EpisodeDataset.load(args.data).meta.data_policy


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from lewm_mpc.evaluation import wilson_interval

    wins = sum(row["success"] for row in rows)
    return {"pairs": len(rows), "successes": wins, "success_rate": wins / max(len(rows), 1),
            "ci95": wilson_interval(wins, len(rows)) if rows else None,
            "minutes": sum(row["seconds"] for row in rows) / 60}  # fmt: skip


def markdown(out: Path) -> str:
    """The table of every ``diagnosis_<env>.json`` under ``out``."""
    lines = ["| env | oracle (simulator), CEM | learned model, same CEM and pairs | "
             "probe R² (linear / MLP) | LeWM |", "|---|---|---|---|---|"]  # fmt: skip
    for path in sorted(out.glob("diagnosis_*.json")):
        result = json.loads(path.read_text())
        oracle, learned, probe = result["oracle"], result["learned"], result["probe"]
        budget = result["budget"]
        cem = (f"{budget['num_samples']}x{budget['iterations']}, receding "
               f"{budget['receding_horizon']}")  # fmt: skip
        r2 = f"{probe['r2']['linear']:.3f} / {probe['r2']['mlp']:.3f}"
        per_output = probe.get("r2_per_output", {}).get("linear")
        if per_output:  # each output's linear R², the weakest is what limits the task
            r2 += " (linear per output: " + ", ".join(f"{v:.2f}" for v in per_output) + ")"
        oracle_cell = f"{oracle['successes']}/{oracle['pairs']}" if oracle["pairs"] else "-"
        learned_cell = f"{learned['successes']}/{learned['pairs']}" if learned["pairs"] else "-"
        probe_cell = f"{probe['target']}: {r2}" if learned["pairs"] else "- (no model)"
        label = result["env"] + (f", {result['data_policy']} data" if result.get("data_policy")
                                 else "")  # fmt: skip
        if result.get("tag") and not result.get("data_policy"):
            label += f", {result['tag']}"
        lines.append(
            f"| {label} ({cem}) | {oracle_cell} | "
            f"{learned_cell} | {probe_cell} | "
            f"{LEWM.get(result['env'], '-')}% |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--work", type=Path, default=None, help="default: runs/bench/<env>")
    parser.add_argument("--model", default=None, help="default: <work>/model")
    parser.add_argument("--data", type=Path, default=None,
                        help="default: <work>/data.h5 if it exists, else the model's data or, for "
                        "a shipped model, its regenerated episodes")  # fmt: skip
    parser.add_argument(
        "--regenerated-episodes",
        type=int,
        default=40,
        help="episodes regenerated for a model without its data",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--topk", type=int, default=30)
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--receding", type=int, default=5, help="blocks executed per plan")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kinds", default="oracle,learned")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="suffix of the result file, e.g. goal-data")
    args = parser.parse_args()
    args.work = args.work or Path("runs/bench") / args.env
    if args.model is None and (args.work / "model").exists():
        args.model = str(args.work / "model")
    if args.data is None and (args.work / "data.h5").exists():
        args.data = args.work / "data.h5"
    if "learned" in args.kinds.split(",") and args.model is None:
        parser.error(f"no model: pass --model, or put one at {args.work / 'model'}")
    if args.model is None and args.data is None:
        parser.error("--kinds oracle without a model needs --data")
    folder = args.work / "diagnosis"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "jobs.jsonl"
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    finished = {(row["kind"], row["pair"]) for row in done}
    jobs = [Job(kind, i) for i in range(args.pairs) for kind in args.kinds.split(",")
            if (kind, i) not in finished]  # fmt: skip
    payloads = [(args, job) for job in jobs]
    with contextlib.ExitStack() as stack:
        if args.workers > 1:  # one process per job at a time; 1 worker runs them in this one
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(args.workers))
            finished = pool.imap_unordered(_run_job, payloads)
        else:
            finished = map(_run_job, payloads)
        handle = stack.enter_context(open(log, "a"))
        for row in finished:
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            done.append(row)
            print(f"{row['kind']} pair {row['pair']}: success={row['success']} "
                  f"({row['seconds']:.0f} s)", flush=True)  # fmt: skip
    probe_file = folder / "probe.json"
    if not probe_file.exists():
        write_text_atomic(probe_file, json.dumps(_probe_r2(args)))
    rows = {kind: sorted((r for r in done if r["kind"] == kind and r["pair"] < args.pairs),
                         key=lambda r: r["pair"]) for kind in ("oracle", "learned")}  # fmt: skip
    result = {
        "env": args.env,
        "tag": args.tag,
        "model": args.model,
        "data": None if args.data is None else str(args.data),
        "data_policy": _data_policy(args),
        "budget": {"num_samples": args.samples, "iterations": args.iterations, "topk": args.topk,
                   "horizon": args.horizon, "receding_horizon": args.receding},
        "oracle": _summary(rows["oracle"]),
        "learned": _summary(rows["learned"]),
        "per_pair": rows,
        "probe": json.loads(probe_file.read_text()),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"diagnosis_{args.env}{'_' + args.tag if args.tag else ''}.json"
    write_text_atomic(args.out / name, json.dumps(result, indent=1))
    table = markdown(args.out)
    write_text_atomic(args.out / "diagnosis.md", table)
    print(table)


if __name__ == "__main__":
    main()
