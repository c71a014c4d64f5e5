import math

import numpy as np
import pytest
import torch
from transformers import ViTMAEConfig, ViTMAEForPreTraining

from hf_mim import HPMConfig, HPMForPreTraining, HPMImageProcessor
from hf_mim.losses import mse_loss_predictor_loss, relative_loss_predictor_loss

from ...modeling_tester import upsampled_cifar_batch


def tiny(**kwargs):
    return HPMConfig.from_preset("test", **kwargs)


def loop_relative_loss(pred: np.ndarray, actual: np.ndarray) -> float:
    total, pairs = 0.0, 0
    for b in range(pred.shape[0]):
        for i in range(pred.shape[1]):
            for j in range(pred.shape[1]):
                if actual[b, j] == actual[b, i]:
                    continue
                y = 1.0 if actual[b, j] > actual[b, i] else 0.0
                p = 1.0 / (1.0 + math.exp(-(pred[b, j] - pred[b, i])))
                total += -(y * math.log(p + 1e-6) + (1 - y) * math.log(1 - p + 1e-6))
                pairs += 1
    return total / pairs


def loop_mse_loss(pred: np.ndarray, actual: np.ndarray) -> float:
    out = []
    for b in range(pred.shape[0]):
        a = actual[b]
        z = (a - a.mean()) / math.sqrt(a.var(ddof=1) + 1e-6)
        out.extend((pred[b] - z) ** 2)
    return float(np.mean(out))


def test_loss_predictor_losses_match_independent_loops_with_ties():
    generator = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 7, generator=generator)
    actual = torch.randint(0, 4, (3, 7), generator=generator).float()  # many ties
    assert (actual.unsqueeze(1) == actual.unsqueeze(2)).sum() > 3 * 7
    got = relative_loss_predictor_loss(pred, actual).item()
    assert got == pytest.approx(loop_relative_loss(pred.double().numpy(), actual.double().numpy()), rel=1e-5)
    got = mse_loss_predictor_loss(pred, actual).item()
    assert got == pytest.approx(loop_mse_loss(pred.double().numpy(), actual.double().numpy()), rel=1e-5)
    # all ties: no valid pair, loss 0 rather than NaN
    assert relative_loss_predictor_loss(pred, torch.ones(3, 7)).item() == 0.0


@pytest.mark.parametrize("epoch, total", [(0, 10), (4, 10), (9, 10), (2, 3)])
def test_easy_to_hard_mask_schedule(epoch, total):
    torch.manual_seed(0)
    model = HPMForPreTraining(tiny(image_size=64, patch_size=8))  # L = 64, 48 masked
    model.set_training_progress(epoch, total)
    scores = torch.randn(256, 64)
    mask = model.easy_to_hard_mask(scores)
    num_masked = 64 - int(64 * 0.25)
    num_hard = int(num_masked * 0.5 * (epoch + 1) / total)
    assert model.num_hard_patches(num_masked) == num_hard
    assert (mask.sum(1) == num_masked).all()
    top = scores.topk(num_hard, dim=1).indices
    assert mask.gather(1, top).all(), "the scheduled hardest patches are always masked"
    # the rest is uniform over the remaining patches: no preference for higher scores among them
    rest = mask.clone()
    rest.scatter_(1, top, False)
    remaining = torch.ones_like(mask).scatter_(1, top, False)
    ranks = scores.argsort(1).argsort(1).float()
    mean_rank_rest = (ranks * rest).sum() / rest.sum()
    mean_rank_remaining = (ranks * remaining).sum() / remaining.sum()
    assert abs(mean_rank_rest - mean_rank_remaining) < 1.0


def test_mask_generation_is_vectorised():
    import sys

    model = HPMForPreTraining(tiny(image_size=64, patch_size=4))
    model.set_training_progress(5, 10)
    code = (
        HPMForPreTraining.easy_to_hard_mask.__wrapped__.__code__
        if hasattr(HPMForPreTraining.easy_to_hard_mask, "__wrapped__")
        else HPMForPreTraining.easy_to_hard_mask.__code__
    )

    def lines_executed(batch: int) -> int:
        count = 0

        def tracer(frame, event, arg):
            nonlocal count
            if frame.f_code is code:
                if event == "line":
                    count += 1
                return tracer
            return None

        sys.settrace(tracer)
        try:
            mask = model.easy_to_hard_mask(torch.randn(batch, 256))
        finally:
            sys.settrace(None)
        assert (mask.sum(1) == 256 - 64).all()
        return count

    # a per-image Python loop would execute more lines for a bigger batch
    assert lines_executed(4) == lines_executed(512) > 0


def test_teacher_ema_follows_schedule_and_resumes(tmp_path):
    torch.manual_seed(0)
    config = tiny(teacher_momentum_start=0.9, teacher_momentum_end=0.99, teacher_momentum_warmup_epochs=10)
    model = HPMForPreTraining(config)
    for epoch, expected in [(0, 0.9), (5, 0.945), (10, 0.99), (15, 0.99)]:
        model.set_training_progress(epoch, 20)
        assert model.teacher_momentum == pytest.approx(expected)
    teacher = dict(model.teacher.named_parameters())
    assert all(not p.requires_grad for p in teacher.values())
    torch.testing.assert_close(teacher["encoder.layers.0.mlp.fc1.weight"], model.hpm.encoder.layers[0].mlp.fc1.weight)
    # one optimizer step, then one EMA step: teacher = m * teacher + (1 - m) * student
    model.set_training_progress(5, 20)
    before = {k: v.clone() for k, v in teacher.items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    x = torch.randn(4, 3, 32, 32)
    model(pixel_values=x).loss.backward()
    optimizer.step()
    assert model.update_teacher() == pytest.approx(0.945)
    student = model.hpm.encoder.layers[0].mlp.fc1.weight
    expected = 0.945 * before["encoder.layers.0.mlp.fc1.weight"] + 0.055 * student
    torch.testing.assert_close(teacher["encoder.layers.0.mlp.fc1.weight"], expected)
    predictor = 0.945 * before["loss_predictor.pred.weight"] + 0.055 * model.loss_predictor.pred.weight
    torch.testing.assert_close(teacher["loss_predictor.pred.weight"], predictor)
    # resuming from a checkpoint restores teacher and progress exactly: the next masks and losses are identical
    model.save_pretrained(tmp_path)
    resumed = HPMForPreTraining.from_pretrained(tmp_path)
    assert float(resumed.training_epoch) == 5 and float(resumed.total_epochs) == 20
    for (name, a), b in zip(model.teacher.state_dict().items(), resumed.teacher.state_dict().values()):
        assert torch.equal(a, b), name
    torch.manual_seed(3)
    a = model(pixel_values=x)
    torch.manual_seed(3)
    b = resumed(pixel_values=x)
    assert torch.equal(a.mask, b.mask) and torch.equal(a.loss, b.loss)


def test_given_mask_overrides_teacher_and_is_validated():
    model = HPMForPreTraining(tiny()).eval()
    x = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :12] = True
    out = model(pixel_values=x, bool_masked_pos=mask)
    assert torch.equal(out.mask, mask)
    assert out.logits.shape == (2, 16, 8 * 8 * 3) and out.predicted_patch_loss.shape == (2, 16)
    torch.testing.assert_close(out.loss, out.reconstruction_loss + out.loss_predictor_loss)
    bad = mask.clone()
    bad[0, 12] = True
    with pytest.raises(ValueError, match="exactly 12 patches"):
        model(pixel_values=x, bool_masked_pos=bad)
    with pytest.raises(ValueError, match="torch.bool"):
        model(pixel_values=x, bool_masked_pos=mask.long())


def test_mining_off_is_plain_mae_and_matches_transformers_vitmae():
    torch.manual_seed(0)
    reference = ViTMAEForPreTraining(
        ViTMAEConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            decoder_hidden_size=32,
            decoder_num_hidden_layers=2,
            decoder_num_attention_heads=2,
            decoder_intermediate_size=64,
            norm_pix_loss=True,
            layer_norm_eps=1e-6,
        )
    ).eval()
    ours = HPMForPreTraining.from_transformers(reference)
    assert ours.loss_predictor is None and ours.teacher is None and not ours.config.hard_patches_mining
    x = torch.randn(3, 3, 32, 32)
    mask = torch.zeros(3, 16, dtype=torch.bool)
    for row in range(3):
        mask[row, torch.randperm(16)[:12]] = True
    # transformers keeps the patches with the lowest noise: visible ones first, in index order like ours
    noise = mask.float() + torch.arange(16) / 100
    with torch.no_grad():
        expected = reference(pixel_values=x, noise=noise)
        got = ours(pixel_values=x, bool_masked_pos=mask)
    assert torch.equal(expected.mask.bool(), mask)
    torch.testing.assert_close(got.loss, expected.loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.logits, expected.logits, atol=1e-5, rtol=1e-5)
    assert got.loss_predictor_loss is None and torch.equal(got.loss, got.reconstruction_loss)
    # with mining switched on, the converted encoder seeds both student and teacher
    mining = HPMForPreTraining.from_transformers(reference, hard_patches_mining=True)
    torch.testing.assert_close(mining.teacher.encoder.layers[1].mlp.fc2.weight, reference.vit.layers[1].mlp.fc2.weight)


def test_hog_target_and_processor_defaults():
    model = HPMForPreTraining(tiny(target="hog", norm_pix_loss=False))
    out = model(pixel_values=torch.randn(2, 3, 32, 32))
    assert out.logits.shape == (2, 16, 27) and torch.isfinite(out.loss)
    processor = HPMImageProcessor()
    assert processor.crop_scale == [0.2, 1.0] and processor.mask_type is None
    mae = HPMImageProcessor.from_model_config(tiny(hard_patches_mining=False))
    assert mae.mask_type == "random" and mae.mask_generator(0)().sum() == 12


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = a.argsort().argsort().astype(float), b.argsort().argsort().astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def test_predicted_patch_loss_ranks_true_loss_on_held_out_cifar(cifar10_rows):
    torch.manual_seed(0)
    config = tiny(
        image_size=32,
        patch_size=4,
        hidden_size=64,
        intermediate_size=128,
        decoder_hidden_size=64,
        decoder_intermediate_size=128,
        teacher_momentum_warmup_epochs=1,
    )
    model = HPMForPreTraining(config)
    images = upsampled_cifar_batch(cifar10_rows, 32, count=512)
    train, held_out = images[:384], images[384:]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    steps = 500
    first = last = None
    for step in range(steps):
        model.set_training_progress(step * 4 / steps, 4)
        batch = train[torch.randint(0, 384, (64,))]
        out = model(pixel_values=batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        model.update_teacher()
        first = first if first is not None else out.reconstruction_loss.item()
        last = out.reconstruction_loss.item()
    assert last < 0.8 * first, f"reconstruction {first:.3f} -> {last:.3f}"
    model.eval()
    with torch.no_grad():
        out = model(pixel_values=held_out)
    rhos = [
        spearman(out.predicted_patch_loss[i][out.mask[i]].numpy(), out.patch_loss[i][out.mask[i]].numpy())
        for i in range(len(held_out))
    ]
    rhos = np.asarray(rhos)
    mean_rho = float(rhos.mean())
    t_stat = mean_rho / (rhos.std(ddof=1) / np.sqrt(len(rhos)))
    print(
        f"held-out Spearman(predicted, true patch loss) = {mean_rho:.3f} (t = {t_stat:.1f}, "
        f"{100 * (rhos > 0).mean():.0f}% of images positive)"
    )
    # better than chance with a clear margin: chance gives mean 0, |t| < 2 and about half the images positive
    assert mean_rho > 0.05 and t_stat > 4 and (rhos > 0).mean() > 0.65


def test_trainer_callback_drives_progress_and_teacher(cifar10_rows, tmp_path):
    from transformers import Trainer, TrainingArguments

    from hf_mim import HPMTrainerCallback

    torch.manual_seed(0)
    config = tiny()
    model = HPMForPreTraining(config)
    initial = model.teacher.encoder.layers[0].mlp.fc1.weight.clone()
    processor = HPMImageProcessor.from_model_config(config)
    train = cifar10_rows.select(range(64)).with_transform(processor.as_transform())
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=16,
        num_train_epochs=2,
        learning_rate=1e-3,
        use_cpu=True,
        remove_unused_columns=False,
        save_strategy="no",
        report_to=[],
        logging_steps=1,
    )
    Trainer(model=model, args=args, train_dataset=train, callbacks=[HPMTrainerCallback()]).train()
    assert float(model.total_epochs) == 2 and 1.0 <= float(model.training_epoch) <= 2.0
    assert not torch.equal(model.teacher.encoder.layers[0].mlp.fc1.weight, initial)
    assert model.num_hard_patches(12) == int(12 * 0.5 * 2 / 2)
