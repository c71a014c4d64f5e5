"""MaskFeat configuration."""

from __future__ import annotations

from typing import Any, ClassVar

from ...backbones import backbone_type, output_stride
from ...configuration_utils import VIT_SIZES, ViTEncoderConfig
from ...modeling_utils import check_choice
from ...targets import check_target_config, hog_cell_size_for, target_dim

# ViT sizes of the MaskFeat paper's image experiments (ViT-B/L) plus the usual smaller ViTs.
MASKFEAT_PRESETS: dict[str, dict[str, Any]] = {
    **{name: VIT_SIZES[name] for name in ("tiny", "small", "base", "large", "test")},
    "demo": {**VIT_SIZES["demo"], "mask_min_num_patches": 4},  # 36 patches: smaller blocks
}


class MaskFeatConfig(ViTEncoderConfig):
    r"""Configuration of MaskFeat (Wei et al., CVPR 2022): a ViT regressing the HOG features of masked patches.

    The ViT hyper-parameters have transformers' ``ViTConfig`` meaning.

    Args:
        image_size: Input side in pixels.
        patch_size: Patch side in pixels; a multiple of ``hog_cell_size``.
        num_channels: Input channels.
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act: ViT sizes.
        hidden_dropout_prob, attention_probs_dropout_prob: Dropout rates.
        qkv_bias: Bias in the query/key/value projections.
        layer_norm_eps: LayerNorm epsilon (1e-6 as in the official ViT).
        drop_path_rate: Stochastic depth, rising linearly to this rate over the blocks.
        initializer_range: Std of the truncated-normal initialisation (also of the ``[MASK]`` token).
        hog_nbins, hog_cell_size, hog_gaussian_window: HOG target parameters.
        target: ``"hog"`` (default), ``"hog+pixel"`` (the paper's multi-task variant: a second head), ``"pixel"``
            (normalised RGB patches, per-patch normalised with ``norm_pix_loss``) or ``"features"`` (the patch tokens
            of a frozen transformers model: the paper's deep-feature targets); see :class:`hf_mim.targets.PatchTargets`.
        hog_loss_weight, pixel_loss_weight: Weights of the two terms of the multi-task loss.
        norm_pix_loss: Per-patch normalised pixel targets for the pixel term (as MAE).
        mask_ratio: Fraction of patches the default image processor masks block-wise (40% in the paper).
        mask_min_num_patches: Smallest masking block, in patches.
        teacher_name_or_path: ``target="features"``: a transformers vision model (local folder or Hub id; ViT,
            DINOv2, CLIP, BEiT, ...) whose patch tokens are the targets; only training needs it.
        teacher_hidden_size: The teacher's width (read from its config when omitted; recorded so that loading the
            student never needs the teacher).
        feature_norm: Layer-normalise each teacher token (no affine) before regressing it.
        feature_loss: ``"l2"`` (mean squared error), ``"smooth_l1"`` (beta 1.0) or ``"cosine"`` (1 - cosine).
        pooling: Classification pooling, ``"mean"`` of patch tokens (default) or ``"cls"``.
        use_fc_norm: Classification head of the papers' fine-tuning: the mean of the patch tokens *before* the
            final LayerNorm, then that LayerNorm (SlowFast's USE_MEAN_POOLING, MAE's global_pool fc_norm). Needs
            ``pooling="mean"``; the fine-tuning recipes turn it on.
        encoder_config: A transformers ViT, DeiT, DINOv2 (with or without registers), BEiT or Swin config to wrap
            instead of the own ViT (``MaskFeatForPreTraining.from_backbone``); one prediction per output token, so
            ``patch_size`` is the encoder's output stride (Swin: 32 px units, masked as a whole).
    """

    model_type = "maskfeat"
    presets: ClassVar[dict[str, dict[str, Any]]] = MASKFEAT_PRESETS
    backbone_types: ClassVar[tuple[str, ...]] = ("vit", "deit", "dinov2", "dinov2_with_registers", "beit", "swin")

    hog_nbins: int = 9
    hog_cell_size: int = 8
    hog_gaussian_window: int = 0
    target: str = "hog"
    hog_loss_weight: float = 1.0
    pixel_loss_weight: float = 1.0
    norm_pix_loss: bool = True
    mask_ratio: float = 0.4
    mask_min_num_patches: int = 15
    pooling: str = "mean"
    use_fc_norm: bool = False
    teacher_name_or_path: str | None = None
    teacher_hidden_size: int | None = None
    feature_norm: bool = True
    feature_loss: str = "l2"

    def __post_init__(self, **kwargs):
        self.use_encoder_config()
        check_target_config(self)
        check_choice("pooling", self.pooling, ("mean", "cls"))
        if (
            self.pooling == "cls"
            and self.encoder_config is not None
            and backbone_type(self.encoder_config.model_type).hierarchical
        ):
            raise ValueError("`pooling='cls'` needs a [CLS] token; this hierarchical encoder has none, use 'mean'.")
        if self.use_fc_norm and self.pooling != "mean":
            raise ValueError(f"`use_fc_norm=True` pools the mean of the patch tokens: it needs `pooling='mean'`, got "
                             f"{self.pooling!r}.")  # fmt: skip
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"`mask_ratio` must be in (0, 1), got {self.mask_ratio!r}.")
        if self.patch_size > 0 and self.image_size > 0 and round(self.mask_ratio * self.num_patches) < 1:
            raise ValueError(f"`mask_ratio` {self.mask_ratio} masks no patch of the {self.num_patches}: the loss "
                             "would be exactly 0; raise it.")  # fmt: skip
        super().__post_init__(**kwargs)

    @classmethod
    def encoder_defaults(cls, encoder_config) -> dict[str, Any]:
        """For a wrapped encoder: HOG cells that follow its output stride (two per side, as 8 px cells in 16 px
        patches; DINOv2's 14 px: 7 px)."""
        return {"hog_cell_size": hog_cell_size_for(output_stride(encoder_config))}

    @property
    def target_dim(self) -> int:
        """Length of one patch's target vector (the main head's output; ``hog+pixel``: the HOG part)."""
        return self.hog_dim if self.target == "hog+pixel" else target_dim(self)

    @property
    def hog_dim(self) -> int:
        """Length of one patch's HOG target: ``C * nbins * (patch_size / cell_size)^2``."""
        return target_dim(self, "hog")
