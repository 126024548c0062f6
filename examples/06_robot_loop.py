"""A robot-style loop: asynchronous MPC at a fixed rate, a push mid-episode, a surprise monitor.

The loop ticks on the wall clock (--rate-hz) and steps the env once per tick whether or not a new
plan is ready. The controller plans in a background thread while the current plan executes, from
the model's prediction of where the robot will be when the plan takes effect (latency
compensation), and corrects it from the observation of that step when it does (re-anchoring);
a plan that arrives late joins the queue without its stale first actions. At
--push-at the agent is teleported (the world moves without the robot). After every executed
block a surprise monitor compares the model's predicted latent with the observed one against a
threshold calibrated on held-out data (1% false alarms): the push stands out, and the
controller replans at once from the new observation. The video shows each step (the goal inset
top right) above the surprise per block so far, its threshold and the push.

python examples/06_robot_loop.py                           # the shipped Two-Room model
python examples/06_robot_loop.py --video robot_loop.gif    # frames + surprise trace (.gif/.mp4)
python examples/06_robot_loop.py --smoke                   # tiny data + model, seconds
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import lewm_mpc as lm
from lewm_mpc.evaluation import EvalConfig, goal_observation, sample_pairs
from lewm_mpc.models.pretrained import is_pretrained
from lewm_mpc.recipes import SMOKE_NOTICE, build_from_recipe, smoke_recipe
from lewm_mpc.render.draw import Painter, text_width
from lewm_mpc.render.episode import display_frames
from lewm_mpc.render.video import check_video_path, write_video

SIZE, STRIP_H, PAD = 256, 80, 8  # video: frame side, surprise strip height, strip margin (px)
BLUE, RED, ORANGE = (30, 100, 230), (200, 40, 40), (240, 150, 0)  # surprise, threshold, push
GREEN, GREY = (40, 170, 70), (60, 60, 60)


@dataclass(frozen=True)
class Args:
    model: str = "pretrained:tworoom"  # shipped, or a folder written by `lewm-mpc train`
    rate_hz: float = 10.0  # control rate: one env step per tick
    steps: int = 60  # env steps (the loop does not stop on success)
    push_at: int = 15  # env step at which the agent is teleported
    seed: int = 0
    video: str | None = None  # .gif or .mp4 of the episode with the surprise trace
    smoke: bool = False  # train a throwaway tiny model and plan with a tiny budget


def main(args: Args) -> None:
    if args.smoke:
        print(SMOKE_NOTICE)
    with tempfile.TemporaryDirectory() as scratch:
        if args.smoke:  # a throwaway seconds-scale dataset + model
            model_dir, _ = build_from_recipe(smoke_recipe("tworoom"), scratch, args.seed)
        else:
            model_dir = args.model
        run = lm.load_run(model_dir)  # the model, its (or regenerated) held-out episodes
        steps, push_at = (12, 5) if args.smoke else (args.steps, args.push_at)

        # A surprise score (surprise relative to the block's predicted motion) above this value
        # happens on 1% of unperturbed held-out blocks.
        threshold = lm.calibrate_surprise(run.model, run.dataset, run.val_ids, false_alarm=0.01)
        budget = {"num_samples": 16, "iterations": 2, "topk": 4} if args.smoke else {}
        planner = lm.CEM(run.model, seed=args.seed, **budget)
        block = run.model.action_block
        replan_every = planner.config.receding_horizon * block  # env steps between plans
        deadline_s = 0.8 * replan_every / args.rate_hz  # a plan must be ready within its block

        pairs, _ = sample_pairs(run.dataset, run.val_ids, run.env_spec,
                                EvalConfig(num_pairs=1, seed=args.seed))  # fmt: skip
        pair = pairs[0]
        env = run.env_spec.make(obs_mode=run.obs_mode, env_config=run.dataset.meta.env_config)
        goal = goal_observation(env, pair.goal_state)
        obs, info = env.reset(options={"state": pair.start_state, "goal": pair.goal_state})

        monitor = lm.SurpriseMonitor(threshold)  # on surprise: replan at once
        # reanchor_s: a plan made ahead is corrected from the observation of the step it takes
        # effect (a few L-BFGS steps), within 30% of a period
        with lm.MPCController(planner, asynchronous=True, monitor=monitor, deadline_s=deadline_s,
                              reanchor_s=0.3 / args.rate_hz) as controller:  # fmt: skip
            controller.reset(goal)
            states, success = [env.unwrapped.get_state()], [bool(info["success"])]
            period, missed, tick = 1.0 / args.rate_hz, 0, 0.0
            for step in range(steps):
                time.sleep(max(tick - time.perf_counter(), 0.0))
                action = controller.act(obs)
                if step == 0:  # the clock starts with the first action (planned at rest)
                    tick = time.perf_counter()
                obs, _, _, _, info = env.step(action)
                if step + 1 == push_at:  # the world moves without the robot: a teleport
                    state = env.unwrapped.sample_state(np.random.default_rng(args.seed))
                    obs, info = env.reset(options={"state": state, "goal": pair.goal_state})
                states.append(env.unwrapped.get_state())
                success.append(bool(info["success"]))
                tick += period
                if time.perf_counter() > tick:  # this tick overran its period
                    missed, tick = missed + 1, time.perf_counter()
            if args.smoke or args.video:  # display-size frames of the true states
                frames = display_frames(env, np.stack([*states, pair.goal_state]), SIZE)
        env.close()

        lates = Counter(record.late for record in controller.plans)
        print(f"{len(controller.plans)} plans at {args.rate_hz:g} Hz (one per {replan_every} "
              f"steps, deadline {1000 * deadline_s:.0f} ms); took effect late by: "
              + ", ".join(f"{late} steps x{n}" for late, n in sorted(lates.items()))
              + f"; {controller.fallback_steps} fallback steps, {missed} missed ticks")  # fmt: skip
        print(f"surprise score threshold {threshold.value:.3g} (median {threshold.median:.3g}); "
              f"{len(controller.events)} surprise events:")  # fmt: skip
        for event in controller.events:
            print(f"  step {event.step}: surprise {event.surprise:.3g}, score {event.score:.3g} > "
                  f"{event.threshold:.3g}")  # fmt: skip
        detected = [e.step for e in controller.events if push_at <= e.step <= push_at + block]
        print(f"push at step {push_at}: " + (f"detected at step {detected[0]} (within one block "
              f"of {block} steps)" if detected else f"not detected within one block ({block} "
              "steps)"))  # fmt: skip
        after = [t for t in range(push_at, steps + 1) if success[t]]
        print(f"after the push: success at step {after[0]} ({after[0] - push_at} steps later)"
              if after else f"after the push: success=False by step {steps}")  # fmt: skip

        if args.smoke or args.video:
            video = Path(args.video) if args.video else Path(scratch) / "robot_loop.gif"
            # (blocks, 2): step, score
            trace = np.array([(b.step, b.score) for b in controller.surprises]).reshape(-1, 2)
            inset = frames[-1, ::4, ::4].copy()  # the goal, a quarter size, top right
            inset[[0, -1]], inset[:, [0, -1]] = GREY, GREY
            composed = []
            for t, frame in enumerate(frames[:-1]):
                frame = frame.copy()
                frame[: len(inset), -len(inset) :] = inset
                strip = surprise_strip(trace, threshold.value, push_at, steps, t, success[t])
                composed.append(np.concatenate([frame, strip]))
            write_video(video, np.stack(composed), fps=max(round(args.rate_hz), 1))
            if args.video:
                print(f"video: {video}")


def surprise_strip(trace: np.ndarray, threshold: float, push_at: int, steps: int, now: int,
                   reached: bool) -> np.ndarray:  # fmt: skip
    """(STRIP_H, SIZE, 3) strip: surprise per block up to step ``now`` against the threshold."""
    image = np.full((STRIP_H, SIZE, 3), 250, np.uint8)
    painter = Painter(image)
    top, bottom = 18, STRIP_H - 6
    high = 1.15 * max(float(trace[:, 1].max()) if len(trace) else 0.0, threshold)

    def x(step: float) -> float:
        return PAD + (SIZE - 2 * PAD) * step / max(steps, 1)

    def y(value: float) -> float:
        return bottom - (bottom - top) * value / high

    painter.polyline(np.array([[x(0), bottom], [x(steps), bottom]]), GREY, 1, alpha=0.6)
    painter.polyline(np.array([[x(0), y(threshold)], [x(steps), y(threshold)]]), (200, 40, 40), 1)
    painter.polyline(np.array([[x(push_at), top], [x(push_at), bottom]]), ORANGE, 2)
    shown = trace[trace[:, 0] <= now]
    points = np.array([[x(s), y(v)] for s, v in shown]).reshape(-1, 2)
    painter.polyline(points, BLUE, 2)
    for value, point in zip(shown[:, 1], points, strict=True):
        painter.disc(point, 2.5, RED if value > threshold else BLUE)
    painter.polyline(np.array([[x(now), top], [x(now), bottom]]), GREY, 1, alpha=0.6)
    left = float(PAD)  # legend: what each colour is
    for name, colour in (("surprise", BLUE), ("threshold", RED), ("push", ORANGE)):
        painter.text((left, 3), name, colour, 11)
        left += text_width(name, 11) + 8
    label = f"step {now}" + (" at goal" if reached else "")
    painter.text((SIZE - PAD - text_width(label, 11), 3), label, GREEN if reached else GREY, 11)
    return painter.image()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=Args.model)
    parser.add_argument("--rate-hz", type=float, default=Args.rate_hz)
    parser.add_argument("--steps", type=int, default=Args.steps)
    parser.add_argument("--push-at", type=int, default=Args.push_at)
    parser.add_argument("--seed", type=int, default=Args.seed)
    parser.add_argument("--video", default=Args.video, help="output .gif or .mp4")
    parser.add_argument("--smoke", action="store_true")
    args = Args(**vars(parser.parse_args()))
    if not (args.smoke or is_pretrained(args.model) or Path(args.model).is_dir()):
        parser.error(f"no model at {args.model}; pass --model DIR (a checkpoint folder)")
    if not args.rate_hz > 0:
        parser.error(f"--rate-hz must be > 0, got {args.rate_hz}")
    if not (args.smoke or 1 <= args.push_at < args.steps):
        parser.error(f"--push-at must be in [1, --steps), got {args.push_at}")
    if args.video is not None:
        try:
            check_video_path(args.video)
        except ValueError as error:
            parser.error(f"--video: {error}")
    main(args)
