"""Convert a paper's released MaskFeat / SimMIM / HPM checkpoint into an hf_mim folder: `hf-mim convert` as a script.

    python scripts/convert_official_checkpoint.py --method maskfeat --checkpoint in1k_VIT_B_MaskFeat_PT_epoch_01600.pyth \
        --output_dir maskfeat-vit-b [--push_to_hub --hub_model_id me/maskfeat-vit-b]
"""

import sys

from hf_mim.cli.convert import run

if __name__ == "__main__":
    sys.exit(run())
