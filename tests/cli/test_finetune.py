"""Smoke tests of `hf-mim finetune` (Trainer) on CIFAR-10 rows."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_mim import get_model_spec
from hf_mim.cli import finetune
from hf_mim.training import layer_decay_param_groups

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cifar_parquet(cifar10_rows, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "cifar_subset.parquet"
    cifar10_rows.select(range(120)).to_parquet(str(path))
    return path


def pretrained_checkpoint(method: str, path: Path) -> Path:
    torch.manual_seed(0)
    spec = get_model_spec(method)
    model = spec.pretraining_class(spec.tiny_config())
    model.save_pretrained(path)
    spec.image_processor_class.from_model_config(model.config).save_pretrained(path)
    return path


def args_for(checkpoint, data, out, *extra):
    return ["--model_name_or_path", str(checkpoint), "--data_files", str(data), "--output_dir", str(out),
            "--max_steps", "4", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16",
            "--learning_rate", "1e-3", "--use_cpu", "--report_to", "none", "--save_strategy", "no",
            "--max_eval_samples", "32", "--seed", "0", *extra]  # fmt: skip


@pytest.mark.parametrize("method", ["maskfeat", "simmim", "hpm"])
def test_finetune_with_layer_decay_reports_metrics_and_card(method, cifar_parquet, tmp_path):
    checkpoint = pretrained_checkpoint(method, tmp_path / "pre")
    out = tmp_path / "ft"
    metrics = finetune.main(args_for(checkpoint, cifar_parquet, out, "--layer_decay", "0.75"))
    assert 0 <= metrics["eval_accuracy"] <= 1 and 0 <= metrics["eval_top5_accuracy"] <= 1
    assert metrics["eval_top5_accuracy"] >= metrics["eval_accuracy"]
    saved = json.loads((out / "all_results.json").read_text())
    assert saved["eval_accuracy"] == metrics["eval_accuracy"]
    config = json.loads((out / "config.json").read_text())
    assert len(config["id2label"]) == 10 and config["auto_map"]["AutoModelForImageClassification"]
    card = (out / "README.md").read_text()
    assert "model-index" in card and "pipeline_tag: image-classification" in card and "top5_accuracy" in card
    assert (out / "model.safetensors").is_file() and (out / "preprocessor_config.json").is_file()


def test_linear_probe_freezes_the_encoder(cifar_parquet, tmp_path):
    checkpoint = pretrained_checkpoint("maskfeat", tmp_path / "pre")
    out = tmp_path / "probe"
    finetune.main(args_for(checkpoint, cifar_parquet, out, "--linear_probe"))
    before, after = load_file(checkpoint / "model.safetensors"), load_file(out / "model.safetensors")
    encoder_keys = [k for k in after if k.startswith("maskfeat.encoder.")]
    assert encoder_keys and all(torch.equal(after[k], before[k]) for k in encoder_keys)
    assert "classifier.weight" in after


def test_layer_decay_groups_scale_by_depth():
    spec = get_model_spec("maskfeat")
    model = spec.classification_class(spec.tiny_config(num_labels=3))  # 2 blocks
    groups = layer_decay_param_groups(model, 1e-3, 0.05, 0.5)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    params = dict(model.named_parameters())
    assert lr_of[id(params["classifier.weight"])] == pytest.approx(1e-3)
    assert lr_of[id(params["maskfeat.encoder.layers.1.mlp.fc1.weight"])] == pytest.approx(1e-3 * 0.5)
    assert lr_of[id(params["maskfeat.encoder.layers.0.mlp.fc1.weight"])] == pytest.approx(1e-3 * 0.25)
    assert lr_of[id(params["maskfeat.encoder.embeddings.patch_embeddings.projection.weight"])] == pytest.approx(
        1e-3 * 0.125
    )
    assert wd_of[id(params["maskfeat.encoder.embeddings.position_embeddings"])] == 0.0
    assert wd_of[id(params["maskfeat.encoder.layers.0.layernorm_before.bias"])] == 0.0
    assert wd_of[id(params["maskfeat.encoder.layers.0.mlp.fc1.weight"])] == 0.05


def test_finetune_needs_labelled_data(tmp_path):
    checkpoint = pretrained_checkpoint("maskfeat", tmp_path / "pre")
    with pytest.raises(ValueError, match="labelled data"):
        finetune.main(["--model_name_or_path", str(checkpoint), "--output_dir", str(tmp_path / "x"), "--use_cpu"])


def test_knn_mode_scores_frozen_features_without_training(cifar_parquet, tmp_path):
    checkpoint = pretrained_checkpoint("maskfeat", tmp_path / "pre")
    out = tmp_path / "knn"
    metrics = finetune.main(["--model_name_or_path", str(checkpoint), "--data_files", str(cifar_parquet),
                             "--output_dir", str(out), "--knn", "--knn_k", "5", "--use_cpu", "--report_to", "none"])  # fmt: skip
    assert 0.0 <= metrics["knn_accuracy"] <= 1.0 and metrics["knn_k"] == 5
    assert json.loads((out / "all_results.json").read_text())["knn_accuracy"] == metrics["knn_accuracy"]
    assert not (out / "model.safetensors").exists()  # nothing was trained
    with pytest.raises(ValueError, match="--knn_k must be >= 1"):
        finetune.main(["--model_name_or_path", str(checkpoint), "--data_files", str(cifar_parquet),
                       "--output_dir", str(tmp_path / "bad"), "--knn", "--knn_k", "0", "--use_cpu"])  # fmt: skip
    assert not (tmp_path / "bad").exists()


def test_knn_of_a_plain_backbone_equals_the_knn_of_the_model_started_from_it(cifar_parquet, tmp_path):
    """The baseline of a continued pretraining: a plain transformers encoder scores with the features an hf_mim model
    wrapping it pools (the mean patch token), so before any step both give the same kNN accuracy; it cannot be
    fine-tuned here."""
    from transformers import AutoModel, DeiTConfig
    from transformers import ViTImageProcessorPil as ViTImageProcessor

    torch.manual_seed(0)
    AutoModel.from_config(DeiTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                     image_size=32, patch_size=8)).save_pretrained(tmp_path / "deit")  # fmt: skip
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(
        tmp_path / "deit"
    )
    started = get_model_spec("maskfeat").pretraining_class.from_backbone(str(tmp_path / "deit"))
    started.save_pretrained(tmp_path / "started")
    get_model_spec("maskfeat").image_processor_class.from_model_config(started.config).save_pretrained(
        tmp_path / "started"
    )
    scores = {}
    for name in ("deit", "started"):
        args = ["--model_name_or_path", str(tmp_path / name), "--data_files", str(cifar_parquet), "--output_dir",
                str(tmp_path / f"knn-{name}"), "--knn", "--knn_k", "5", "--use_cpu", "--report_to", "none"]  # fmt: skip
        scores[name] = finetune.main(args)["knn_accuracy"]
    assert scores["deit"] == scores["started"]
    assert json.loads((tmp_path / "knn-deit" / "all_results.json").read_text())["mode"] == "knn"
    with pytest.raises(ValueError, match="plain transformers DeiTModel, not an hf_mim checkpoint: .* with --knn"):
        finetune.main(["--model_name_or_path", str(tmp_path / "deit"), "--data_files", str(cifar_parquet),
                       "--output_dir", str(tmp_path / "ft"), "--use_cpu"])  # fmt: skip


@pytest.mark.parametrize("method", ["maskfeat", "simmim", "hpm"])
def test_finetune_recipe_with_full_augmentation_two_steps_and_reload(method, cifar10_file, tmp_path):
    """The method's paper recipe (RandAugment, random erasing, mixup/cutmix, label smoothing, drop path, fc_norm,
    scaled head) on the shared CIFAR-10 file; explicit flags shorten it and shrink the batch."""
    from transformers import AutoModelForImageClassification

    checkpoint = pretrained_checkpoint(method, tmp_path / "pre")
    out = tmp_path / "ft"
    args = ["--model_name_or_path", str(checkpoint), "--data_files", str(cifar10_file), "--output_dir", str(out),
            "--recipe", "auto", "--max_steps", "2", "--per_device_train_batch_size", "8", "--max_eval_samples", "16",
            "--per_device_eval_batch_size", "16", "--use_cpu", "--report_to", "none", "--save_strategy", "no",
            "--validation_split_percentage", "0.2", "--seed", "0"]  # fmt: skip
    metrics = finetune.main(args)
    assert metrics["train_loss"] > 0 and 0 <= metrics["eval_accuracy"] <= 1
    model = AutoModelForImageClassification.from_pretrained(out)
    assert model.config.num_labels == 10 and getattr(model.config, "use_fc_norm", False) is (
        method != "simmim" or model.config.backbone != "swin"
    )
    saved = load_file(out / "model.safetensors")
    for key, value in model.state_dict().items():
        if key in saved:
            assert torch.equal(value, saved[key]), key
    card = (out / "README.md").read_text()
    assert f"{method}-" in card and "-ft" in card  # the recipe is named in the card


def test_finetune_dry_run_prints_the_recipe_and_explicit_flags_win(tmp_path, capsys):
    checkpoint = pretrained_checkpoint("hpm", tmp_path / "pre")
    report = finetune.main(["--model_name_or_path", str(checkpoint), "--output_dir", str(tmp_path / "o"),
                            "--recipe", "hpm-vit-b-ft", "--dry_run", "--adam_beta2", "0.98", "--mixup_alpha", "0.2"])  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    assert printed["recipe"] == report["recipe"] == "hpm-vit-b-ft"
    assert report["optimizer"]["betas"] == [0.9, 0.98] and report["augmentation"]["mixup_alpha"] == 0.2
    assert report["optimizer"]["layer_decay"] == 0.8 and report["label_smoothing"] == 0.1
    assert report["schedule"]["warmup_epochs"] == 5 and tuple(report["model"]["head_init"]) == ("std", 2e-05)
    assert "hpm.encoder.embeddings.cls_token" in report["optimizer"]["no_weight_decay"]["parameters"]
    assert not (tmp_path / "o").exists()  # nothing written


def test_finetune_augmentation_without_a_recipe_is_refused(tmp_path):
    checkpoint = pretrained_checkpoint("maskfeat", tmp_path / "pre")
    with pytest.raises(ValueError, match="--mixup_alpha need a recipe"):
        finetune.main(["--model_name_or_path", str(checkpoint), "--output_dir", str(tmp_path / "o"),
                       "--data_files", "x.parquet", "--mixup_alpha", "0.8"])  # fmt: skip
    with pytest.raises(ValueError, match="simmim recipe"):
        finetune.main(["--model_name_or_path", str(checkpoint), "--output_dir", str(tmp_path / "o"),
                       "--recipe", "simmim-vit-b-ft", "--dry_run"])  # fmt: skip


def test_finetune_at_another_resolution(cifar_parquet, tmp_path):
    """#23 item 3: a 32 px checkpoint fine-tunes at 64 px; the pretrained positions are interpolated, not re-drawn."""
    from hf_mim.modeling_utils import resize_absolute_positions

    checkpoint = pretrained_checkpoint("maskfeat", tmp_path / "pre")
    out = tmp_path / "ft64"
    finetune.main(args_for(checkpoint, cifar_parquet, out, "--image_size", "64", "--linear_probe"))
    config = json.loads((out / "config.json").read_text())
    processor = json.loads((out / "preprocessor_config.json").read_text())
    assert config["image_size"] == 64 and processor["image_size"] == 64
    before, after = load_file(checkpoint / "model.safetensors"), load_file(out / "model.safetensors")
    key = "maskfeat.encoder.embeddings.position_embeddings"
    torch.testing.assert_close(after[key], resize_absolute_positions(before[key], (4, 4), (8, 8)))


def test_the_swin_recipe_fine_tunes_at_the_papers_size():
    from transformers import TrainingArguments

    from hf_mim.training.finetuner import FinetuneArguments
    from hf_mim.training.resolve import resolve_finetune_recipe

    args = FinetuneArguments(model_name_or_path="unused", recipe="simmim-swin-b-ft")
    resolved, _, _ = resolve_finetune_recipe(args, TrainingArguments(output_dir="o", use_cpu=True), "simmim", "swin")
    assert (resolved.image_size, resolved.window_size) == (224, 7)  # official: 192 px / window 6 -> 224 / 7
    mine = FinetuneArguments(model_name_or_path="unused", recipe="simmim-swin-b-ft", image_size=192, window_size=6)
    resolved, _, _ = resolve_finetune_recipe(mine, TrainingArguments(output_dir="o", use_cpu=True), "simmim", "swin")
    assert (resolved.image_size, resolved.window_size) == (192, 6)  # explicit values win


def test_a_resolution_the_patches_do_not_divide_is_refused_before_data_is_read(tmp_path):
    checkpoint = pretrained_checkpoint("maskfeat", tmp_path / "pre")  # patch 8
    with pytest.raises(ValueError, match="--image_size must be a multiple of the patch size 8"):
        finetune.main(args_for(checkpoint, tmp_path / "never-read.parquet", tmp_path / "ft", "--image_size", "50"))
    assert not (tmp_path / "ft").exists()
