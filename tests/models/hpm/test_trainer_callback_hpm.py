"""HPMTrainerCallback drives the model's training hooks from Trainer, also on an iterable dataset."""

from __future__ import annotations

import pytest

from hf_mim import HPMForPreTraining, get_model_spec


def test_hpm_callback_ramps_on_an_iterable_dataset(cifar10_rows, tmp_path):
    from transformers import Trainer, TrainingArguments

    from hf_mim import HPMImageProcessor, HPMTrainerCallback

    config = get_model_spec("hpm").tiny_config()
    processor = HPMImageProcessor.from_model_config(config)
    stream = (
        cifar10_rows.select(range(64))
        .to_iterable_dataset()
        .map(processor.as_transform(), batched=True, remove_columns=["image", "label"])
    )
    model = HPMForPreTraining(config)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=4, use_cpu=True,
                             report_to=[], save_strategy="no", remove_unused_columns=False)  # fmt: skip
    Trainer(model=model, args=args, train_dataset=stream, callbacks=[HPMTrainerCallback()]).train()
    nominal = HPMTrainerCallback.NOMINAL_EPOCHS
    assert float(model.total_epochs) == nominal and float(model.training_epoch) == pytest.approx(0.75 * nominal)
    assert model.num_hard_patches(config.num_masked) > 0
