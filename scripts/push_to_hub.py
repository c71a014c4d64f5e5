"""Upload a finished output folder to the Hub: `hf-mim push` as a script."""

import sys

from hf_mim.cli.push import run

if __name__ == "__main__":
    sys.exit(run())
