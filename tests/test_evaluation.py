"""kNN and the trivial baseline against brute-force NumPy computations."""

import numpy as np
import pytest
import torch

from hf_mim import get_model_spec
from hf_mim.evaluation import knn_accuracy, knn_classify, trivial_baseline


def brute_knn(train, labels, test, k, temperature):
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    out = []
    for row in test:
        sims = train @ row
        order = np.argsort(-sims, kind="stable")[:k]
        votes = np.zeros(labels.max() + 1)
        for j in order:
            votes[labels[j]] += 1.0 if temperature is None else np.exp(sims[j] / temperature)
        out.append(int(np.argmax(votes)))
    return np.array(out)


@pytest.mark.parametrize("temperature", [0.07, None])
def test_knn_matches_brute_force(temperature):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8))
    labels = rng.integers(0, 4, 120)
    train = centres[labels] + 0.8 * rng.normal(size=(120, 8))
    test_labels = rng.integers(0, 4, 50)
    test = centres[test_labels] + 0.8 * rng.normal(size=(50, 8))
    ours = knn_classify(train, labels, test, k=7, temperature=temperature, batch_size=16)
    assert np.array_equal(ours, brute_knn(train, labels, test, 7, temperature))
    assert knn_accuracy(train, labels, test, test_labels, k=7) > 0.8  # separable toy clusters
    with pytest.raises(ValueError, match="`k` must be in"):
        knn_classify(train, labels, test, k=500)


@pytest.mark.parametrize("method", ["maskfeat", "simmim", "hpm"])
def test_trivial_baseline_on_a_toy_batch(method):
    torch.manual_seed(0)
    spec = get_model_spec(method)
    model = spec.pretraining_class(spec.tiny_config()).eval()
    x = torch.randn(3, 3, 32, 32)
    batch = {"pixel_values": x, **spec.pretraining_inputs(model.config, 3, torch.Generator().manual_seed(0))}
    stats = trivial_baseline(model, batch)
    with torch.no_grad():
        out = model(**batch)
    mask = out.mask.numpy()
    if method == "simmim":
        pm = mask.reshape(3, 4, 4).repeat(8, 1).repeat(8, 2)[:, None].repeat(3, 1)  # [B, C, H, W] masked pixels
        xs, rec = x.numpy(), out.reconstruction.numpy()
        mean = np.array([xs[:, c][pm[:, c]].mean() for c in range(3)])
        expected_base = sum(np.abs(xs[:, c][pm[:, c]] - mean[c]).sum() for c in range(3)) / pm[:, 0].sum() / 3
        expected_corr = np.corrcoef(rec[pm], xs[pm])[0, 1]
    else:
        target = (out.hog_targets if method == "maskfeat" else model.forward_targets(x)).numpy()
        selected = target[mask]
        expected_base = ((selected - selected.mean(0)) ** 2).mean()
        expected_corr = np.corrcoef(out.logits.numpy()[mask].ravel(), selected.ravel())[0, 1]
    assert stats["loss"] == pytest.approx(
        out.loss.item() if method != "hpm" else out.reconstruction_loss.item(), rel=1e-5
    )
    assert stats["mean_target_loss"] == pytest.approx(expected_base, rel=1e-4)
    assert stats["correlation"] == pytest.approx(expected_corr, abs=1e-4)
    assert stats["loss_ratio"] == pytest.approx(stats["loss"] / stats["mean_target_loss"])


def test_the_baseline_uses_the_models_own_loss():
    """#23 item 8: SimMIM's configured loss (not always L1) and colour bins, and a 4-channel HPM."""
    from hf_mim import HPMConfig, HPMForPreTraining, SimMIMConfig, SimMIMForMaskedImageModeling

    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :8] = True  # two 16 px cells of 8 px patches: the first half of the grid
    l2 = SimMIMForMaskedImageModeling(SimMIMConfig.from_preset("vit-test", loss="l2", mask_patch_size=16)).eval()
    stats = trivial_baseline(l2, {"pixel_values": x, "bool_masked_pos": mask})
    xs, pm = x.numpy(), np.zeros((2, 32, 32), bool)
    pm[:, :16] = True  # the masked pixels: the top half
    mean = np.array([xs[:, c][pm].mean() for c in range(3)])
    expected = sum(((xs[:, c][pm] - mean[c]) ** 2).sum() for c in range(3)) / pm.sum() / 3
    assert stats["mean_target_loss"] == pytest.approx(expected, rel=1e-4)
    with torch.no_grad():
        assert stats["loss"] == pytest.approx(l2(pixel_values=x, bool_masked_pos=mask).loss.item(), rel=1e-5)

    bins = SimMIMForMaskedImageModeling(SimMIMConfig.from_preset("vit-test", target="color_bins", num_color_bins=4,
                                                                 mask_patch_size=16)).eval()  # fmt: skip
    stats = trivial_baseline(bins, {"pixel_values": x, "bool_masked_pos": mask})
    imagenet_mean, imagenet_std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    entropy = 0.0
    for c in range(3):  # the mean target of a classification: the bin frequencies, whose cross-entropy is the entropy
        values = np.round(np.clip(xs[:, c][pm] * imagenet_std[c] + imagenet_mean[c], 0, 1) * 255)
        freq = np.bincount(np.minimum(np.floor(values * 4 / 256), 3).astype(int), minlength=4) / pm.sum()
        entropy += -(freq[freq > 0] * np.log(freq[freq > 0])).sum()
    assert stats["mean_target_loss"] == pytest.approx(entropy / 3, rel=1e-4)

    four = HPMForPreTraining(HPMConfig.from_preset("test", num_channels=4, norm_pix_loss=False)).eval()
    x4 = torch.randn(2, 4, 32, 32)
    hpm_mask = torch.zeros(2, 16, dtype=torch.bool)
    hpm_mask[:, :12] = True
    stats = trivial_baseline(four, {"pixel_values": x4, "bool_masked_pos": hpm_mask})
    target = x4.unfold(2, 8, 8).unfold(3, 8, 8).permute(0, 2, 3, 4, 5, 1).reshape(2, 16, 256)[hpm_mask].numpy()
    assert stats["mean_target_loss"] == pytest.approx(((target - target.mean(0)) ** 2).mean(), rel=1e-4)
