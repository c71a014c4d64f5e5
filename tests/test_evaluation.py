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
