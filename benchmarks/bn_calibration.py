"""BatchNorm calibration as a lever: a trained model as saved vs the same weights with its
BatchNorm running statistics recomputed (``lewm_mpc.training.calibrate_batchnorm``), planned with
CEM at LeWorldModel's budget on the same held-out pairs.

Models trained before the calibration existed kept the momentum averages of training, which lag
the weights; eval mode (planning) then normalizes with stale statistics. For one model directory
(``--work`` with ``model/`` and ``data.h5``, as ``env_success.py`` leaves them):

    MUJOCO_GL=egl .venv/bin/python benchmarks/bn_calibration.py --env pusht

Writes ``<work>/model_calibrated/`` and ``benchmarks/results/bn_calibration_<env>.json``; each
finished evaluation is cached in ``<work>/bn_calibration.json``, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.data import WindowSampler
from lewm_mpc.evaluation import EvalConfig, evaluate
from lewm_mpc.training import calibrate_batchnorm


def calibrated_copy(work: Path, batches: int, seed: int) -> Path:
    """``<work>/model_calibrated``: the model with recomputed BatchNorm statistics."""
    out = work / "model_calibrated"
    if (out / "config.json").exists():
        return out
    run = lm.load_run(work / "model", work / "data.h5")
    rows_per_step = run.model.action_block // run.dataset.action_block  # data in blocks
    sampler = WindowSampler(run.dataset, run.train_ids, 4, rows_per_step, 64, run.obs_mode,
                            seed=seed)  # fmt: skip
    calibrate_batchnorm(run.model, sampler, batches)
    run.model.save(out)
    return out


def success(model_dir: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """CEM 300 x 30 on the protocol's held-out pairs of the model's dataset."""
    run = lm.load_run(model_dir, work / "data.h5")
    planner = lm.CEM(run.model, num_samples=args.samples, iterations=args.iterations,
                     topk=args.samples // 10, seed=args.seed, polish_steps=0)  # fmt: skip
    config = EvalConfig(num_pairs=args.pairs, seed=args.seed)
    started = time.perf_counter()
    with torch.inference_mode():
        report = evaluate(planner, run.dataset, run.require_env("evaluation"), config,
                          obs_mode=run.obs_mode, episode_ids=run.val_ids)  # fmt: skip
    wins = sum(pair.success for pair in report.pairs)
    steps = [p.steps_to_success for p in report.pairs if p.steps_to_success is not None]
    return {"pairs": len(report.pairs), "successes": wins,
            "success_rate": wins / len(report.pairs), "ci95": report.ci95,
            "steps_to_success_mean": float(np.mean(steps)) if steps else None,
            "minutes": (time.perf_counter() - started) / 60}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--work", type=Path, default=None, help="default: runs/bench/<env>")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--batches", type=int, default=32, help="calibration batches")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = args.work or Path("runs/bench") / args.env
    cache_path = work / "bn_calibration.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    models = {"as_saved": work / "model",
              "calibrated": calibrated_copy(work, args.batches, args.seed)}  # fmt: skip
    for name, model_dir in models.items():
        if name not in cache:
            cache[name] = success(model_dir, work, args)
            write_text_atomic(cache_path, json.dumps(cache, indent=1))
        result = cache[name]
        low, high = (100 * bound for bound in result["ci95"])
        rate = 100 * result["success_rate"]
        print(
            f"{name}: {result['successes']}/{result['pairs']} = {rate:.0f}% ({low:.0f}-{high:.0f})"
        )
    summary = {"env": args.env, "work": str(work), "budget": [args.samples, args.iterations],
               "calibration_batches": args.batches, **cache}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / f"bn_calibration_{args.env}.json", json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
