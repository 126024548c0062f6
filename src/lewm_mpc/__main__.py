"""``python -m lewm_mpc``: the ``lewm-mpc`` command line."""

import sys

from lewm_mpc.cli import main

if __name__ == "__main__":
    sys.exit(main())
