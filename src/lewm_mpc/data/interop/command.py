"""``lewm-mpc import`` and ``lewm-mpc export``: dataset conversion on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from lewm_mpc.argtypes import positive_int

FORMATS = ("swm", "npz")


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMATS,
                        help="swm: stable-worldmodel / LeWM HDF5; npz: numpy arrays")  # fmt: skip
    parser.add_argument("src", type=Path, help="the file to import")
    parser.add_argument("--out", type=Path, required=True, help="lewm_mpc dataset .h5 to write")
    parser.add_argument("--frameskip", type=positive_int, default=1,
                        help="keep every k-th observation, k actions per row (1)")  # fmt: skip
    parser.add_argument("--env", default=None, help="env id the data comes from (optional)")
    parser.add_argument("--control-hz", type=float, default=None, help="env steps per second")
    parser.add_argument("--policy", default=None, help="data policy name to record")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMATS[:1], help="swm: stable-worldmodel / LeWM HDF5")
    parser.add_argument("src", type=Path, help="a lewm_mpc dataset .h5")
    parser.add_argument("--out", type=Path, required=True, help="the file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run_import(args: argparse.Namespace) -> None:
    from lewm_mpc.data.interop import import_npz, import_swm

    convert = import_swm if args.format == "swm" else import_npz
    out = convert(args.src, args.out, frameskip=args.frameskip, env_id=args.env,
                  control_hz=args.control_hz, data_policy=args.policy,
                  overwrite=args.overwrite, progress=True)  # fmt: skip
    print(f"imported {args.src} -> {out}")


def run_export(args: argparse.Namespace) -> None:
    from lewm_mpc.data.interop import export_swm

    out = export_swm(args.src, args.out, overwrite=args.overwrite, progress=True)
    print(f"exported {args.src} -> {out}")
