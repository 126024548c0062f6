"""Render the pictures in envs/README.md: for each environment, a start and a goal observation.

.venv/bin/python benchmarks/env_figures.py        # writes envs/figures/<env>.png
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from lewm_mpc.atomic import atomic_write
from lewm_mpc.envs import ENV_SPECS

OUT = Path(__file__).parents[1] / "envs" / "figures"
SCALE = 4
GAP = 8


def start_and_goal(name: str, seed: int = 3) -> np.ndarray:
    """[start | goal] observations of a seeded reset, upscaled."""
    env = ENV_SPECS[name].make(obs_mode="pixels")
    start, info = env.reset(seed=seed)
    goal, _ = env.reset(options={"state": info["goal"], "goal": info["goal"]})
    env.close()
    panels = [image.repeat(SCALE, 0).repeat(SCALE, 1) for image in (start, goal)]
    gap = np.full((panels[0].shape[0], GAP, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1]], axis=1)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in ENV_SPECS:
        path = OUT / f"{name}.png"
        with atomic_write(path, suffix=".png") as tmp:  # umask permissions, never half-written
            iio.imwrite(tmp, start_and_goal(name))
        print(path)


if __name__ == "__main__":
    main()
