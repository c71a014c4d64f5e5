"""Evaluations of frozen encoders: pooled features, k-nearest-neighbour accuracy, and what a pretraining model
learned beyond the trivial baseline.

- :func:`extract_features`: pooled encoder features of a ``datasets`` split (evaluation preprocessing).
- :func:`knn_classify` / :func:`knn_accuracy`: cosine kNN with similarity-weighted votes (``exp(s / T)``, the
  protocol of DINO and the MIM papers' kNN tables; ``temperature=None`` gives plain majority votes).
- :func:`trivial_baseline`: a pretraining model's loss next to the loss of predicting the mean target, and the
  correlation between its predictions and the targets, on one batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["extract_features", "knn_accuracy", "knn_classify", "trivial_baseline"]


@torch.no_grad()
def extract_features(model: nn.Module, dataset, processor, image_column: str = "image", batch_size: int = 256,
                     desc: str = "features") -> np.ndarray:  # fmt: skip
    """``[N, D]`` pooled features of every row, evaluation preprocessing: the ``pooler_output`` of an hf_mim model's
    bare encoder, or the mean patch token of a plain transformers encoder of a class hf_mim can wrap (what an hf_mim
    model started from it pools: :func:`hf_mim.backbones.mean_patch_features`)."""
    from .backbones import BACKBONES, BackboneMixin, mean_patch_features

    prefix = getattr(model, "base_model_prefix", "")
    encoder = getattr(model, prefix, model) if prefix else model
    plain = not isinstance(model, BackboneMixin) and getattr(model.config, "model_type", None) in BACKBONES
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    features = []
    for start in tqdm(range(0, len(dataset), batch_size), desc=desc, leave=False):
        images = dataset[start : start + batch_size][image_column]
        pixel_values = processor(images, augment=False, return_mask=False)["pixel_values"].to(device)
        pooled = (
            mean_patch_features(encoder, pixel_values) if plain else encoder(pixel_values=pixel_values).pooler_output
        )
        features.append(pooled.float().cpu())
    model.train(was_training)
    return torch.cat(features).numpy()


def knn_classify(train_features, train_labels, test_features, k: int = 20, temperature: float | None = 0.07,
                 num_classes: int | None = None, batch_size: int = 1024) -> np.ndarray:  # fmt: skip
    """Predicted classes of ``test_features`` by their ``k`` nearest training features (cosine similarity).

    Each neighbour votes for its class with weight ``exp(similarity / temperature)`` (``None``: weight 1); ties go
    to the lower class id.

    Args:
        train_features: ``[N, D]``.
        train_labels: ``[N]`` integer class ids.
        test_features: ``[M, D]``.
        k: Neighbours (at most N).
        temperature: Vote temperature, or None for majority votes.
        num_classes: Number of classes (default: ``max(train_labels) + 1``).
    """
    train = torch.nn.functional.normalize(torch.as_tensor(train_features, dtype=torch.float32), dim=1)
    test = torch.nn.functional.normalize(torch.as_tensor(test_features, dtype=torch.float32), dim=1)
    labels = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    if len(train) != len(labels):
        raise ValueError(f"`train_labels` ({len(labels)}) must match `train_features` ({len(train)}).")
    if not 1 <= k <= len(train):
        raise ValueError(f"`k` must be in [1, {len(train)}] (the number of training features), got {k}.")
    num_classes = num_classes or int(labels.max()) + 1
    predictions = []
    for start in range(0, len(test), batch_size):
        similarity = test[start : start + batch_size] @ train.T  # [b, N]
        top, index = similarity.topk(k, dim=1)
        weights = torch.ones_like(top) if temperature is None else (top / temperature).exp()
        votes = torch.zeros(len(top), num_classes).scatter_add_(1, labels[index], weights)
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions).numpy()


def knn_accuracy(train_features, train_labels, test_features, test_labels, **kwargs) -> float:
    """Top-1 accuracy of :func:`knn_classify`."""
    predicted = knn_classify(train_features, train_labels, test_features, **kwargs)
    return float((predicted == np.asarray(test_labels)).mean())


@torch.no_grad()
def trivial_baseline(model: nn.Module, batch: dict) -> dict[str, float]:
    """What a pretraining model learned on one batch, beyond predicting the mean.

    Compares the model's loss with the same loss -- the model's own loss code, so its configured loss, targets and
    channels -- for a constant prediction, the mean target (per target dimension over the batch's masked patches;
    SimMIM: per channel over the masked pixels, or the bin frequencies for colour bins), and gives the Pearson
    correlation between predictions and targets on the masked patches.

    Returns:
        ``{"loss", "mean_target_loss", "loss_ratio", "correlation"}`` (``loss_ratio`` < 1: better than the mean).
    """
    from .losses import masked_mean, upsample_patch_mask

    was_training = model.training
    model.eval()
    inputs = {k: v for k, v in batch.items() if k in ("pixel_values", "bool_masked_pos")}
    out = model(**inputs)
    model.train(was_training)
    mask = out.mask
    pixel_values = inputs["pixel_values"].float()
    if getattr(out, "reconstruction", None) is not None:  # a pixel-space prediction (SimMIM): its forward_loss
        loss = out.loss
        baseline = model.forward_loss(pixel_values, model.mean_prediction(pixel_values, mask), mask)
        patch = model.config.patch_size
        grid = (pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch)
        pixel_mask = upsample_patch_mask(mask, grid, patch).expand_as(pixel_values)  # [B, C, H, W]
        prediction, target = out.reconstruction.float()[pixel_mask], pixel_values[pixel_mask]
    else:  # patch targets (MaskFeat, HPM / MAE): the one per-patch loss of hf_mim.targets.PatchTargets
        target = model.forward_targets(pixel_values).float()  # [B, L, D], the whole target layout
        heads = [out.logits] + ([out.pixel_logits] if getattr(out, "pixel_logits", None) is not None else [])
        prediction = model.targets.join(*heads).float()
        mean = target[mask].mean(0)  # [D]
        loss = masked_mean(model.targets.per_patch_loss(prediction, target), mask)
        baseline = masked_mean(model.targets.per_patch_loss(mean.expand_as(target), target), mask)
        main = out.logits.shape[-1]  # the correlation of the main head (HOG for hog+pixel)
        prediction, target = prediction[mask][:, :main].flatten(), target[mask][:, :main].flatten()
    correlation = torch.corrcoef(torch.stack([prediction.flatten(), target.flatten()]))[0, 1]
    loss, baseline = float(loss), float(baseline)
    return {"loss": loss, "mean_target_loss": baseline, "loss_ratio": loss / max(baseline, 1e-12),
            "correlation": float(correlation)}  # fmt: skip
