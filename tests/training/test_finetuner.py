"""Fine-tuning (hf_mim.training.finetuner): labels are checked before training."""

from __future__ import annotations

import io

import PIL.Image
import pytest

from hf_mim import get_model_spec

from . import _jpeg, _parquet


@pytest.mark.parametrize(
    "labels, message",
    [([0, 1, None, 1] * 4, "empty label"), ([0, 1, 2.5, 1] * 4, "non-integer"), ([0, 1, -1, 1] * 4, "negative"),
     ([3] * 16, "single class")],
)  # fmt: skip
def test_finetuning_labels_are_validated(labels, message, tmp_path):
    from hf_mim.cli import finetune

    spec = get_model_spec("maskfeat")
    model = spec.pretraining_class(spec.tiny_config())
    model.save_pretrained(tmp_path / "ckpt")
    images = [PIL.Image.open(io.BytesIO(_jpeg(i))) for i in range(16)]
    data = _parquet(tmp_path / "labelled.parquet", images, labels)
    with pytest.raises(ValueError, match=message):
        finetune.main(["--model_name_or_path", str(tmp_path / "ckpt"), "--data_files", str(data), "--output_dir",
                       str(tmp_path / "ft"), "--max_steps", "1", "--use_cpu", "--report_to", "none",
                       "--validation_split_percentage", "25"])  # fmt: skip
