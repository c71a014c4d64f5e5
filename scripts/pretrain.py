"""Pretrain MaskFeat, SimMIM or HPM: `hf-mim pretrain` as a script (`accelerate launch scripts/pretrain.py ...`)."""

import sys

from hf_mim.cli.pretrain import run

if __name__ == "__main__":
    sys.exit(run())
