"""What a pretrained encoder learned: the measurements of SimMIM and "Revealing the Dark Secrets of MIM".

- :func:`attention_statistics`: per layer and head, how far patches attend (pixels), how focused the attention is
  (entropy), and per layer how different the heads are (mean pairwise KL).
- :func:`layer_similarity`: linear CKA between the patch representations of every pair of layers.
- :func:`avg_dist` / :func:`mask_statistics`: SimMIM's AvgDist of masks (mean distance of a masked pixel to the
  nearest visible one).
- :func:`hpm_loss_maps`: HPM's predicted per-patch loss next to the true one.

Every number is a NumPy array; the definitions are written in each docstring and checked in the tests against
independent computations.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .modeling_utils import encoder_config

__all__ = ["attention_statistics", "layer_similarity", "linear_cka", "avg_dist", "mask_statistics", "hpm_loss_maps"]


# ---------------------------------------------------------------------------------------------- encoders


def _encoder(model: nn.Module) -> nn.Module:
    """The bare encoder of an hf_mim or transformers model (runs all patches, no mask)."""
    prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, prefix, None) if prefix else None
    return base if isinstance(base, nn.Module) else model


def _blocks(encoder: nn.Module) -> nn.ModuleList:
    """The transformer blocks, in order: ``encoder.layers`` (hf_mim) or ``encoder.layer`` (transformers ViT/BEiT)."""
    if (
        type(encoder).__name__.startswith("Swin")
        or getattr(getattr(encoder, "config", None), "backbone", "") == "swin"
    ):
        raise ValueError(
            "Swin encoders are not supported: window attention has no global patch-to-patch attention map, so "
            "attention distance and head diversity would not mean what the papers measure. Use a ViT-family model."
        )
    for name in ("encoder.layers", "encoder.layer", "layers", "layer"):
        module = encoder
        for part in name.split("."):
            module = getattr(module, part, None)
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            return module
    raise ValueError(
        f"{type(encoder).__name__} is not a ViT-family encoder (no `encoder.layers` / `encoder.layer` blocks); "
        "supported: hf_mim MaskFeat / SimMIM (vit) / HPM and transformers ViTModel / BeitModel / ViTMAEModel."
    )


def _patch_size(encoder: nn.Module) -> int:
    return encoder_config(encoder.config).patch_size


def _run(encoder: nn.Module, pixel_values: torch.Tensor) -> None:
    with torch.no_grad():
        if getattr(encoder.config, "model_type", "") == "vit_mae":
            # transformers' ViTMAEModel masks inside its forward: keep every patch, in order (noise = position)
            saved = encoder.config.mask_ratio
            encoder.config.mask_ratio = 0.0
            length = (pixel_values.shape[-2] // encoder.config.patch_size) * (
                pixel_values.shape[-1] // encoder.config.patch_size
            )
            noise = torch.arange(length, dtype=torch.float32, device=pixel_values.device).expand(len(pixel_values), -1)
            try:
                encoder(pixel_values=pixel_values, noise=noise)
            finally:
                encoder.config.mask_ratio = saved
        else:
            encoder(pixel_values=pixel_values)


def _check_images(encoder: nn.Module, pixel_values: torch.Tensor) -> tuple[int, int]:
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4 or len(pixel_values) == 0:
        raise ValueError("`pixel_values` must be a non-empty [N, C, H, W] tensor.")
    patch = _patch_size(encoder)
    config = encoder_config(encoder.config)
    size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
    if tuple(pixel_values.shape[-2:]) != (size, size):
        raise ValueError(
            f"`pixel_values` must be {size}x{size} images for this model (its image_size), got "
            f"{tuple(pixel_values.shape[-2:])}; preprocess them with the checkpoint's image processor."
        )
    return size // patch, size // patch


@contextlib.contextmanager
def _eager_attention(encoder: nn.Module) -> Iterator[None]:
    """Switches every config the blocks read to eager attention (the only one that returns the probabilities)."""
    configs = {
        id(m.config): m.config
        for m in encoder.modules()
        if hasattr(getattr(m, "config", None), "_attn_implementation")
    }
    saved = {key: config._attn_implementation for key, config in configs.items()}
    try:
        for config in configs.values():
            config._attn_implementation = "eager"
        yield
    finally:
        for key, config in configs.items():
            config._attn_implementation = saved[key]


def _attention_modules(blocks: nn.ModuleList) -> list[nn.Module]:
    modules = []
    for block in blocks:
        attention = getattr(block, "attention", None)
        if attention is None:
            raise ValueError(f"{type(block).__name__} has no `attention` module.")
        modules.append(attention)
    return modules


# ---------------------------------------------------------------------------------------------- attention


def attention_reductions(attention: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-head sums over images and patch queries of one layer's attention ``[B, H, T, T]``.

    Args:
        attention: Attention probabilities; the last ``L = len(centres)`` tokens are patches, the first ``T - L``
            prefix tokens (``[CLS]``).
        centres: ``[L, 2]`` patch centres in pixels.

    Returns:
        ``(distance_sum [H], entropy_sum [H], kl_sum scalar, num_queries)``.
    """
    a = attention.double()
    length = centres.shape[0]
    prefix = a.shape[-1] - length
    queries = a[:, :, prefix:, :]  # [B, H, L, T]: patch queries over all keys
    patch_keys = queries[..., prefix:]  # [B, H, L, L]
    renorm = patch_keys / patch_keys.sum(-1, keepdim=True).clamp_min(1e-300)
    dist = torch.cdist(centres.double(), centres.double())  # [L, L]
    distance = (renorm * dist).sum(-1).sum(dim=(0, 2))  # [H]
    log_a = queries.clamp_min(1e-300).log()
    entropy = -(queries * log_a).sum(-1).sum(dim=(0, 2))  # [H]
    # KL(h || g) summed over ordered pairs = sum_h sum_g sum_j a_h (log a_h - log a_g), minus the h == g terms (0)
    heads = a.shape[1]
    plogp = (queries * log_a).sum(-1).sum(1)  # [B, L]: sum_h sum_j a_h log a_h
    cross = (queries.sum(1) * log_a.sum(1)).sum(-1)  # [B, L]: sum_j (sum_h a_h)(sum_g log a_g)
    kl = (heads * plogp - cross).sum()
    return distance, entropy, kl, a.shape[0] * length


def attention_statistics(model: nn.Module, pixel_values: torch.Tensor, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Attention distance, entropy and head diversity of a ViT-family encoder.

    With ``a`` the attention probabilities of a patch query ``i`` over the keys, averaged over images and patch
    queries:

    - ``"distance"`` ``[layers, heads]``: ``sum_j a'_ij ||c_i - c_j||`` in pixels, ``j`` over patch keys only and
      ``a'`` = ``a`` renormalised over them, ``c`` = patch centres.
    - ``"entropy"`` ``[layers, heads]``: ``-sum_j a_ij ln a_ij`` over all keys (``[CLS]`` included).
    - ``"head_kl"`` ``[layers]``: mean over ordered pairs of distinct heads ``(h, g)`` of
      ``KL(a^h_i || a^g_i) = sum_j a^h_ij ln(a^h_ij / a^g_ij)``.

    Works for hf_mim's MaskFeat, SimMIM (``vit``) and HPM / MAE encoders (all patches, no mask) and transformers'
    ``ViTModel``, ``BeitModel`` (relative position bias included) and ``ViTMAEModel`` (run with every patch kept, in
    order); the model is switched to eager attention for the call and restored. Swin is refused: window attention
    has no global patch-to-patch map.

    Args:
        model: The model (pretraining, bare or classification).
        pixel_values: ``[N, C, H, W]`` at the model's image size.
        batch_size: Images per forward pass.
    """
    encoder = _encoder(model)
    blocks = _blocks(encoder)
    grid = _check_images(encoder, pixel_values)
    patch = _patch_size(encoder)
    ys, xs = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    centres = (torch.stack([ys, xs], -1).reshape(-1, 2).double() + 0.5) * patch
    modules = _attention_modules(blocks)
    layers = len(modules)
    sums: dict[int, list] = {}

    def hook(index):
        def record(module, inputs, output):
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise RuntimeError(f"{type(module).__name__} returned no attention probabilities in eager mode.")
            d, e, k, n = attention_reductions(weights.detach().cpu(), centres)
            if index not in sums:
                sums[index] = [d, e, k, n]
            else:
                sums[index] = [a + b for a, b in zip(sums[index], (d, e, k, n))]

        return record

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(modules)]
    try:
        with _eager_attention(encoder):
            for start in range(0, len(pixel_values), batch_size):
                _run(encoder, pixel_values[start : start + batch_size].to(device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    heads = sums[0][0].shape[0]
    distance = np.stack([(sums[i][0] / sums[i][3]).numpy() for i in range(layers)])
    entropy = np.stack([(sums[i][1] / sums[i][3]).numpy() for i in range(layers)])
    pairs = heads * (heads - 1)
    head_kl = np.array([float(sums[i][2]) / sums[i][3] / pairs if pairs else 0.0 for i in range(layers)])
    return {"distance": distance, "entropy": entropy, "head_kl": head_kl}


# ------------------------------------------------------------------------------------------------- CKA


def linear_cka(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Linear CKA (Kornblith et al., 2019) of two feature matrices ``[n, d1]``, ``[n, d2]`` (centred here):
    ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``."""
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    x, y = x - x.mean(0), y - y.mean(0)
    return float((y.T @ x).pow(2).sum() / ((x.T @ x).norm() * (y.T @ y).norm()))


def layer_similarity(model: nn.Module, pixel_values: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Linear CKA ``[L + 1, L + 1]`` between the patch-token representations of the embedding output (the first
    block's input) and every block's output, features flattened over images x patch tokens and centred.

    Accumulates cross-products batch by batch (``C_xy = sum x^T y - n mean_x mean_y^T``), so memory does not grow
    with the number of images.
    """
    encoder = _encoder(model)
    blocks = _blocks(encoder)
    grid = _check_images(encoder, pixel_values)
    length = grid[0] * grid[1]
    captured: list[torch.Tensor] = []

    def keep(tensor):
        tensor = tensor[0] if isinstance(tensor, tuple) else tensor
        captured.append(tensor.detach()[:, -length:].reshape(-1, tensor.shape[-1]).double().cpu())

    handles = [blocks[0].register_forward_pre_hook(lambda m, args, kwargs: keep(args[0] if args else
               kwargs["hidden_states"]), with_kwargs=True)]  # fmt: skip
    handles += [block.register_forward_hook(lambda m, i, out: keep(out)) for block in blocks]
    count = len(blocks) + 1
    sums = [None] * count
    cross = {}
    total = 0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(pixel_values), batch_size):
            captured.clear()
            _run(encoder, pixel_values[start : start + batch_size].to(device))
            feats = captured[:count]
            total += feats[0].shape[0]
            for i in range(count):
                sums[i] = feats[i].sum(0) if sums[i] is None else sums[i] + feats[i].sum(0)
                for j in range(i, count):
                    product = feats[i].T @ feats[j]
                    cross[i, j] = product if (i, j) not in cross else cross[i, j] + product
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    centred = {(i, j): cross[i, j] - torch.outer(sums[i], sums[j]) / total for (i, j) in cross}
    norms = [centred[i, i].norm() for i in range(count)]
    cka = np.eye(count)
    for (i, j), c in centred.items():
        if i != j:
            cka[i, j] = cka[j, i] = float(c.pow(2).sum() / (norms[i] * norms[j]))
    return cka


# ---------------------------------------------------------------------------------------------- masks


def avg_dist(masks: np.ndarray | torch.Tensor, pixel_size: int) -> float:
    """SimMIM's AvgDist: masks ``[N, h, w]`` (True = masked) on a grid of ``pixel_size``-pixel cells, upsampled to
    pixels; the mean over masked pixels of the Euclidean distance (pixels) to the nearest visible pixel, averaged
    over masks. A mask with nothing visible is an error; a mask with nothing masked counts 0."""
    masks = np.asarray(masks.cpu() if isinstance(masks, torch.Tensor) else masks).astype(bool)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3 or masks.shape[0] == 0:
        raise ValueError(f"`masks` must be a non-empty [N, h, w] boolean array, got shape {masks.shape}.")
    if isinstance(pixel_size, bool) or not isinstance(pixel_size, int) or pixel_size < 1:
        raise ValueError(f"`pixel_size` must be a positive integer, got {pixel_size!r}.")
    try:
        from scipy.ndimage import distance_transform_edt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("avg_dist needs scipy: pip install 'hf_mim[analysis]'.") from err
    values = []
    for index, mask in enumerate(masks):
        if mask.all():
            raise ValueError(f"mask {index} has no visible cell: AvgDist is undefined.")
        if not mask.any():
            values.append(0.0)
            continue
        pixels = mask.repeat(pixel_size, 0).repeat(pixel_size, 1)
        # exact Euclidean distance of every masked pixel (centre) to the nearest visible pixel (centre)
        values.append(float(distance_transform_edt(pixels)[pixels].mean()))
    return float(np.mean(values))


def mask_statistics(generator, num_masks: int = 1000, seed: int = 0, pixel_size: int | None = None) -> dict:
    """AvgDist and masked fraction of ``num_masks`` masks from an hf_mim mask generator or image processor.

    Args:
        generator: A :class:`~hf_mim.masking.MaskGenerator` or a :class:`~hf_mim.MaskedImageProcessor` with a mask.
        num_masks: Masks to draw.
        seed: Seed of the draws.
        pixel_size: Pixels per mask cell (default: the processor's / SimMIM generator's model patch size, else 16).

    Returns:
        ``{"avg_dist", "avg_dist_std", "mask_ratio", "mask_ratio_std", "num_masks", "grid", "pixel_size"}``.
    """
    from .image_processing import MaskedImageProcessor
    from .masking import MaskGenerator

    if isinstance(generator, MaskedImageProcessor):
        if generator.mask_type is None:
            raise ValueError("This image processor makes no masks (`mask_type` is None).")
        pixel_size = pixel_size or generator.patch_size
        generator = generator.mask_generator(rng=seed)
    elif not isinstance(generator, MaskGenerator):
        raise ValueError(
            f"`generator` must be a MaskGenerator or MaskedImageProcessor, got {type(generator).__name__}."
        )
    else:
        generator.rng = np.random.default_rng(seed)
    pixel_size = pixel_size or getattr(generator, "model_patch_size", 16)
    side = math.isqrt(generator.num_patches)
    grid = (getattr(generator, "height", side), getattr(generator, "width", side))
    if hasattr(generator, "coarse_grid"):
        grid = (generator.coarse_grid[0] * generator.scale, generator.coarse_grid[1] * generator.scale)
    masks = generator.generate(num_masks).reshape(num_masks, *grid)
    per_mask = np.array([avg_dist(m[None], pixel_size) for m in masks])
    ratios = masks.reshape(num_masks, -1).mean(1)
    return {"avg_dist": float(per_mask.mean()), "avg_dist_std": float(per_mask.std()),
            "mask_ratio": float(ratios.mean()), "mask_ratio_std": float(ratios.std()), "num_masks": num_masks,
            "grid": list(grid), "pixel_size": pixel_size}  # fmt: skip


# ------------------------------------------------------------------------------------------------ HPM


@torch.no_grad()
def hpm_loss_maps(model: nn.Module, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None):
    """HPM's predicted per-patch loss and the true one, for the same masks.

    Returns:
        ``(predicted [N, h, w], true [N, h, w], mask [N, h, w])`` as NumPy arrays, and a picture (PIL image):
        input | masked input | predicted-loss map | true-loss map per row (true loss shown on masked patches).
    """
    from .modeling_utils import normalization
    from .visualization import denormalize, heatmap, image_grid, mask_overlay

    if getattr(model, "loss_predictor", None) is None:  # HPMForPreTraining with hard patches mining
        raise ValueError("hpm_loss_maps needs an HPMForPreTraining model with hard patches mining (a loss predictor).")
    was_training = model.training
    model.eval()
    out = model(pixel_values=pixel_values, bool_masked_pos=bool_masked_pos)
    model.train(was_training)
    patch = model.config.patch_size
    grid = (pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch)
    predicted = out.predicted_patch_loss.float().cpu().view(-1, *grid)
    true = out.patch_loss.float().cpu().view(-1, *grid)
    mask = out.mask.cpu().view(-1, *grid)
    size = tuple(pixel_values.shape[-2:])
    rows = []
    for i in range(len(pixel_values)):
        image = denormalize(pixel_values[i], *normalization(model.config))
        shown = torch.where(mask[i], true[i], true[i][mask[i]].min() if mask[i].any() else true[i].min())
        rows.append([image, mask_overlay(image, out.mask[i], grid), heatmap(predicted[i].flatten(), grid, size),
                     heatmap(shown.flatten(), grid, size)])  # fmt: skip
    picture = image_grid(rows, upscale=max(1, 128 // size[0]))
    return predicted.numpy(), true.numpy(), mask.numpy(), picture


# ---------------------------------------------------------------------------- the report of ``hf-mim analyze``

#: The AvgDist study's grid (SimMIM Fig. 3): mask ratios and mask patch sizes at 192 px.
MASK_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MASK_PATCH_SIZES = (4, 8, 16, 32, 64)


def preprocess(checkpoint: str, images: list) -> torch.Tensor:
    from transformers import AutoImageProcessor

    from .image_processing import MaskedImageProcessor

    processor = AutoImageProcessor.from_pretrained(checkpoint)
    if isinstance(processor, MaskedImageProcessor):
        return processor(images, augment=False, return_mask=False)["pixel_values"]
    return processor([image.convert("RGB") for image in images], return_tensors="pt")["pixel_values"]


def analyse_checkpoint(checkpoint: str, images: list, batch_size: int) -> dict:
    from transformers import AutoModel

    from . import registry  # noqa: F401  (hf_mim is imported: its Auto classes are registered)

    model = AutoModel.from_pretrained(checkpoint).eval()
    pixel_values = preprocess(checkpoint, images)
    stats = attention_statistics(model, pixel_values, batch_size=batch_size)
    cka = layer_similarity(model, pixel_values, batch_size=batch_size)
    return {"model_type": model.config.model_type, **{k: v.tolist() for k, v in stats.items()}, "cka": cka.tolist()}


def mask_study(num_masks: int, seed: int) -> dict:
    from .masking import SimMIMMaskGenerator
    from .registry import get_model_spec, list_models

    table = {}
    for size in tqdm(MASK_PATCH_SIZES, desc="mask study"):
        for ratio in MASK_RATIOS:
            if SimMIMMaskGenerator.hides_every_cell(192, size, ratio):  # nothing visible: AvgDist undefined
                table[f"{size}/{ratio:g}"] = None
                continue
            generator = SimMIMMaskGenerator(192, size, min(size, 4), ratio)
            table[f"{size}/{ratio:g}"] = mask_statistics(generator, num_masks, seed=seed, pixel_size=min(size, 4))
    defaults = {}
    for method in list_models():
        spec = get_model_spec(method)
        processor = spec.image_processor_class()
        if processor.mask_type is None:  # HPM: its teacher masks; its random share is MAE's
            processor = spec.image_processor_class(mask_type="random")
        defaults[method] = mask_statistics(processor, num_masks, seed=seed)
    return {"image_size": 192, "random_masks": table, "method_defaults": defaults}


def figures(results: dict, out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: wrote json only (pip install 'hf_mim[analysis]' for figures).")
        return []
    written = []
    models = results.get("models", {})
    if models:
        for key, label in (("distance", "attention distance (px)"), ("entropy", "attention entropy (nats)")):
            fig, ax = plt.subplots(figsize=(7, 4))
            for i, (name, res) in enumerate(models.items()):
                values = np.asarray(res[key])
                layers = np.arange(1, len(values) + 1)
                for head in range(values.shape[1]):
                    ax.scatter(layers + 0.12 * (i - len(models) / 2), values[:, head], s=12, color=f"C{i}",
                               label=name if head == 0 else None)  # fmt: skip
            ax.set(xlabel="layer", ylabel=label, title=f"{label}: every head a dot")
            ax.legend()
            fig.tight_layout()
            fig.savefig(out / f"attention_{key}.png", dpi=120)
            plt.close(fig)
            written.append(f"attention_{key}.png")
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, (name, res) in enumerate(models.items()):
            ax.plot(np.arange(1, len(res["head_kl"]) + 1), res["head_kl"], "o-", color=f"C{i}", label=name)
        ax.set(xlabel="layer", ylabel="mean KL between heads", title="head diversity")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "head_kl.png", dpi=120)
        plt.close(fig)
        fig, axes = plt.subplots(1, len(models), figsize=(2.6 * len(models) + 1.2, 3.0), squeeze=False,
                                 layout="constrained")  # fmt: skip
        for ax, (name, res) in zip(axes[0], models.items()):
            image = ax.imshow(np.asarray(res["cka"]), vmin=0, vmax=1, cmap="magma", origin="lower")
            ax.set(title=name, xlabel="layer (0 = embedding)", ylabel="layer" if ax is axes[0][0] else None)
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.9, label="linear CKA", pad=0.01)
        fig.savefig(out / "cka.png", dpi=120)
        plt.close(fig)
        written += ["head_kl.png", "cka.png"]
    if "mask_study" in results:
        study = results["mask_study"]["random_masks"]
        fig, ax = plt.subplots(figsize=(6, 4))
        for i, size in enumerate(MASK_PATCH_SIZES):
            ratios = [r for r in MASK_RATIOS if study[f"{size}/{r:g}"] is not None]
            ax.plot(ratios, [study[f"{size}/{r:g}"]["avg_dist"] for r in ratios], "o-", color=f"C{i}",
                    label=f"mask patch {size} px")  # fmt: skip
        ax.set(xlabel="mask ratio", ylabel="AvgDist (px)", title="SimMIM AvgDist, 192 px images")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "mask_avgdist.png", dpi=120)
        plt.close(fig)
        written.append("mask_avgdist.png")
    return written
