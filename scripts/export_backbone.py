"""Export an hf_mim encoder as a plain transformers ViTModel / SwinModel: `hf-mim export` as a script."""

import sys

from hf_mim.cli.export import run

if __name__ == "__main__":
    sys.exit(run())
