"""``lewm-mpc convert-lewm``: a LeWorldModel checkpoint to a lewm_mpc checkpoint folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from lewm_mpc.argtypes import positive_int


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(item) for item in text.split(","))
    except ValueError:
        message = f"expected comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("weights", type=Path, help="LeWM's weights.pt (a torch state_dict)")
    parser.add_argument("config", type=Path, help="its config.json")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--action-block", type=positive_int, default=5,
                        help="env actions per model step, LeWM's frameskip (5)")  # fmt: skip
    for name, default in (("low", "-1"), ("high", "1"), ("mean", "0"), ("std", "1")):
        parser.add_argument(f"--action-{name}", type=_floats, default=None, metavar="A,B,..",
                            help=f"per action dimension (default {default} each)")  # fmt: skip


def run(args: argparse.Namespace) -> None:
    from lewm_mpc.models.lewm_import import load_lewm

    if args.out.exists() and any(args.out.iterdir()):
        raise ValueError(f"{args.out} is not empty; choose a new folder (nothing was written)")
    model = load_lewm(
        args.weights, args.config, action_block=args.action_block,
        action_low=args.action_low, action_high=args.action_high,
        action_mean=args.action_mean, action_std=args.action_std,
    )  # fmt: skip
    model.save(args.out)
    print(f"converted {args.weights} -> {args.out} ({model.num_parameters() / 1e6:.2f}M params)")
