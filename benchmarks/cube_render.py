"""Cube collection speed with the arm's meshes as they are and coarsened (``mesh_cell``).

OGBench's UR5e is drawn from 185k triangles, which a software renderer (EGL on a CPU) pays for
in every frame whatever its size. ``CubeConfig(mesh_cell=c)`` coarsens the meshes to a
resolution of ``c`` metres for drawing only (``simplify_meshes``; the simulation is bit-for-bit
the same). For each setting of ``--cells`` (0: the meshes as they are): the time of one 64 px
frame (``render_state``), of one env step without a frame, and of collecting one episode as
the ablation does (200 steps of OGBench's expert in blocks of 5, 41 frames rendered; one env
kept across episodes, as in a collection chunk), plus the mean absolute pixel difference from the
detailed frames over the same states. The collected episodes' states must be identical across
settings (checked). Settings are timed
interleaved (every setting once per round, order rotated), so machine drift hits all alike.

    MUJOCO_GL=egl .venv/bin/python benchmarks/cube_render.py            # ~3 min
    MUJOCO_GL=egl .venv/bin/python benchmarks/cube_render.py --rounds 2 --episodes 1

Writes ``benchmarks/results/cube_render.{json,md}``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lewm_mpc.data.rollout import collect_episode
from lewm_mpc.envs import get_env_spec

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _results.py beside this file
from _machine import round_robin
from _results import write_results


@dataclass(frozen=True)
class Args:
    cells: str = "0,0.0025,0.005,0.01"  # mesh_cell settings (m); 0: as they are
    rounds: int = 3
    frames: int = 20  # frames timed per round and setting
    episodes: int = 2  # episodes collected per round and setting (one env per setting)
    seed: int = 0
    out: Path = Path("benchmarks/results")


def _states(count: int, seed: int) -> list[np.ndarray]:
    """States along a random-action rollout (the arm in varied poses)."""
    env = get_env_spec("cube").make(obs_mode="state")
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    states = []
    for _ in range(count):
        for _ in range(5):
            env.step(rng.uniform(-1, 1, 5).astype(np.float32))
        states.append(env.unwrapped.get_state())
    env.close()
    return states


def measure(args: Args) -> list[dict[str, Any]]:
    cells = [float(c) for c in args.cells.split(",")]
    envs = {c: get_env_spec("cube").make(obs_mode="state", env_config={"mesh_cell": c})
            for c in cells}  # fmt: skip
    states = _states(args.frames, args.seed)
    frames: dict[float, list[np.ndarray]] = {}
    for cell, env in envs.items():
        env.reset(seed=args.seed)
        frames[cell] = [env.unwrapped.render_state(s, 64).astype(np.int16) for s in states]
    timing: dict[float, dict[str, list[float]]] = {
        c: {"frame": [], "step": [], "episode": []} for c in cells
    }
    collectors = {c: get_env_spec("cube").make(obs_mode="state", env_config={"mesh_cell": c})
                  for c in cells}  # fmt: skip
    policies = {c: get_env_spec("cube").make_expert(env) for c, env in collectors.items()}
    rng = np.random.default_rng(args.seed)
    for round_index in range(args.rounds):
        trajectories = {}
        for cell in (cells[i] for i in round_robin(len(cells), round_index)):
            env = envs[cell].unwrapped
            start = time.perf_counter()
            for state in states:
                env.render_state(state, 64)
            timing[cell]["frame"].append((time.perf_counter() - start) / len(states))
            start = time.perf_counter()
            for _ in range(args.frames):
                env.step(rng.uniform(-1, 1, 5).astype(np.float32))
            timing[cell]["step"].append((time.perf_counter() - start) / args.frames)
            start = time.perf_counter()
            trajectories[cell] = [
                collect_episode(collectors[cell], policies[cell], 200, args.seed,
                                round_index * args.episodes + i, action_block=5).state
                for i in range(args.episodes)
            ]  # fmt: skip
            timing[cell]["episode"].append((time.perf_counter() - start) / args.episodes)
        first = trajectories[cells[0]]
        if not all(np.array_equal(np.concatenate(t), np.concatenate(first))
                   for t in trajectories.values()):  # fmt: skip
            raise RuntimeError("the coarse meshes changed the simulation")
    for env in (*envs.values(), *collectors.values()):
        env.close()
    detailed = frames[0.0] if 0.0 in frames else frames[cells[0]]
    return [{
        "mesh_cell": cell,
        "triangles": int(envs[cell].unwrapped.sim.model.mesh_facenum.sum()),
        "frame_ms": 1000 * float(np.median(timing[cell]["frame"])),
        "step_ms": 1000 * float(np.median(timing[cell]["step"])),
        "episode_s": float(np.median(timing[cell]["episode"])),
        "pixel_difference": float(np.mean([np.abs(a - b).mean()
                                           for a, b in zip(frames[cell], detailed, strict=True)])),
    } for cell in cells]  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    base = rows[0]
    lines = [
        "Cube collection speed by `mesh_cell` (64 px frames, software rendering through EGL; "
        f"one process, medians of {result['args']['rounds']} interleaved rounds; an episode is "
        "200 expert steps collected in blocks of 5, 41 frames). Pixel "
        "difference: mean absolute difference from the detailed frames, of 255 levels.",
        "",
        "| mesh_cell | triangles | frame | step (no frame) | episode | episodes vs detailed | "
        "pixel difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cell = "0 (as they are)" if row["mesh_cell"] == 0 else f"{row['mesh_cell'] * 1000:g} mm"
        lines.append(
            f"| {cell} | {row['triangles']:,} | {row['frame_ms']:.1f} ms | "
            f"{row['step_ms']:.1f} ms | {row['episode_s']:.2f} s | "
            f"{base['episode_s'] / row['episode_s']:.2f}x | {row['pixel_difference']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(args: Args) -> dict[str, Any]:
    return write_results(args.out, "cube_render", args, measure(args), markdown)


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
