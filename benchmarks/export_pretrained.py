"""Ship a trained model as ``pretrained:<env>``: calibrate, measure, export.

For a model directory and its dataset (``--model DIR``, or ``--work`` with ``model/`` and the
dataset, as ``env_success.py`` or ``tworoom_cem.py`` leave them):

1. recompute its BatchNorm statistics on its training episodes (what training now does at
   every checkpoint);
2. measure CEM success of the model as shipped (its float16 weights, loaded back) at the
   env's reference budget on ``--pairs`` regenerated, seeded held-out pairs of the data policy
   (``evaluation.heldout_pairs``: what ``lewm-mpc eval --model pretrained:<env>`` and the slow
   pretrained test use);
3. write it into the package (``src/lewm_mpc/pretrained/<env>/``): float16 weights,
   ``config.json``, and ``card.json`` with the recipe, the dataset's SHA-256 and the measured
   success.

    MUJOCO_GL=egl .venv/bin/python benchmarks/export_pretrained.py --env tworoom \\
        --work runs/bench_tworoom --data runs/bench_tworoom/tworoom.h5
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import lewm_mpc as lm
from lewm_mpc.data import WindowSampler
from lewm_mpc.evaluation import EvalConfig, evaluate_pairs, heldout_pairs
from lewm_mpc.models.checkpoint import file_sha256
from lewm_mpc.models.pretrained import EXPORT_DTYPE, ModelCard, export_pretrained
from lewm_mpc.training import calibrate_batchnorm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--work", type=Path, default=None, help="folder holding model/")
    parser.add_argument("--model", type=Path, default=None, help="default: <work>/model")
    parser.add_argument("--data", type=Path, default=None, help="default: the recorded one")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--batches", type=int, default=32, help="BatchNorm calibration batches")
    parser.add_argument("--root", type=Path, default=None, help="default: the package's folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if (args.model or args.work) is None:
        parser.error("pass --model DIR (a model folder) or --work DIR (holding model/)")

    torch.set_num_threads(max(1, torch.get_num_threads()))
    run = lm.load_run(args.model or args.work / "model", args.data)
    spec = run.require_env("export")
    model = run.model
    rows_per_step = model.action_block // run.dataset.action_block  # data collected in blocks
    sampler = WindowSampler(run.dataset, run.train_ids, 4, rows_per_step, 64, run.obs_mode,
                            seed=args.seed)  # fmt: skip
    calibrate_batchnorm(model, sampler, args.batches)

    meta = run.dataset.meta
    policy = meta.data_policy or spec.expert_names[0]
    pairs, skipped = heldout_pairs(spec, args.pairs, args.seed, policy, meta.env_config)
    with tempfile.TemporaryDirectory() as tmp:  # measure the weights a user will load
        shipped = lm.WorldModel.load(model.save(tmp, dtype=EXPORT_DTYPE))
    planner = lm.CEM(shipped, seed=args.seed, **spec.budget.fields_for(lm.CEMConfig))
    with torch.inference_mode():
        report = evaluate_pairs(planner, pairs, spec, EvalConfig(num_pairs=args.pairs),
                                run.obs_mode, meta.env_config, skipped)  # fmt: skip
    print(report.summary())

    training = run.meta.training
    card = ModelCard(
        env=spec.name,
        data_policy=policy,
        episodes=run.dataset.num_episodes,
        episode_steps=meta.episode_steps or spec.recipe.episode_steps,
        train_steps=run.meta.step if training is None else training.steps,
        dataset_sha256=file_sha256(run.data_path),
        success_rate=report.success_rate,
        eval_pairs=len(report.pairs),
        collect_seed=meta.seed,
        action_block=run.dataset.action_block,
    )
    print(f"exported: {export_pretrained(model, card, args.root)}")


if __name__ == "__main__":
    main()
