"""``python -m hf_mim COMMAND ...`` (also ``accelerate launch -m hf_mim ...`` and ``torchrun -m hf_mim ...``)."""

import sys

from hf_mim.cli import main

if __name__ == "__main__":
    sys.exit(main())
