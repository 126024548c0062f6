"""Efficiency of CEM planning against the hardware limit, on the default Two-Room model.

Counts model FLOPs per energy evaluation (torch's ``FlopCounterMode``: matmuls and convolutions),
measures the machine's fp32 matmul peak (best-of GEMM), the model GFLOP/s achieved during a CEM
plan, where one plan's time goes (stage timers), and the plan latency of hot-path variants:
``torch.inference_mode`` (the library default) vs ``torch.no_grad``, and ``torch.compile`` of the
rollout in several modes (compile time reported). Reproduce on a quiet machine (~3-6 min,
mostly compiling):

    .venv/bin/python benchmarks/efficiency.py --threads 2

Writes ``benchmarks/results/efficiency.{json,md}``. ``--device cuda`` (or ``auto``, the
default, which picks a GPU when one is present) runs the same measurements on a GPU.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.data import EpisodeDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _machine.py, _stages.py beside it
from _machine import machine_info, matmul_peak_gflops, synchronize
from _stages import StageTimer, instrumented, no_grad_instead_of_inference_mode

COMPILE_MODES = "default,reduce-overhead,max-autotune-no-cudagraphs"


@dataclass(frozen=True)
class Args:
    """Command-line arguments (``--samples 300`` etc.)."""

    model: Path = Path("runs/bench_tworoom/model")
    data: Path = Path("runs/bench_tworoom/tworoom.h5")
    out: Path = Path("benchmarks/results")
    samples: int = 300
    iterations: int = 30
    topk: int = 30
    horizon: int = 5
    plans: int = 20  # timed plans per variant
    warmup: int = 3
    compile_modes: str = COMPILE_MODES  # comma-separated; "" skips torch.compile
    peak_size: int = 2048
    threads: int = 0  # 0 keeps torch's default
    device: str = "auto"  # auto: cuda when available, else cpu
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("samples", "iterations", "topk", "horizon", "plans", "peak_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")


# ------------------------------------------------------------------------------ measuring
def plan_latencies(planner: lm.CEM, obs: np.ndarray, goal: np.ndarray, args: Args) -> list[float]:
    """Cold-start (after ``reset``) plan latencies in seconds, after ``args.warmup`` plans."""
    for _ in range(args.warmup):
        planner.reset()
        planner.plan(obs, goal)
    latencies = []
    for _ in range(args.plans):
        planner.reset()
        latencies.append(planner.plan(obs, goal).solve_s)
    return latencies


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of ``fn()`` counted by torch's FLOP counter (matmul/conv ops) in inference mode."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        fn()
    return counter.get_total_flops()


def flop_budget(planner: lm.CEM, pair: torch.Tensor, args: Args) -> dict[str, float]:
    """FLOPs per plan and per energy evaluation (one candidate plan rolled out and scored)."""
    model, num = planner.model, args.samples
    with torch.inference_mode():
        z = model.encode(pair)  # (2, D)
    start = z[:1].expand(num, -1).clone()  # (S, D)
    goal = z[1:].expand(num, -1).clone()  # (S, D)
    actions = planner._clamp(  # (S, H, block*A)
        torch.randn(num, args.horizon, planner.low.shape[0], device=planner.low.device)
    )
    with torch.inference_mode():
        latents = model.rollout(start, actions)  # (S, H+1, D)
    encode = count_flops(lambda: model.encode(pair))
    rollout = count_flops(lambda: model.rollout(start, actions)) / num
    energy = count_flops(lambda: planner.objective(latents, actions, goal)) / num
    evals = args.samples * args.iterations
    planner.reset()
    counted = count_flops(lambda: planner.plan(pair[0].cpu().numpy(), pair[1].cpu().numpy()))
    return {
        "encode_per_plan": encode,
        "encoder_share_per_eval": encode / evals,
        "rollout_per_candidate": rollout,
        "energy_per_candidate": energy,
        "per_energy_eval": rollout + energy + encode / evals,
        "evals_per_plan": evals,
        "plan_predicted": encode + evals * (rollout + energy),
        "plan_counted": counted,
    }


def time_breakdown(planner: lm.CEM, obs: np.ndarray, goal: np.ndarray, args: Args) -> dict:
    """Median milliseconds per plan in each stage (medians, so one stalled plan cannot inflate
    a stage); the rest is Python overhead and the un-timed tensor work of the CEM loop
    (candidate assembly, elite gather, mean/std refit), also a per-plan median."""
    timer = StageTimer(planner.model.device)
    per_plan: list[dict[str, float]] = []  # stage -> seconds, one dict per timed plan
    totals = []
    with instrumented(planner, timer):
        for _ in range(args.plans):
            planner.reset()
            before = dict(timer.seconds)
            start = time.perf_counter()
            planner.plan(obs, goal)
            totals.append(time.perf_counter() - start)
            per_plan.append({k: v - before.get(k, 0.0) for k, v in timer.seconds.items()})
    names = sorted({name for plan in per_plan for name in plan})
    stages = {
        name: 1000 * float(np.median([plan.get(name, 0.0) for plan in per_plan])) for name in names
    }
    other = [total - sum(plan.values()) for total, plan in zip(totals, per_plan, strict=True)]
    stages["other (CEM loop tensor ops, Python)"] = 1000 * float(np.median(other))
    return {
        "method": "manual time.perf_counter timers around each stage's function (instance "
        "wrappers; synchronized on GPUs), median over timed plans",
        "total_ms": 1000 * float(np.median(totals)),
        "stages_ms": stages,
    }


def top_ops(planner: lm.CEM, obs: np.ndarray, goal: np.ndarray, count: int = 10) -> list[dict]:
    """torch.profiler's heaviest ops (self CPU time) over one plan."""
    planner.reset()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        planner.plan(obs, goal)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [
        {
            "op": e.key,
            "calls": e.count,
            "self_cpu_ms": round(e.self_cpu_time_total / 1000, 2),
            "share": round(e.self_cpu_time_total / total, 3),
        }
        for e in events[:count]
    ]


def variants(planner: lm.CEM, obs: np.ndarray, goal: np.ndarray, args: Args) -> list[dict]:
    """Plan latency of each hot-path variant (first row: the library default)."""
    model = planner.model
    eager_rollout = type(model).rollout.__get__(model)
    probe_z = torch.randn(args.samples, model.latent_dim, device=model.device)  # (S, D)
    probe_a = planner._clamp(
        torch.randn(args.samples, args.horizon, planner.low.shape[0], device=model.device)
    )  # (S, H, block*A)
    with torch.inference_mode():
        reference = eager_rollout(probe_z, probe_a)
    planner.reset()
    reference_plan = planner.plan(obs, goal).actions
    names = ["eager, inference_mode (default)", "eager, no_grad", "eager, rollout_dtype=bfloat16"]
    modes = [mode for mode in args.compile_modes.split(",") if mode]
    rows = []
    for name in tqdm([*names, *(f"compile mode={m}" for m in modes)], desc="variants"):
        row: dict[str, Any] = {"variant": name}
        try:
            if name == names[1]:
                with no_grad_instead_of_inference_mode():
                    latencies = plan_latencies(planner, obs, goal, args)
            elif name == names[2]:
                actions, latencies = bfloat16_plans(planner, obs, goal, args)
                row["same_plan_as_eager"] = bool(np.array_equal(actions, reference_plan))
                with torch.inference_mode(), torch.autocast(model.device.type, torch.bfloat16):
                    diff = (model.rollout(probe_z, probe_a).float() - reference).abs().max()
                row["max_abs_diff_latents"] = float(diff)
            else:
                if name != names[0]:
                    torch._dynamo.reset()
                    mode = name.removeprefix("compile mode=")
                    model.rollout = torch.compile(eager_rollout, mode=mode, dynamic=False)
                    start = time.perf_counter()
                    planner.reset()
                    same = np.array_equal(planner.plan(obs, goal).actions, reference_plan)
                    row["compile_s"] = round(time.perf_counter() - start, 2)
                    row["same_plan_as_eager"] = bool(same)
                    with torch.inference_mode():
                        diff = (model.rollout(probe_z, probe_a) - reference).abs().max()
                    row["max_abs_diff_latents"] = float(diff)
                latencies = plan_latencies(planner, obs, goal, args)
            row["p50_s"] = float(np.median(latencies))
            row["p95_s"] = float(np.percentile(latencies, 95))
        except Exception as error:  # a mode unsupported on this machine is a result too
            row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        finally:
            if "rollout" in vars(model):
                del model.rollout
        rows.append(row)
    base = rows[0].get("p50_s")
    for row in rows:
        if base and row.get("p50_s"):
            row["speedup_vs_default"] = round(base / row["p50_s"], 3)
    return rows


def bfloat16_plans(
    planner: lm.CEM, obs: np.ndarray, goal: np.ndarray, args: Args
) -> tuple[np.ndarray, list[float]]:
    """A cold plan's actions and plan latencies with ``rollout_dtype="bfloat16"`` (the
    planner's config is restored afterwards)."""
    default = planner.config
    planner.config = dataclasses.replace(default, rollout_dtype="bfloat16")
    try:
        planner.reset()
        actions = planner.plan(obs, goal).actions
        return actions, plan_latencies(planner, obs, goal, args)
    finally:
        planner.config = default


# ---------------------------------------------------------------------------------- main
def main(args: Args) -> dict:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    model = lm.WorldModel.load(args.model, device=device)
    dataset = EpisodeDataset.load(args.data)
    _, val_ids = dataset.split(0.1, seed=args.seed)
    rows = dataset.episode_slice(int(val_ids[0]))
    offset = min(25, rows.stop - rows.start - 1)
    obs, goal = dataset.pixels[rows.start], dataset.pixels[rows.start + offset]
    pair = torch.from_numpy(np.stack([obs, goal])).to(device)  # (2, H, W, 3)
    planner = lm.CEM(
        model, num_samples=args.samples, iterations=args.iterations, topk=args.topk,
        horizon=args.horizon, seed=args.seed, polish_steps=0,
    )  # fmt: skip

    peak = matmul_peak_gflops(args.peak_size, device=device)
    flops = flop_budget(planner, pair, args)
    latencies = plan_latencies(planner, obs, goal, args)
    p50 = float(np.median(latencies))
    # The rollout alone at the plan's batch: the model's own throughput without the planner.
    start_z = torch.randn(args.samples, model.latent_dim, device=device)
    actions = torch.zeros(args.samples, args.horizon, planner.low.shape[0], device=device)
    rollout_times = []
    with torch.inference_mode():
        for _ in range(args.warmup + 5 * args.plans):
            synchronize(device)
            begin = time.perf_counter()
            model.rollout(start_z, actions)
            synchronize(device)
            rollout_times.append(time.perf_counter() - begin)
    rollout_s = float(np.median(rollout_times[args.warmup :]))
    rollout_gflops = flops["rollout_per_candidate"] * args.samples / rollout_s / 1e9
    achieved = flops["plan_counted"] / p50 / 1e9

    result = {
        "machine": {**machine_info(device), "matmul_peak_gflops": round(peak, 1)},
        "model": {
            "path": str(args.model),
            "parameters": model.num_parameters(),
            "encoder": model.config.encoder,
            "predictor": f"{model.config.predictor} depth {model.config.predictor_depth} "
            f"hidden {model.config.predictor_hidden}",
            "latent_dim": model.latent_dim,
        },
        "budget": {k: getattr(args, k) for k in ("samples", "iterations", "topk", "horizon")},
        "flops": flops,
        "throughput": {
            "plan_p50_s": p50,
            "plan_p95_s": float(np.percentile(latencies, 95)),
            "achieved_gflops": achieved,
            "fraction_of_peak": achieved / peak,
            "rollout_only_s": rollout_s,
            "rollout_only_gflops": rollout_gflops,
            "rollout_only_fraction_of_peak": rollout_gflops / peak,
        },
        "breakdown": time_breakdown(planner, obs, goal, args),
        "top_ops": top_ops(planner, obs, goal),
        "variants": variants(planner, obs, goal, args),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "efficiency.json", json.dumps(result, indent=1))
    write_text_atomic(args.out / "efficiency.md", markdown(result))
    print(markdown(result))
    return result


def markdown(r: dict) -> str:
    """The results as markdown tables."""
    f, t, m, b = r["flops"], r["throughput"], r["machine"], r["budget"]
    peak = m["matmul_peak_gflops"]
    lines = [
        f"CEM {b['samples']}x{b['iterations']} (top {b['topk']}, horizon {b['horizon']}) on "
        f"`{r['model']['path']}` ({r['model']['parameters'] / 1e6:.2f}M params, "
        f"{r['model']['encoder']} encoder, {r['model']['predictor']} predictor); device "
        f"{m['device']} ({m['device_name']}), {m['cpu_threads']} threads, torch {m['torch']}.",
        "",
        "| FLOPs (FlopCounterMode: matmul/conv) | value |",
        "|---|---|",
        f"| encoder, per plan (obs + goal) | {f['encode_per_plan'] / 1e6:.2f} MFLOP |",
        f"| encoder share per energy evaluation | {f['encoder_share_per_eval'] / 1e3:.2f} kFLOP |",
        f"| rollout per candidate | {f['rollout_per_candidate'] / 1e6:.3f} MFLOP |",
        f"| energy per candidate (matmuls only: a goal distance is elementwise, ~3·H·D) | "
        f"{f['energy_per_candidate'] / 1e3:.2f} kFLOP |",
        f"| **per energy evaluation** | **{f['per_energy_eval'] / 1e6:.3f} MFLOP** |",
        f"| per plan ({f['evals_per_plan']} evaluations), counted / predicted | "
        f"{f['plan_counted'] / 1e9:.2f} / {f['plan_predicted'] / 1e9:.2f} GFLOP |",
        "",
        "| throughput | value |",
        "|---|---|",
        f"| fp32 matmul peak (best-of GEMM) | {peak:.0f} GFLOP/s |",
        f"| plan latency p50 / p95 | {1000 * t['plan_p50_s']:.0f} / "
        f"{1000 * t['plan_p95_s']:.0f} ms |",
        f"| achieved during CEM planning | {t['achieved_gflops']:.0f} GFLOP/s = "
        f"**{100 * t['fraction_of_peak']:.0f}% of peak** |",
        f"| rollout alone ({b['samples']} candidates) | {1000 * t['rollout_only_s']:.2f} ms, "
        f"{t['rollout_only_gflops']:.0f} GFLOP/s = "
        f"{100 * t['rollout_only_fraction_of_peak']:.0f}% of peak |",
        "",
        f"Where one plan's time goes ({r['breakdown']['method']}):",
        "",
        "| stage | ms per plan | share |",
        "|---|---|---|",
    ]
    total = r["breakdown"]["total_ms"]
    for stage, ms in r["breakdown"]["stages_ms"].items():
        lines.append(f"| {stage} | {ms:.1f} | {100 * ms / total:.0f}% |")
    lines += [f"| total | {total:.1f} | 100% |", "", "Heaviest ops (torch.profiler, one plan):", ""]
    lines += ["| op | calls | self CPU ms | share |", "|---|---|---|---|"]
    for op in r["top_ops"]:
        lines.append(
            f"| `{op['op']}` | {op['calls']} | {op['self_cpu_ms']:.1f} | {100 * op['share']:.0f}% |"
        )
    lines += ["", "Hot-path variants (plan latency, cold start):", ""]
    lines += [
        "| variant | p50 ms | p95 ms | speedup | compile s | same plan | max abs diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in r["variants"]:
        if "error" in v:
            lines.append(f"| {v['variant']} | failed: {v['error']} | | | | | |")
            continue
        diff = v.get("max_abs_diff_latents")
        lines.append(
            f"| {v['variant']} | {1000 * v['p50_s']:.1f} | {1000 * v['p95_s']:.1f} | "
            f"{v.get('speedup_vs_default', 1.0):.2f}x | {v.get('compile_s', '-')} | "
            f"{v.get('same_plan_as_eager', '-')} | {'-' if diff is None else f'{diff:.1e}'} |"
        )
    return "\n".join([*lines, ""])


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
