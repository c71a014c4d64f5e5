"""HPM configuration (MAE encoder / decoder plus the hard-patches-mining options)."""

from __future__ import annotations

from typing import Any, ClassVar

from ...backbones import output_stride
from ...configuration_utils import VIT_SIZES, ViTEncoderConfig
from ...modeling_utils import check_choice
from ...targets import check_target_config, hog_cell_size_for, target_dim


def _decoder(hidden: int, layers: int, heads: int, intermediate: int) -> dict[str, int]:
    return {
        "decoder_hidden_size": hidden,
        "decoder_num_hidden_layers": layers,
        "decoder_num_attention_heads": heads,
        "decoder_intermediate_size": intermediate,
    }


# ViT encoders with MAE's 8 x 512 decoder (the defaults), plus the demo and test sizes with small decoders
HPM_PRESETS: dict[str, dict[str, Any]] = {
    **{name: VIT_SIZES[name] for name in ("small", "base", "large")},
    "demo": {**VIT_SIZES["demo"], **_decoder(128, 2, 4, 512)},
    "test": {**VIT_SIZES["test"], **_decoder(32, 1, 2, 64)},
}


class HPMConfig(ViTEncoderConfig):
    r"""Configuration of HPM (Wang et al., "Hard Patches Mining for Masked Image Modeling", CVPR 2023).

    With ``hard_patches_mining=False`` the model is plain MAE (random masking, no loss predictor, no teacher).

    Args:
        image_size, patch_size, num_channels: Input geometry.
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act, qkv_bias,
        hidden_dropout_prob, attention_probs_dropout_prob, layer_norm_eps, drop_path_rate: ViT encoder
            (transformers' ``ViTConfig`` meaning; fixed 2-D sin-cos position embeddings).
        decoder_hidden_size, decoder_num_hidden_layers, decoder_num_attention_heads, decoder_intermediate_size:
            The pixel decoder; the loss predictor is a second branch of the same size.
        mask_ratio: Fraction of masked patches; ``L - int(L * (1 - mask_ratio))`` per image (MAE's convention).
        norm_pix_loss: Regress per-patch normalised pixels.
        target: ``"pixel"`` (default), ``"hog"`` (per-patch HOG features, hf_mim's ``HOGFeatures``), ``"hog+pixel"``
            (both, concatenated; ``hog_loss_weight`` / ``pixel_loss_weight``) or ``"features"`` (a frozen teacher's
            patch tokens); see :class:`hf_mim.targets.PatchTargets`. The loss predictor mines on any of them.
        hog_nbins, hog_cell_size: HOG parameters for the HOG targets.
        hog_loss_weight, pixel_loss_weight: Weights of the two terms of ``hog+pixel``.
        teacher_name_or_path: ``target="features"``: a transformers vision model (local folder or Hub id; ViT,
            DINOv2, CLIP, BEiT, ...) whose patch tokens are the targets; only training needs it.
        teacher_hidden_size: The teacher's width (read from its config when omitted; recorded so that loading the
            student never needs the teacher).
        feature_norm: Layer-normalise each teacher token (no affine) before regressing it.
        feature_loss: ``"l2"`` (mean squared error), ``"smooth_l1"`` (beta 1.0) or ``"cosine"`` (1 - cosine).
        hard_patches_mining: Loss predictor + teacher-driven easy-to-hard masks (HPM) or plain MAE.
        loss_predictor_loss: ``"relative"`` (pairwise BCE, default) or ``"mse"`` (regress standardised losses).
        teacher_momentum_start, teacher_momentum_end, teacher_momentum_warmup_epochs: EMA schedule of the teacher.
        hard_fraction_max: Largest fraction of the masked patches chosen as the predicted hardest.
        pooling: Classification pooling, ``"mean"`` of patch tokens (default) or ``"cls"``.
        use_fc_norm: Classification head of the papers' fine-tuning: the mean of the patch tokens *before* the
            final LayerNorm, then that LayerNorm (SlowFast's USE_MEAN_POOLING, MAE's global_pool fc_norm). Needs
            ``pooling="mean"``; the fine-tuning recipes turn it on.
        initializer_range: Std of the normal initialisation of tokens.
        encoder_config: A transformers ViT, DeiT, DINOv2 (with or without registers) or ViTMAE config to wrap instead
            of MAE's own ViT (``HPMForPreTraining.from_backbone``): it encodes the visible patches only, with its own
            (learned or fixed) positions; the decoder keeps MAE's sin-cos ones.
    """

    model_type = "hpm"
    presets: ClassVar[dict[str, dict[str, Any]]] = HPM_PRESETS
    backbone_types: ClassVar[tuple[str, ...]] = ("vit", "deit", "dinov2", "dinov2_with_registers", "vit_mae")

    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_num_attention_heads: int = 16
    decoder_intermediate_size: int = 2048
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True
    target: str = "pixel"
    hog_nbins: int = 9
    hog_cell_size: int = 8
    hard_patches_mining: bool = True
    loss_predictor_loss: str = "relative"
    teacher_momentum_start: float = 0.999
    teacher_momentum_end: float = 0.9999
    teacher_momentum_warmup_epochs: float = 100
    hard_fraction_max: float = 0.5
    pooling: str = "mean"
    use_fc_norm: bool = False
    hog_loss_weight: float = 1.0
    pixel_loss_weight: float = 1.0
    teacher_name_or_path: str | None = None
    teacher_hidden_size: int | None = None
    feature_norm: bool = True
    feature_loss: str = "l2"

    def __post_init__(self, **kwargs):
        self.use_encoder_config()
        check_target_config(self)
        check_choice("loss_predictor_loss", self.loss_predictor_loss, ("relative", "mse"))
        check_choice("pooling", self.pooling, ("mean", "cls"))
        if self.use_fc_norm and self.pooling != "mean":
            raise ValueError(f"`use_fc_norm=True` pools the mean of the patch tokens: it needs `pooling='mean'`, got "
                             f"{self.pooling!r}.")  # fmt: skip
        if self.decoder_hidden_size % self.decoder_num_attention_heads:
            raise ValueError(
                f"`decoder_hidden_size` ({self.decoder_hidden_size}) must be divisible by "
                f"`decoder_num_attention_heads` ({self.decoder_num_attention_heads})."
            )
        if self.hidden_size % 4 or self.decoder_hidden_size % 4:
            raise ValueError(
                "`hidden_size` and `decoder_hidden_size` must be divisible by 4 (2-D sin-cos embeddings)."
            )
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"`mask_ratio` must be in (0, 1), got {self.mask_ratio!r}.")
        if self.patch_size > 0 and self.image_size > 0 and self.num_masked < 1:
            raise ValueError(f"`mask_ratio` {self.mask_ratio} masks no patch of the {self.num_patches}: the loss "
                             "would be exactly 0; raise it.")  # fmt: skip
        if not 0.0 <= self.hard_fraction_max <= 1.0:
            raise ValueError(f"`hard_fraction_max` must be in [0, 1], got {self.hard_fraction_max!r}.")
        for name in ("teacher_momentum_start", "teacher_momentum_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {getattr(self, name)!r}.")
        super().__post_init__(**kwargs)

    @classmethod
    def encoder_defaults(cls, encoder_config) -> dict[str, Any]:
        """For a wrapped encoder: HOG cells (``target="hog"``) that follow its patch size (two per side)."""
        return {"hog_cell_size": hog_cell_size_for(output_stride(encoder_config))}

    @property
    def num_masked(self) -> int:
        """Masked patches per image at the config's size: ``L - int(L * (1 - mask_ratio))``."""
        return self.num_patches - int(self.num_patches * (1 - self.mask_ratio))

    @property
    def target_dim(self) -> int:
        """Length of one patch's target vector (:func:`hf_mim.targets.target_dim`)."""
        return target_dim(self)
