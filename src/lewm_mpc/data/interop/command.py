"""``lewm-mpc import`` and ``lewm-mpc export``: dataset conversion on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from lewm_mpc.argtypes import non_negative_float, positive_int

FORMATS = ("swm", "npz", "lerobot")


def episode_list(text: str) -> list[int]:
    """``"0,3,7"`` -> ``[0, 3, 7]`` (LeRobot episode indices)."""
    try:
        indices = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated episode indices, got {text!r}"
        ) from None
    if not indices or min(indices) < 0:
        raise argparse.ArgumentTypeError(f"expected episode indices >= 0, got {text!r}")
    return indices


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMATS,
                        help="swm: stable-worldmodel / LeWM HDF5; npz: numpy arrays; "
                             "lerobot: a LeRobot dataset folder (v3.0, v2.1)")  # fmt: skip
    parser.add_argument("src", type=Path, help="the file (lerobot: the folder) to import")
    parser.add_argument("--out", type=Path, required=True, help="lewm_mpc dataset .h5 to write")
    parser.add_argument("--frameskip", type=positive_int, default=1,
                        help="keep every k-th observation, k actions per row (1)")  # fmt: skip
    parser.add_argument("--env", default=None, help="env id the data comes from (optional)")
    parser.add_argument("--control-hz", type=float, default=None,
                        help="env steps per second (lerobot: default its fps)")  # fmt: skip
    parser.add_argument("--policy", default=None, help="data policy name to record")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    lerobot = parser.add_argument_group("lerobot")
    lerobot.add_argument("--camera", default=None,
                         help="image or video feature (default: the only one)")  # fmt: skip
    lerobot.add_argument("--state-key", default=None,
                         help="state feature (default: observation.state)")  # fmt: skip
    lerobot.add_argument("--action-key", default=None,
                         help="action feature (action)")  # fmt: skip
    lerobot.add_argument("--image-size", type=positive_int, default=None,
                         help="resize frames to S x S px (default: keep)")  # fmt: skip
    lerobot.add_argument("--episodes", type=episode_list, default=None,
                         help="episode indices to import, e.g. 0,3,7 (default: all)")  # fmt: skip
    lerobot.add_argument("--tolerance-s", type=non_negative_float, default=None,
                         help="max seconds between a row and its video frame (1e-4)")  # fmt: skip


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMATS[:1], help="swm: stable-worldmodel / LeWM HDF5")
    parser.add_argument("src", type=Path, help="a lewm_mpc dataset .h5")
    parser.add_argument("--out", type=Path, required=True, help="the file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run_import(args: argparse.Namespace) -> None:
    from lewm_mpc.data.interop import import_lerobot, import_npz, import_swm

    common = dict(frameskip=args.frameskip, env_id=args.env, control_hz=args.control_hz,
                  data_policy=args.policy, overwrite=args.overwrite, progress=True)  # fmt: skip
    lerobot = {"camera": args.camera, "state_key": args.state_key, "action_key": args.action_key,
               "image_size": args.image_size, "episodes": args.episodes,
               "tolerance_s": args.tolerance_s}  # fmt: skip
    given = {name: value for name, value in lerobot.items() if value is not None}
    if args.format == "lerobot":
        out = import_lerobot(args.src, args.out, **given, **common)
    else:
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise ValueError(f"{flags}: only for `import lerobot`")
        convert = import_swm if args.format == "swm" else import_npz
        out = convert(args.src, args.out, **common)
    print(f"imported {args.src} -> {out}")


def run_export(args: argparse.Namespace) -> None:
    from lewm_mpc.data.interop import export_swm

    out = export_swm(args.src, args.out, overwrite=args.overwrite, progress=True)
    print(f"exported {args.src} -> {out}")
