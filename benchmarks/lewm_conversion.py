"""A LeWorldModel checkpoint converted to the paper architecture against LeWM's own outputs.

``benchmarks/peers/lewm_reference.py`` (run in the peers venv, which has stable-worldmodel and
HuggingFace transformers) builds LeWM's model with its own classes at the full published size
(ViT-tiny/14 at 224 px, predictor depth 6), fills its weights deterministically, and saves
``weights.pt``, ``config.json`` and LeWM's embeddings and 5-step rollout for fixed inputs.
This script converts that checkpoint with ``WorldModel.from_lewm`` and reports the largest
differences:

    .venv-peers/bin/python benchmarks/peers/lewm_reference.py --out runs/lewm_full
    .venv/bin/python benchmarks/lewm_conversion.py --reference runs/lewm_full
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from lewm_mpc import WorldModel
from lewm_mpc.atomic import write_text_atomic


def compare(folder: Path) -> dict:
    """Max absolute and relative differences of embeddings and rollout to LeWM's."""
    model = WorldModel.from_lewm(folder / "weights.pt", folder / "config.json", action_block=5)
    with np.load(folder / "reference.npz") as data:
        pixels, actions = data["pixels"], data["actions"]
        expected = {"embeddings": data["emb"], "rollout": data["rollout"]}
    frames = torch.from_numpy(pixels)  # (B, T, S, S, 3)
    blocks = torch.from_numpy(actions)  # (B, 7, block)
    with torch.no_grad():
        emb = model.encode(frames.flatten(0, 1)).view(*frames.shape[:2], -1)  # (B, T, D)
        # From the third frame with the first two as history, 5 blocks ahead.
        rollout = model.rollout(emb[:, 2], blocks[:, 2:7], emb[:, :2], blocks[:, :2])[:, 1:]
    ours = {"embeddings": emb.numpy(), "rollout": rollout.numpy()}
    rows = {}
    for name, reference in expected.items():
        error = np.abs(ours[name] - reference)
        rows[name] = {"shape": list(reference.shape), "max_abs_error": float(error.max()),
                      "max_abs_value": float(np.abs(reference).max())}  # fmt: skip
    return {"parameters": model.num_parameters(), "config": model.config.to_dict(),
            "comparisons": rows}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, default=Path("runs/lewm_full"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    result = compare(args.reference)
    lines = ["# LeWM checkpoint conversion", "",
             f"LeWM's published architecture ({result['parameters']:,} parameters), weights filled "
             "deterministically, converted with `WorldModel.from_lewm`; our outputs against "
             "LeWM's own classes (stable-worldmodel 0.1.1, HuggingFace ViT) on the same inputs.",
             "", "| output | shape | max abs error | max abs value |",
             "|---|---|---|---|"]  # fmt: skip
    for name, row in result["comparisons"].items():
        lines.append(f"| {name} | {tuple(row['shape'])} | {row['max_abs_error']:.2e} | "
                     f"{row['max_abs_value']:.3f} |")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "lewm_conversion.json", json.dumps(result, indent=1))
    write_text_atomic(args.out / "lewm_conversion.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
