"""Fine-tune an hf_mim checkpoint with Trainer: `hf-mim finetune` as a script."""

import sys

from hf_mim.cli.finetune import run

if __name__ == "__main__":
    sys.exit(run())
