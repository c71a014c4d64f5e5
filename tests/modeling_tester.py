"""A small common model-tester mixin of our own (transformers' test mixin is not installed).

A test class sets ``spec`` (a :class:`hf_mim.registry.ModelSpec`) and inherits these checks; the registry
parametrises them over every method (``tests/test_modeling_common.py``).
"""

from __future__ import annotations

import os

import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForPreTraining,
)


class ModelTesterMixin:
    spec = None
    batch_size = 2

    # -- helpers -------------------------------------------------------------------------------------------
    def config(self, **kwargs):
        return self.spec.tiny_config(**kwargs)

    def inputs(self, config, seed: int = 0, batch_size: int | None = None) -> dict:
        generator = torch.Generator().manual_seed(seed)
        batch_size = batch_size or self.batch_size
        size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
        pixel_values = torch.randn(batch_size, 3, size, size, generator=generator)
        return {"pixel_values": pixel_values, **self.spec.pretraining_inputs(config, batch_size, generator)}

    def pretraining_model(self, config=None, seed: int = 0):
        torch.manual_seed(seed)
        return self.spec.pretraining_class(config or self.config()).eval()

    # -- checks --------------------------------------------------------------------------------------------
    def test_forward_backward(self):
        model = self.pretraining_model().train()
        out = model(**self.inputs(model.config))
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
        out.loss.backward()
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        no_grad = [n for n, p in trainable if p.grad is None]
        assert not no_grad, f"parameters without gradient: {no_grad}"

    def test_save_load_bitwise_and_auto_classes(self, tmp_path):
        model = self.pretraining_model()
        inputs = self.inputs(model.config)
        model.save_pretrained(tmp_path)
        files = set(os.listdir(tmp_path))
        assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files)
        assert type(AutoConfig.from_pretrained(tmp_path)) is self.spec.config_class
        with torch.no_grad():
            ref = model(**inputs)
            for loaded in (
                self.spec.pretraining_class.from_pretrained(tmp_path),
                AutoModelForPreTraining.from_pretrained(tmp_path),
            ):
                assert type(loaded) is self.spec.pretraining_class
                out = loaded.eval()(**inputs)
                # the first output after the loss is the main prediction (logits / reconstruction)
                assert torch.equal(out.loss, ref.loss) and torch.equal(out.to_tuple()[1], ref.to_tuple()[1])
            base = AutoModel.from_pretrained(tmp_path)
            assert type(base) is self.spec.model_class

    def test_image_processor_auto_roundtrip(self, tmp_path):
        processor = self.spec.image_processor_class.from_model_config(self.config())
        processor.save_pretrained(tmp_path)
        loaded = AutoImageProcessor.from_pretrained(tmp_path)
        assert type(loaded) is self.spec.image_processor_class and loaded.to_dict() == processor.to_dict()

    def test_classification_loads_encoder_and_inits_head(self, tmp_path):
        model = self.pretraining_model()
        model.save_pretrained(tmp_path)
        classifier, info = AutoModelForImageClassification.from_pretrained(
            tmp_path, num_labels=5, output_loading_info=True
        )
        assert type(classifier) is self.spec.classification_class
        assert info["missing_keys"] and all("classifier" in k for k in info["missing_keys"]), info["missing_keys"]
        pre = model.state_dict()
        prefix = model.base_model_prefix
        shared = [k for k in classifier.state_dict() if k.startswith(prefix) and k in pre]
        assert len(shared) > 10
        for key in shared:
            assert torch.equal(classifier.state_dict()[key], pre[key]), key
        pixel_values = self.inputs(model.config)["pixel_values"]
        labels = torch.tensor([1, 3])
        out = classifier(pixel_values=pixel_values, labels=labels)
        assert out.logits.shape == (2, 5)
        ref = torch.nn.functional.cross_entropy(out.logits, labels)
        torch.testing.assert_close(out.loss, ref)

    def test_gradient_checkpointing_same_loss(self):
        model = self.pretraining_model().train()
        inputs = self.inputs(model.config)
        torch.manual_seed(1)
        loss = model(**inputs).loss
        model.gradient_checkpointing_enable()
        torch.manual_seed(1)
        loss_ckpt = model(**inputs).loss
        torch.testing.assert_close(loss, loss_ckpt)
        loss_ckpt.backward()

    def test_return_tuple(self):
        model = self.pretraining_model()
        inputs = self.inputs(model.config)
        out = model(**inputs, return_dict=False)
        assert isinstance(out, tuple) and torch.equal(out[0], model(**inputs).loss)


def upsampled_cifar_batch(rows, size: int, count: int = 16) -> torch.Tensor:
    """`count` real CIFAR-10 images, upsampled to `size` and ImageNet-normalised (deterministic preprocessing)."""
    from hf_mim import MaskedImageProcessor

    processor = MaskedImageProcessor(image_size=size, patch_size=size // 4, mask_type=None, crop_pct=1.0)
    return processor(list(rows.select(range(count))["image"]), augment=False)["pixel_values"]


class RealDataTesterMixin:
    """Checks on real CIFAR-10 rows: learning on a fixed batch, Trainer pretraining and fine-tuning."""

    spec = None
    learn_steps = 80
    learn_ratio = 0.6  # final loss must be below this fraction of the initial loss

    def real_config(self):
        # CIFAR-10's 32 px images upsampled to 64 px, 16 px patches
        return self.spec.tiny_config(image_size=64, patch_size=16)

    def test_learns_on_fixed_cifar_batch(self, cifar10_rows):
        config = self.real_config()
        torch.manual_seed(0)
        model = self.spec.pretraining_class(config).train()
        pixel_values = upsampled_cifar_batch(cifar10_rows, config.image_size)
        extra = self.spec.pretraining_inputs(config, len(pixel_values), torch.Generator().manual_seed(0))
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
        losses = []
        for _ in range(self.learn_steps):
            out = model(pixel_values=pixel_values, **extra)
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
            # HPM adds a ranking loss whose floor is not 0: follow its reconstruction term
            tracked = out.reconstruction_loss if hasattr(out, "reconstruction_loss") else out.loss
            losses.append(tracked.item())
        print(f"{self.spec.name}: loss {losses[0]:.4f} -> {losses[-1]:.4f}")
        assert losses[-1] < self.learn_ratio * losses[0], f"loss {losses[0]:.4f} -> {losses[-1]:.4f}"

    def _trainer_args(self, out_dir, **kwargs):
        from transformers import TrainingArguments

        defaults = dict(
            output_dir=str(out_dir),
            per_device_train_batch_size=8,
            per_device_eval_batch_size=16,
            max_steps=3,
            learning_rate=1e-3,
            use_cpu=True,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            save_strategy="no",
            logging_steps=1,
            report_to=[],
            seed=0,
        )
        return TrainingArguments(**{**defaults, **kwargs})

    def test_trainer_pretrains_then_finetunes(self, cifar10_rows, tmp_path):
        from transformers import AutoModelForImageClassification, Trainer

        from hf_mim.metrics import load_metric

        config = self.real_config()
        processor = self.spec.image_processor_class.from_model_config(config)
        rows = cifar10_rows.select(range(96))
        train = rows.with_transform(processor.as_transform())
        model = self.spec.pretraining_class(config)
        trainer = Trainer(model=model, args=self._trainer_args(tmp_path / "pre"), train_dataset=train)
        result = trainer.train()
        assert result.global_step == 3 and all(
            torch.isfinite(torch.tensor(log["loss"])) for log in trainer.state.log_history if "loss" in log
        )
        trainer.save_model(tmp_path / "pretrained")
        processor.save_pretrained(tmp_path / "pretrained")

        classifier = AutoModelForImageClassification.from_pretrained(
            tmp_path / "pretrained", num_labels=10, id2label={i: str(i) for i in range(10)}
        )
        assert type(classifier) is self.spec.classification_class
        labelled = rows.with_transform(processor.as_transform(label_column="label"))
        metric = load_metric("accuracy")

        def compute_metrics(eval_pred):
            return metric.compute(predictions=eval_pred.predictions.argmax(-1), references=eval_pred.label_ids)

        trainer = Trainer(
            model=classifier,
            args=self._trainer_args(tmp_path / "ft", max_steps=4, eval_strategy="no"),
            train_dataset=labelled,
            eval_dataset=rows.select(range(32)).with_transform(
                processor.as_transform(label_column="label", augment=False)
            ),
            compute_metrics=compute_metrics,
        )
        trainer.train()
        metrics = trainer.evaluate()
        assert 0.0 <= metrics["eval_accuracy"] <= 1.0 and "eval_loss" in metrics
