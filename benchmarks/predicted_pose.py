"""How well a model forecasts the task state: goal features read from k-step open-loop
predicted latents, against the true ones, on held-out windows.

A linear probe (latent -> the env's goal features, e.g. PushT's agent and block position and
block-angle cos/sin) is fitted on encoded training frames; on ``--windows`` windows per held-out
episode the model rolls out the recorded action blocks from the first frame, and the probe reads
each predicted latent. R² per feature and horizon k (k = 0: the encoded first frame) separates
what the latents hold (k = 0) from what the predictor forecasts (k > 0).

    M=runs/ablation/pusht/models/scripted-300ep-200st-b1-64px-3000steps-state_loss_weight1.0
    MUJOCO_GL=egl .venv/bin/python benchmarks/predicted_pose.py --env pusht --model $M \\
        --data runs/ablation/pusht/data/scripted-300ep-200st-b1-64px.h5 --tag state-aux-1.0

Writes ``benchmarks/results/predicted_pose_<env>[_<tag>].json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.energies import fit_probe_from_dataset
from lewm_mpc.envs import get_env_spec

FEATURES = {"pusht": ("agent x", "agent y", "block x", "block y", "cos", "sin")}


def windows(run: lm.Run, per_episode: int, horizon: int, seed: int) -> np.ndarray:
    """Global first rows of ``per_episode`` windows of each held-out episode."""
    dataset, block = run.dataset, run.model.action_block // run.dataset.action_block
    rng = np.random.default_rng(seed)
    starts = []
    for episode in run.val_ids:
        position = dataset.episode_positions(np.array([episode]))[0]
        rows = np.flatnonzero(dataset.episode_idx == dataset.episode_ids[position])
        usable = len(rows) - horizon * block - 1
        if usable > 0:
            starts += rows[rng.choice(usable, min(per_episode, usable), replace=False)].tolist()
    return np.asarray(starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="pusht")
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--horizon", type=int, default=5, help="model steps")
    parser.add_argument("--windows", type=int, default=8, help="per held-out episode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = get_env_spec(args.env)
    run = lm.load_run(args.model, args.data)
    model, dataset = run.model.eval(), run.dataset
    probe = fit_probe_from_dataset(model, dataset, run.train_ids, spec.goal_features,
                                   kind="linear", seed=args.seed)  # fmt: skip
    block = model.action_block // dataset.action_block  # rows per model step
    starts = windows(run, args.windows, args.horizon, args.seed)
    frames = starts[:, None] + block * np.arange(args.horizon + 1)  # (N, H+1) global rows
    actions = np.stack([dataset.action[f[:-1, None] + np.arange(block)].reshape(args.horizon, -1)
                        for f in frames]).astype(np.float32)  # (N, H, block * A)  # fmt: skip
    with torch.no_grad():
        z0 = model.encode(torch.from_numpy(dataset.pixels[starts]))
        predicted = probe(model.rollout(z0, torch.from_numpy(actions))).numpy()  # (N, H+1, F)
    true = spec.goal_features(dataset.state[frames])  # (N, H+1, F)
    names = FEATURES.get(args.env, tuple(f"feature {i}" for i in range(true.shape[-1])))
    rows = []
    for k in range(args.horizon + 1):
        residual = ((predicted[:, k] - true[:, k]) ** 2).sum(0)
        spread = ((true[:, k] - true[:, k].mean(0)) ** 2).sum(0)
        r2 = (1 - residual / spread).tolist()
        named = dict(zip(names, r2, strict=True))
        rows.append({"k": k, "env_steps": k * model.action_block, "r2": named})
        print(f"k={k} ({k * model.action_block} env steps): "
              + ", ".join(f"{n} {v:.2f}" for n, v in named.items()))  # fmt: skip
    if args.env == "pusht":  # how often the block turns within a window (true cos, sin)
        angles = np.arctan2(true[..., 5], true[..., 4])  # (N, H+1)
        turn = np.abs(np.angle(np.exp(1j * (angles[:, -1] - angles[:, 0]))))  # (N,)
        rows.append({"windows_turning_over_10_deg": float(np.mean(turn > np.pi / 18))})
        print(f"block turns by more than 10 deg in {np.mean(turn > np.pi / 18):.0%} of windows")
    result = {"env": args.env, "model": str(args.model), "windows": len(starts),
              "probe_r2_encoded": [float(v) for v in probe.r2], "rows": rows}  # fmt: skip
    name = f"predicted_pose_{args.env}{'_' + args.tag if args.tag else ''}.json"
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / name, json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
