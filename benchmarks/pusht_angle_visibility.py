"""Is the T's orientation visible in the 64 px frames? A supervised check of the encoder.

The diagnosis (``benchmarks/diagnose.py``) found that the latents of the JEPA-trained PushT model
carry the block's position but not its angle. This trains the same CNN (the ``"cpu"`` config's
``ConvEncoder``) with a linear head to regress ``(cos, sin)`` of the block angle directly from
frames of the training episodes, and reports R² on held-out episodes. A high R² means the pixels
and the architecture carry the angle, and the self-supervised objective is what drops it.

    .venv/bin/python benchmarks/pusht_angle_visibility.py --data runs/bench/pusht/data.h5

Writes ``benchmarks/results/pusht_angle_visibility.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.models import named_config
from lewm_mpc.models.encoders import ConvEncoder


def _rows(dataset: EpisodeDataset, episode_ids: np.ndarray) -> np.ndarray:
    slices = [dataset.episode_slice(int(e)) for e in episode_ids]
    return np.concatenate([np.arange(s.start, s.stop) for s in slices])


def _angle_target(dataset: EpisodeDataset, rows: np.ndarray) -> torch.Tensor:
    angle = dataset.state[rows][:, 4]
    return torch.tensor(np.stack([np.cos(angle), np.sin(angle)], axis=1), dtype=torch.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("runs/bench/pusht/data.h5"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--val-frames", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    dataset = EpisodeDataset.load(args.data)
    train_ids, val_ids = dataset.split(0.1, seed=0)  # the recipe model's split
    train_rows = _rows(dataset, train_ids)
    val_rows = np.sort(rng.choice(_rows(dataset, val_ids), args.val_frames, replace=False))
    config = named_config("cpu")
    encoder = ConvEncoder(config.image_size, config.cnn_channels, config.feature_dim)
    head = torch.nn.Linear(config.feature_dim, 2)
    optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=1e-3)
    started = time.perf_counter()
    for _ in range(args.steps):
        rows = np.sort(rng.choice(train_rows, args.batch_size, replace=False))
        prediction = head(encoder(torch.as_tensor(dataset.pixels[rows])))  # (B, 2)
        loss = (prediction - _angle_target(dataset, rows)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        prediction = torch.cat([
            head(encoder(torch.as_tensor(dataset.pixels[val_rows[i : i + 256]])))
            for i in range(0, len(val_rows), 256)
        ])  # fmt: skip
    target = _angle_target(dataset, val_rows)
    residual = (prediction - target).pow(2).sum(0)
    total = (target - target.mean(0)).pow(2).sum(0)
    r2 = (1 - residual / total).tolist()
    result = {"data": str(args.data), "steps": args.steps, "batch_size": args.batch_size,
              "val_frames": args.val_frames, "r2_cos_sin": r2, "train_loss": loss.item(),
              "seconds": time.perf_counter() - started}  # fmt: skip
    print(f"supervised block-angle R² (cos, sin) on held-out frames: {r2[0]:.3f}, {r2[1]:.3f}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "pusht_angle_visibility.json", json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
