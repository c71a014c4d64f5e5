"""SimMIM configuration: a ViT or Swin encoder (transformers' ViTConfig / SwinConfig) plus masking defaults."""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import AutoConfig, BeitConfig, PreTrainedConfig, SwinConfig, ViTConfig
from transformers.configuration_utils import SubConfigSpec

from ...backbones import as_backbone_config, backbone_type, check_backbone, encoder_sizes, output_stride
from ...configuration_utils import VIT_SIZES
from ...masking import SimMIMMaskGenerator
from ...modeling_utils import check_choice, check_normalization, check_vit_sizes

#: The encoders: hf_mim's ViT, transformers' Swin and BEiT classes, and ``auto`` (the transformers class of any
#: supported ``encoder_config``, wrapped as released: continued pretraining, :mod:`hf_mim.backbones`).
BACKBONES = ("vit", "swin", "beit", "auto")
#: The ``model_type`` s an ``auto`` encoder may have.
BACKBONE_TYPES = ("vit", "deit", "dinov2", "dinov2_with_registers", "beit", "swin")
#: The paper's ablation switches (Xie et al., Tables 1-5), with the allowed values.
MASK_STRATEGIES = ("random", "square", "blockwise")
HEADS = ("linear", "mlp")
LOSSES = ("l1", "l2", "smooth_l1")
TARGETS = ("pixel", "color_bins")
LOSS_ON = ("masked", "all")

#: microsoft/SimMIM's own ViT (models/vision_transformer.py, configs/vit_base__800ep): no absolute position
#: embedding, one relative position bias shared by all blocks, layer scale 0.1, q/v biases, LayerNorm eps 1e-6 --
#: exactly what transformers' BeitModel implements with these switches.
_SIMMIM_VIT = {"use_absolute_position_embeddings": False, "use_relative_position_bias": False,
               "use_shared_relative_position_bias": True, "layer_scale_init_value": 0.1, "use_mean_pooling": False,
               "layer_norm_eps": 1e-6}  # fmt: skip

# The paper's settings (ViT-B/16 at 224 px, Swin-B at 192 px with window 6) and tiny ones for tests.
SIMMIM_PRESETS: dict[str, dict[str, Any]] = {
    "vit-base": {
        "backbone": "vit",
        "encoder_config": {"image_size": 224, "patch_size": 16, "layer_norm_eps": 1e-6, "drop_path_rate": 0.1},
    },
    "swin-base": {
        "backbone": "swin",
        "encoder_config": {
            "image_size": 192,
            "patch_size": 4,
            "embed_dim": 128,
            "depths": [2, 2, 18, 2],
            "num_heads": [4, 8, 16, 32],
            "window_size": 6,
            "layer_norm_eps": 1e-5,
            "drop_path_rate": 0.0,
        },
    },
    "beit-base": {
        "backbone": "beit",
        "encoder_config": {**_SIMMIM_VIT, "image_size": 224, "patch_size": 16, "drop_path_rate": 0.1},
    },
    "beit-large": {
        "backbone": "beit",
        "encoder_config": {
            **_SIMMIM_VIT,
            "image_size": 224,
            "patch_size": 16,
            "drop_path_rate": 0.1,
            **{
                k: VIT_SIZES["large"][k]
                for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
            },
        },
    },  # fmt: skip
    "beit-test": {
        "backbone": "beit",
        "mask_patch_size": 16,
        "encoder_config": {**_SIMMIM_VIT, **VIT_SIZES["test"]},
    },
    "vit-demo": {"backbone": "vit", "encoder_config": {**VIT_SIZES["demo"], "layer_norm_eps": 1e-6}},
    "vit-test": {
        "backbone": "vit",
        "mask_patch_size": 16,
        "encoder_config": {**VIT_SIZES["test"], "layer_norm_eps": 1e-6},
    },
    "swin-test": {
        "backbone": "swin",
        "mask_patch_size": 16,
        "encoder_config": {
            "image_size": 32,
            "patch_size": 2,
            "embed_dim": 16,
            "depths": [1, 1, 2],
            "num_heads": [2, 2, 4],
            "window_size": 4,
            "drop_path_rate": 0.0,
        },
    },
}


def _check_encoder(backbone: str, encoder: PreTrainedConfig) -> None:
    """Sizes a transformers ViT / Swin config accepts but that break the model (division by zero, NaN); a wrapped
    class (``auto``) is the released one, checked by its own config."""
    if backbone == "auto":
        return
    if backbone in ("vit", "beit"):
        check_vit_sizes(encoder)
        return
    for key in ("image_size", "patch_size", "embed_dim", "window_size"):
        value = getattr(encoder, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`encoder_config.{key}` must be a positive integer, got {value!r}.")
    if not encoder.depths or any(d < 1 for d in encoder.depths) or len(encoder.num_heads) != len(encoder.depths):
        raise ValueError(f"`encoder_config.depths` ({encoder.depths}) and `num_heads` ({encoder.num_heads}) must be "
                         "positive, one per stage.")  # fmt: skip
    for stage, heads in enumerate(encoder.num_heads):
        width = encoder.embed_dim * 2**stage
        if heads < 1 or width % heads:
            raise ValueError(f"`encoder_config.num_heads[{stage}]` ({heads}) must be >= 1 and divide the stage width "
                             f"({width}).")  # fmt: skip
    if not encoder.layer_norm_eps > 0:
        raise ValueError(f"`encoder_config.layer_norm_eps` must be > 0, got {encoder.layer_norm_eps!r}.")


class SimMIMConfig(PreTrainedConfig):
    r"""Configuration of SimMIM (Xie et al., CVPR 2022).

    Args:
        backbone: ``"vit"`` (transformers' ViT, for interop with ``ViTForMaskedImageModeling``), ``"swin"``,
            ``"beit"`` (SimMIM's official ViT: transformers' ``BeitModel`` with a shared relative position bias,
            layer scale and no absolute position embedding; presets ``beit-base`` / ``beit-large``), or ``"auto"``
            (the transformers class of ``encoder_config`` -- ViT, DeiT, DINOv2 with or without registers, BEiT,
            Swin -- wrapped as released, ``SimMIMForMaskedImageModeling.from_backbone``); inferred from
            ``encoder_config`` when omitted.
        encoder_config: The encoder's hyper-parameters, a transformers ``ViTConfig`` / ``SwinConfig`` (or a dict
            of its arguments). ViT configs may also carry ``drop_path_rate`` (stochastic depth).
        encoder_stride: Output stride of the encoder, i.e. the head's ``PixelShuffle`` factor: ``patch_size``
            for ViT, ``patch_size * 2 ** (num_stages - 1)`` for Swin (16 for ViT/16, 32 for Swin-B). Derived when
            omitted; any other value is rejected because the reconstruction would not match the input.
        mask_patch_size: Side in pixels of the random masking cells (32 in the paper; ``mask_strategy="random"``).
        mask_ratio: Fraction of the image masked (0.6 in the paper): of the cells (``random``), the area of the
            square (``square``), or of the patches (``blockwise``).
        mask_strategy: The paper's masking ablation: ``"random"`` (cells of ``mask_patch_size``), ``"square"``
            (one random square of ``mask_ratio`` of the area) or ``"blockwise"`` (BEiT's blocks, at patch level).
        head: ``"linear"`` (1x1 convolution + PixelShuffle, the paper's) or ``"mlp"`` (1x1 convolution, GELU, 1x1
            convolution + PixelShuffle; hidden width = the encoder's).
        loss: ``"l1"`` (the paper's), ``"l2"`` or ``"smooth_l1"`` (torch's, beta 1.0), each summed over the counted
            pixels and channels and divided by (counted pixels + 1e-5) and by the channels.
        target_resolution: Side in pixels of the regression target (None: the input's); targets and predictions
            are resized to it (bilinear, antialiased), the mask with nearest neighbours (the paper: 12..192 px).
        target: ``"pixel"`` (regress normalised pixels) or ``"color_bins"`` (classify each channel's 8-bit value
            into ``num_color_bins`` bins with a cross-entropy; the input is de-normalised with ImageNet mean/std).
        num_color_bins: Bins per channel for ``target="color_bins"`` (8 or 256 in the paper; 2..256).
        loss_on: ``"masked"`` (prediction, the paper's) or ``"all"`` (reconstruction of every pixel: the mean over
            all pixels and channels).
        pooling: Classification pooling for ViT: ``"mean"`` of patch tokens (default) or ``"cls"``; Swin always
            averages its final tokens.
        use_fc_norm: Classification head of the papers' fine-tuning: the mean of the patch tokens *before* the
            final LayerNorm, then that LayerNorm (SlowFast's USE_MEAN_POOLING, MAE's global_pool fc_norm). Needs
            ``pooling="mean"``; the fine-tuning recipes turn it on.
            For ``beit`` it is BEiT's own ``use_mean_pooling`` (kept equal).
        initializer_range: Std of the truncated-normal initialisation (also of the mask token).
        image_mean, image_std: Per-channel statistics the inputs are normalised with (recorded from the image
            processor by the pretraining engine; None: ImageNet's for RGB); the colour-bin targets and pictures
            un-normalise with them.
    """

    model_type = "simmim"
    presets: ClassVar[dict[str, dict[str, Any]]] = SIMMIM_PRESETS
    backbone_types: ClassVar[tuple[str, ...]] = BACKBONE_TYPES
    sub_configs_defaults = {"encoder_config": SubConfigSpec(AutoConfig, model_type="vit")}

    backbone: str | None = None
    encoder_config: dict | PreTrainedConfig | None = None
    encoder_stride: int | None = None
    mask_patch_size: int = 32
    mask_ratio: float = 0.6
    mask_strategy: str = "random"
    head: str = "linear"
    loss: str = "l1"
    target_resolution: int | None = None
    target: str = "pixel"
    num_color_bins: int = 256
    loss_on: str = "masked"
    pooling: str = "mean"
    use_fc_norm: bool = False
    initializer_range: float = 0.02
    image_mean: list[float] | None = None
    image_std: list[float] | None = None

    def __post_init__(self, **kwargs):
        encoder = self.encoder_config
        if self.backbone is None:
            if isinstance(encoder, PreTrainedConfig):
                self.backbone = encoder.model_type
            elif isinstance(encoder, dict) and "model_type" in encoder:
                self.backbone = encoder["model_type"]
            else:
                self.backbone = "vit"
            if self.backbone not in BACKBONES and self.backbone in BACKBONE_TYPES:
                self.backbone = "auto"  # a class only hf_mim.backbones drives
        check_choice("backbone", self.backbone, BACKBONES)
        if self.backbone == "auto":
            if encoder is None:
                raise ValueError(f"`backbone='auto'` wraps the transformers class of `encoder_config`: give one of "
                                 f"{list(BACKBONE_TYPES)}.")  # fmt: skip
            encoder = as_backbone_config(encoder)
            check_backbone(encoder.model_type, BACKBONE_TYPES, "SimMIM", "encoder_config")
        if encoder is None:
            encoder = {}
        if isinstance(encoder, dict):
            encoder = {**encoder, "model_type": encoder.get("model_type", self.backbone)}
            if encoder["model_type"] != self.backbone:
                raise ValueError(
                    f"`encoder_config` is a {encoder['model_type']!r} config but `backbone` is {self.backbone!r}."
                )
            encoder_class = {"vit": ViTConfig, "swin": SwinConfig, "beit": BeitConfig}[self.backbone]
            encoder = encoder_class(**{k: v for k, v in encoder.items() if k != "model_type"})
        if encoder.model_type != self.backbone and self.backbone != "auto":
            raise ValueError(
                f"`encoder_config` is a {encoder.model_type!r} config but `backbone` is {self.backbone!r}."
            )
        self.encoder_config = encoder
        _check_encoder(self.backbone, encoder)
        if (
            isinstance(self.mask_patch_size, bool)
            or not isinstance(self.mask_patch_size, int)
            or self.mask_patch_size < 1
        ):
            raise ValueError(f"`mask_patch_size` must be a positive integer, got {self.mask_patch_size!r}.")
        stride = self.expected_encoder_stride
        if self.encoder_stride is None:
            self.encoder_stride = stride
            if self.backbone != "auto" or hasattr(encoder, "encoder_stride"):
                # keep transformers' own field consistent, for exports to its *ForMaskedImageModeling classes
                encoder.encoder_stride = stride
        elif self.encoder_stride != stride:
            raise ValueError(
                f"`encoder_stride` must be the encoder's output stride, {stride} for this {self.backbone} "
                f"(patch_size={encoder.patch_size}), got {self.encoder_stride}: otherwise the reconstruction has "
                "another size than the input."
            )
        image_size = self.image_size
        check_choice("mask_strategy", self.mask_strategy, MASK_STRATEGIES)
        check_choice("head", self.head, HEADS)
        check_choice("loss", self.loss, LOSSES)
        check_choice("target", self.target, TARGETS)
        check_choice("loss_on", self.loss_on, LOSS_ON)
        if (
            isinstance(self.num_color_bins, bool)
            or not isinstance(self.num_color_bins, int)
            or not 2 <= self.num_color_bins <= 256
        ):
            raise ValueError(f"`num_color_bins` must be an integer in [2, 256] (8 or 256 in the paper), got "
                             f"{self.num_color_bins!r}.")  # fmt: skip
        if self.target_resolution is not None and (
            isinstance(self.target_resolution, bool) or not isinstance(self.target_resolution, int)
            or not 1 <= self.target_resolution <= image_size
        ):  # fmt: skip
            raise ValueError(f"`target_resolution` must be None or an integer in [1, image_size={image_size}], got "
                             f"{self.target_resolution!r}.")  # fmt: skip
        if self.mask_strategy == "random" and (
            self.mask_patch_size % encoder.patch_size or image_size % self.mask_patch_size
        ):
            raise ValueError(
                f"`mask_patch_size` ({self.mask_patch_size}) must be a multiple of the patch size "
                f"({encoder.patch_size}) and divide image_size ({image_size})."
            )
        if image_size % self.encoder_stride:
            raise ValueError(f"image_size ({image_size}) must be divisible by encoder_stride ({self.encoder_stride}).")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"`mask_ratio` must be in (0, 1), got {self.mask_ratio!r}.")
        if self.mask_strategy == "random":  # refuses a mask that hides every cell (e.g. 32 px cells on 32 px images)
            SimMIMMaskGenerator(image_size, self.mask_patch_size, encoder.patch_size, self.mask_ratio)
        check_choice("pooling", self.pooling, ("mean", "cls"))
        if self.use_fc_norm and self.backbone == "swin":  # (a wrapped Swin may: its norm then the mean)
            raise ValueError("`use_fc_norm=True` is for the ViT backbones; Swin's head is its final norm, then the mean "
                             "(`pooling='mean'`).")  # fmt: skip
        if self.backbone == "beit" and self.use_fc_norm != bool(encoder.use_mean_pooling):
            # one switch: BEiT's own use_mean_pooling is exactly the official mean + fc_norm head
            encoder.use_mean_pooling = self.use_fc_norm = bool(self.use_fc_norm or encoder.use_mean_pooling)
        if self.use_fc_norm and self.pooling != "mean":
            raise ValueError(f"`use_fc_norm=True` pools the mean of the patch tokens: it needs `pooling='mean'`, got "
                             f"{self.pooling!r}.")  # fmt: skip
        if self.backbone == "beit" and encoder.use_mean_pooling and self.pooling != "mean":
            raise ValueError("`encoder_config.use_mean_pooling=True` (mean + fc_norm, the official fine-tuning head) "
                             f"needs `pooling='mean'`, got {self.pooling!r}.")  # fmt: skip
        if not self.has_cls_token and self.pooling == "cls":
            raise ValueError("`pooling='cls'` needs a [CLS] token; Swin has none, use 'mean'.")
        check_normalization(self, encoder.num_channels)
        super().__post_init__(**kwargs)

    @property
    def has_cls_token(self) -> bool:
        """The encoder's outputs start with a ``[CLS]`` token (not Swin's)."""
        if self.backbone == "auto":
            return not backbone_type(self.encoder_config.model_type).hierarchical
        return self.backbone != "swin"

    @classmethod
    def encoder_defaults(cls, encoder_config) -> dict[str, Any]:
        """For a wrapped encoder (``backbone="auto"``): masking cells of the multiple of its patch size nearest to the
        paper's 32 px that divides the image in at least 2 x 2 cells (DINOv2's 14 px patches at 224: 28 px)."""
        sizes = encoder_sizes(encoder_config)
        side, patch = sizes["image_size"], int(encoder_config.patch_size)
        cells = [m for m in range(patch, side + 1, patch) if side % m == 0 and side // m >= 2] or [patch]
        return {"backbone": "auto", "mask_patch_size": min(cells, key=lambda m: (abs(m - 32), m))}

    @property
    def expected_encoder_stride(self) -> int:
        encoder = self.encoder_config
        if self.backbone == "auto":
            return output_stride(encoder)
        if self.backbone in ("vit", "beit"):
            return encoder.patch_size
        return encoder.patch_size * 2 ** (len(encoder.depths) - 1)

    @property
    def image_size(self) -> int:
        size = self.encoder_config.image_size
        return size if isinstance(size, int) else size[0]

    @property
    def patch_size(self) -> int:
        return self.encoder_config.patch_size

    @property
    def hidden_size(self) -> int:
        """Width of the final feature map (the head's input)."""
        encoder = self.encoder_config
        if self.backbone == "auto":
            return encoder_sizes(encoder)["hidden_size"]
        if self.backbone in ("vit", "beit"):
            return encoder.hidden_size
        return int(encoder.embed_dim * 2 ** (len(encoder.depths) - 1))

    @classmethod
    def from_preset(cls, name: str, **kwargs: Any) -> SimMIMConfig:
        """``vit-base``, ``swin-base``, ``vit-test`` or ``swin-test``; ``encoder_config`` overrides merge in."""
        check_choice("preset", name, sorted(cls.presets))
        preset = dict(cls.presets[name])
        encoder_overrides = kwargs.pop("encoder_config", {}) or {}
        preset["encoder_config"] = {**preset["encoder_config"], **encoder_overrides}
        return cls(**{**preset, **kwargs})
