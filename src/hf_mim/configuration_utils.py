"""The ViT encoder fields shared by the ViT-based method configs (MaskFeat, HPM), and their optional wrapped
transformers encoder (continued pretraining, :mod:`hf_mim.backbones`)."""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .backbones import as_backbone_config, check_backbone, encoder_sizes
from .modeling_utils import check_choice, check_normalization, check_vit_sizes

__all__ = ["VIT_SIZES", "ViTEncoderConfig"]

#: Encoder sizes the method presets share: the usual ViT widths at 224 px, the main-job demo (a small ViT on 96 px
#: crops, minutes on 2 CPU cores) and the one for tests and smoke runs (32 px inputs, 16 patches of 8 px).
VIT_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 192, "num_hidden_layers": 12, "num_attention_heads": 3, "intermediate_size": 768},
    "small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "intermediate_size": 1536},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
    "demo": {
        "image_size": 96,
        "patch_size": 16,
        "hidden_size": 192,
        "num_hidden_layers": 6,
        "num_attention_heads": 3,
        "intermediate_size": 768,
    },
    "test": {
        "image_size": 32,
        "patch_size": 8,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    },
}


class ViTEncoderConfig(PreTrainedConfig):
    r"""ViT encoder hyper-parameters with transformers' ``ViTConfig`` meaning (``layer_norm_eps`` 1e-6 as the
    official ViT), checked at config time; subclasses add their method's fields and ``presets``.

    Args:
        image_size, patch_size, num_channels: Input geometry (``image_size`` divisible by ``patch_size``).
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act: Sizes.
        hidden_dropout_prob, attention_probs_dropout_prob: Dropout rates.
        qkv_bias: Bias in the query/key/value projections.
        layer_norm_eps: LayerNorm epsilon.
        drop_path_rate: Stochastic depth, rising linearly to this rate over the blocks.
        initializer_range: Std of the initialisation of weights and tokens.
        image_mean, image_std: Per-channel statistics the inputs are normalised with (recorded from the image
            processor by the pretraining engine; None: ImageNet's for RGB). Everything that un-normalises (colour
            bins, pictures) uses them.
        encoder_config: None (the method's own ViT, sized by the fields above), or the config of a transformers
            encoder the model wraps instead (one of ``backbone_types``; ``from_backbone``): the encoder is then that
            class, and the ViT fields describe it (``patch_size`` is its output stride, ``hidden_size`` its output
            width; ``drop_path_rate`` and the dropouts are the wrapped config's own).
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: ``model_type`` s of the transformers encoders the method can wrap (``from_backbone``).
    backbone_types: ClassVar[tuple[str, ...]] = ()
    sub_configs_defaults = {"encoder_config": SubConfigSpec(AutoConfig, model_type="vit", optional=True)}

    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    drop_path_rate: float = 0.0
    initializer_range: float = 0.02
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
    encoder_config: dict | PreTrainedConfig | None = None

    def __post_init__(self, **kwargs):
        self.use_encoder_config()
        check_vit_sizes(self)
        check_normalization(self, self.num_channels)
        super().__post_init__(**kwargs)

    def use_encoder_config(self) -> None:
        """With a wrapped encoder: checks that the method supports its class and sets the ViT fields from it (the
        wrapped config is the truth; subclasses call this before their own checks)."""
        if self.encoder_config is None:
            return
        self.encoder_config = as_backbone_config(self.encoder_config)
        check_backbone(self.encoder_config.model_type, self.backbone_types, type(self).__name__.removesuffix("Config"),
                       "encoder_config")  # fmt: skip
        for key, value in encoder_sizes(self.encoder_config).items():
            setattr(self, key, value)

    @classmethod
    def encoder_defaults(cls, encoder_config: PreTrainedConfig) -> dict[str, Any]:
        """The method's own settings for a wrapped encoder (explicit arguments win); none by default."""
        return {}

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def from_preset(cls, name: str, **kwargs: Any):
        """A named size from ``cls.presets``, with overrides."""
        check_choice("preset", name, sorted(cls.presets))
        return cls(**{**cls.presets[name], **kwargs})
