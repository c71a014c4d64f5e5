"""Label-efficiency experiment on CIFAR-10 (see hf_mim.experiments.label_efficiency for what it does)."""

import sys

from hf_mim.experiments.label_efficiency import run

if __name__ == "__main__":
    sys.exit(run())
