"""SimMIM (Xie et al., "SimMIM: A Simple Framework for Masked Image Modeling", CVPR 2022), ViT or Swin.

The encoder sees every patch, masked ones replaced by a learnable mask token right after patch embedding; a
one-layer head (1x1 conv + PixelShuffle) predicts raw pixels; the loss is L1 on the masked pixels only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from transformers import BeitModel, PreTrainedModel, SwinModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.models.vit.modeling_vit import ViTEmbeddings
from transformers.utils import ModelOutput

from ...backbones import BackboneEncoder, BackboneMixin
from ...losses import color_bins, simmim_loss, upsample_patch_mask
from ...modeling_utils import (
    ClassifierMixin,
    MaskedViTEncoder,
    ResolutionMixin,
    check_bool_masked_pos,
    fc_norm_pool,
    kept_swin_windows,
    normalization,
    pool_tokens,
)
from .configuration_simmim import SimMIMConfig

__all__ = [
    "SimMIMPreTrainedModel",
    "SimMIMModel",
    "SimMIMForMaskedImageModeling",
    "SimMIMForImageClassification",
    "SimMIMForMaskedImageModelingOutput",
]


@dataclass
class SimMIMForMaskedImageModelingOutput(ModelOutput):
    """Outputs of :class:`SimMIMForMaskedImageModeling`.

    Attributes:
        loss: The configured loss (L1 on masked pixels by default; ``None`` without a mask).
        reconstruction: ``[B, C, H, W]`` predicted (normalised) pixels (colour bins: the likeliest bin's centre).
        mask: ``[B, L]`` bool, the patch mask used.
        hidden_states: Encoder hidden states when asked.
    """

    loss: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class SimMIMPreTrainedModel(ResolutionMixin, BackboneMixin, PreTrainedModel):
    config_class = SimMIMConfig
    config: SimMIMConfig
    base_model_prefix = "simmim"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["ViTEmbeddings", "ViTBlock", "SwinStage", "BeitLayer"]

    def set_attn_implementation(self, attn_implementation) -> None:
        """transformers' ``set_attn_implementation``, which also reaches SimMIM's own ViT encoder: that encoder is a
        plain module reading ``config.encoder_config``, which transformers would set "in the dark" with a warning of
        undefined behaviour. The encoder's config gets the requested kernel first and the validated one after."""
        encoder_config = self.config.encoder_config
        previous = encoder_config._attn_implementation
        if isinstance(attn_implementation, str):
            encoder_config._attn_implementation = attn_implementation
        try:
            super().set_attn_implementation(attn_implementation)
        except BaseException:
            encoder_config._attn_implementation = previous
            raise
        if self.config.backbone == "vit":
            encoder_config._attn_implementation = self.config._attn_implementation

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear | nn.Conv2d):
            init.trunc_normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, ViTEmbeddings):
            init.trunc_normal_(module.position_embeddings, mean=0.0, std=std)
            init.trunc_normal_(module.cls_token, mean=0.0, std=std)
            if module.mask_token is not None:
                init.trunc_normal_(module.mask_token, mean=0.0, std=std)


class SimMIMModel(SimMIMPreTrainedModel):
    """The bare SimMIM encoder: our ViT (transformers' ViT blocks) or transformers' own ``SwinModel``."""

    def __init__(self, config: SimMIMConfig, use_mask_token: bool = True, add_pooling_layer: bool = True):
        super().__init__(config)
        if config.encoder_config._attn_implementation is None:
            # PreTrainedModel sets the implementation on the top config only; our ViT blocks read the encoder's
            # config and would silently fall back to eager attention
            config.encoder_config._attn_implementation = config._attn_implementation
        if config.backbone == "vit":
            self.encoder = MaskedViTEncoder(config.encoder_config, use_mask_token=use_mask_token)
        elif config.backbone == "auto":  # the released class of a backbone (continued pretraining)
            self.encoder = BackboneEncoder(config.encoder_config, use_mask_token,
                                           initializer_range=config.initializer_range)  # fmt: skip
        elif config.backbone == "beit":
            # BeitModel takes its mask token from its config: a private copy keeps the saved config unchanged
            encoder_config = copy.deepcopy(config.encoder_config)
            encoder_config.use_mask_token = use_mask_token
            # with use_mean_pooling, BEiT's pooler is the official fc_norm (LayerNorm of the mean patch token)
            pooler = add_pooling_layer and bool(encoder_config.use_mean_pooling)
            self.encoder = BeitModel(encoder_config, add_pooling_layer=pooler)
            if use_mask_token:  # initialised by the nested model already (zeros); SimMIM draws it like Swin's
                nn.init.trunc_normal_(self.encoder.embeddings.mask_token, std=config.initializer_range)
        else:
            self.encoder = SwinModel(config.encoder_config, add_pooling_layer=False, use_mask_token=use_mask_token)
            if use_mask_token:
                # the nested SwinModel has initialised itself already (its mask token with zeros, and it will not be
                # visited again); SimMIM draws it from a truncated normal
                nn.init.trunc_normal_(self.encoder.embeddings.mask_token, std=config.initializer_range)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.embeddings.patch_embeddings

    def feature_map(self, last_hidden_state: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Encoder tokens -> ``[B, D, H / stride, W / stride]`` (``[CLS]`` dropped where there is one)."""
        stride = self.config.encoder_stride
        tokens = last_hidden_state[:, 1:] if self.config.has_cls_token else last_hidden_state
        batch, length, dim = tokens.shape
        return tokens.transpose(1, 2).reshape(batch, dim, height // stride, width // stride)

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        """Encodes ``pixel_values [B, C, H, W]`` (H, W multiples of ``encoder_stride``).

        Returns:
            ``last_hidden_state`` (ViT: ``[B, 1 + L, D]``; Swin: ``[B, L / 4^(stages-1), D_final]``),
            ``pooler_output [B, D]``, ``hidden_states``.
        """
        height, width = pixel_values.shape[-2:]
        stride = self.config.encoder_stride
        if height % stride or width % stride:
            raise ValueError(
                f"`pixel_values` ({height}x{width}) must be divisible by encoder_stride={stride} so that the "
                "reconstruction matches the input."
            )
        hidden = bool(output_hidden_states or self.config.output_hidden_states)
        if self.config.backbone in ("vit", "auto"):
            fc_norm, cls = self.config.use_fc_norm, self.config.has_cls_token
            sequence, hidden_states = self.encoder(
                pixel_values, bool_masked_pos, interpolate_pos_encoding, hidden or fc_norm
            )
            if fc_norm:  # the last hidden state is the final block's output, before the LayerNorm
                pooled = fc_norm_pool(hidden_states[-1], self.encoder.layernorm, has_cls_token=cls)
                hidden_states = hidden_states if hidden else None
            else:
                pooled = pool_tokens(sequence, self.config.pooling, has_cls_token=cls)
        elif self.config.backbone == "beit":
            patch = self.config.patch_size
            if bool_masked_pos is not None:
                check_bool_masked_pos(bool_masked_pos, pixel_values.shape[0], (height // patch) * (width // patch))
            size = self.config.image_size
            weight = self.encoder.embeddings.patch_embeddings.projection.weight
            out = self.encoder(
                pixel_values.to(weight.dtype),
                bool_masked_pos=bool_masked_pos,
                interpolate_pos_encoding=bool(interpolate_pos_encoding) or (height, width) != (size, size),
                output_hidden_states=hidden,
            )
            sequence, hidden_states = out.last_hidden_state, out.hidden_states
            if self.encoder.pooler is not None:
                pooled = out.pooler_output
            else:
                pooled = pool_tokens(sequence, self.config.pooling)
        else:
            if bool_masked_pos is not None:
                patch = self.config.patch_size
                check_bool_masked_pos(bool_masked_pos, pixel_values.shape[0], (height // patch) * (width // patch))
            size = self.config.image_size
            encoder = self.config.encoder_config
            smallest = self.config.encoder_stride * encoder.window_size
            if min(height, width) < smallest:
                raise ValueError(
                    f"`pixel_values` ({height}x{width}) are too small for this Swin: every stage needs at least "
                    f"window_size={encoder.window_size} tokens per side, i.e. inputs of at least {smallest}x{smallest} "
                    f"(encoder_stride {self.config.encoder_stride} x window_size)."
                )
            weight = self.encoder.embeddings.patch_embeddings.projection.weight
            with kept_swin_windows(self.encoder):
                out = self.encoder(
                    pixel_values.to(weight.dtype),
                    bool_masked_pos=bool_masked_pos,
                    interpolate_pos_encoding=bool(interpolate_pos_encoding) or (height, width) != (size, size),
                    output_hidden_states=hidden,
                )
            sequence, hidden_states = out.last_hidden_state, out.hidden_states
            pooled = pool_tokens(sequence, "mean", has_cls_token=False)
        out = BaseModelOutputWithPooling(last_hidden_state=sequence, pooler_output=pooled, hidden_states=hidden_states)
        return out if return_dict is not False else out.to_tuple()


class SimMIMForMaskedImageModeling(SimMIMPreTrainedModel):
    """SimMIM pretraining: encoder with mask token + ``Conv2d(D, stride^2 * C, 1)`` + ``PixelShuffle(stride)``.

    The paper's ablations are config switches (:class:`SimMIMConfig`): ``head`` (linear / 2-layer MLP), ``loss``
    (L1 / L2 / smooth L1), ``target_resolution``, ``target`` (pixels / colour bins), ``loss_on`` (masked / all) and
    ``mask_strategy`` (in the image processor).
    """

    def __init__(self, config: SimMIMConfig):
        super().__init__(config)
        self.simmim = SimMIMModel(config, add_pooling_layer=False)
        num_channels = config.encoder_config.num_channels
        # colour-bin classification predicts num_color_bins logits per channel and pixel
        outputs = num_channels * (config.num_color_bins if config.target == "color_bins" else 1)
        stride = config.encoder_stride
        if config.head == "mlp":
            layers = [nn.Conv2d(config.hidden_size, config.hidden_size, kernel_size=1), nn.GELU(),
                      nn.Conv2d(config.hidden_size, stride**2 * outputs, kernel_size=1)]  # fmt: skip
        else:
            layers = [nn.Conv2d(config.hidden_size, stride**2 * outputs, kernel_size=1)]
        self.decoder = nn.Sequential(*layers, nn.PixelShuffle(stride))
        self.post_init()

    def forward_encoder(self, pixel_values, bool_masked_pos, interpolate_pos_encoding, hidden: bool):
        """``[B, C, H, W]`` + mask -> feature map ``[B, D, H / stride, W / stride]`` and hidden states."""
        out = self.simmim(pixel_values, bool_masked_pos, interpolate_pos_encoding, output_hidden_states=hidden)
        feature_map = self.simmim.feature_map(out.last_hidden_state, *pixel_values.shape[-2:])
        return feature_map, out.hidden_states

    def forward_decoder(self, feature_map: torch.Tensor) -> torch.Tensor:
        """``[B, D, h, w]`` -> ``[B, C, h * stride, w * stride]`` pixels (``[B, C * bins, ...]`` colour-bin logits)."""
        return self.decoder(feature_map)

    def forward_loss(self, pixel_values: torch.Tensor, prediction: torch.Tensor, mask: torch.Tensor):
        """The configured loss on the masked (or all) pixels; see :func:`hf_mim.losses.simmim_loss`."""
        return simmim_loss(pixel_values, prediction, mask, self.config.patch_size, loss=self.config.loss,
                           target=self.config.target, num_color_bins=self.config.num_color_bins,
                           target_resolution=self.config.target_resolution, loss_on=self.config.loss_on,
                           image_mean=self.normalization[0], image_std=self.normalization[1])  # fmt: skip

    @torch.no_grad()
    def mean_prediction(self, pixel_values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The trivial baseline in the head's output space: the mean target over the masked pixels of the batch,
        per channel, everywhere (colour bins: the log of each channel's bin frequencies over the masked pixels).

        Args:
            pixel_values: ``[B, C, H, W]`` normalised images.
            mask: ``[B, L]`` bool over the patch grid.

        Returns:
            ``[B, C, H, W]`` (colour bins: ``[B, C * bins, H, W]``), for :meth:`forward_loss`.
        """
        batch, channels, height, width = pixel_values.shape
        patch = self.config.patch_size
        pixel_mask = upsample_patch_mask(mask, (height // patch, width // patch), patch)[:, 0]  # [B, H, W]
        per_channel = pixel_values.float().permute(1, 0, 2, 3)[:, pixel_mask]  # [C, masked pixels]
        if self.config.target != "color_bins":
            return per_channel.mean(1).view(1, channels, 1, 1).expand(batch, channels, height, width)
        bins = self.config.num_color_bins
        classes = color_bins(per_channel[None, :, :, None], bins, *self.normalization)[0, :, :, 0]  # [C, N]
        counts = torch.stack([torch.bincount(row, minlength=bins) for row in classes]).float()  # [C, bins]
        logits = (counts / counts.sum(1, keepdim=True)).clamp(min=1e-12).log()
        return logits.reshape(1, channels * bins, 1, 1).expand(batch, channels * bins, height, width)

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The per-channel ``(mean, std)`` of the inputs (the config's, recorded from the processor)."""
        return normalization(self.config)

    def reconstruction(self, prediction: torch.Tensor) -> torch.Tensor:
        """Normalised pixels ``[B, C, H, W]`` from the head's output (colour bins: the centre of the likeliest)."""
        if self.config.target != "color_bins":
            return prediction
        bins = self.config.num_color_bins
        batch, _, height, width = prediction.shape
        index = prediction.reshape(batch, -1, bins, height, width).argmax(2)  # [B, C, H, W]
        values = (index.float() + 0.5) / bins  # [0, 1]
        mean = prediction.new_tensor(self.normalization[0]).view(1, -1, 1, 1)
        std = prediction.new_tensor(self.normalization[1]).view(1, -1, 1, 1)
        return (values - mean) / std

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SimMIMForMaskedImageModelingOutput | tuple:
        """Reconstructs ``pixel_values [B, C, H, W]``; the loss needs ``bool_masked_pos [B, L]`` (patch grid).

        Works for input sizes other than the config's (ViT position embeddings are interpolated) and for any
        ``patch_size`` / ``encoder_stride`` pair of a valid config.
        """
        feature_map, hidden_states = self.forward_encoder(
            pixel_values, bool_masked_pos, interpolate_pos_encoding, bool(output_hidden_states)
        )
        prediction = self.forward_decoder(feature_map)  # [B, C (x bins), H, W]
        loss = None
        if bool_masked_pos is not None:
            loss = self.forward_loss(pixel_values, prediction, bool_masked_pos)
        reconstruction = self.reconstruction(prediction)
        out = SimMIMForMaskedImageModelingOutput(
            loss=loss, reconstruction=reconstruction, mask=bool_masked_pos, hidden_states=hidden_states
        )
        return out if return_dict is not False else out.to_tuple()

    @classmethod
    def from_transformers(cls, model: PreTrainedModel, **config_kwargs) -> SimMIMForMaskedImageModeling:
        """Converts transformers' ``ViTForMaskedImageModeling`` / ``SwinForMaskedImageModeling`` (for example one
        loaded from a ``microsoft/swin-*-simmim-*`` checkpoint) into an hf_mim model with identical weights."""
        from .convert_simmim import simmim_from_transformers

        return simmim_from_transformers(cls, model, **config_kwargs)


class SimMIMForImageClassification(ClassifierMixin, SimMIMPreTrainedModel):
    """SimMIM encoder + linear classifier (mean-pooled tokens, or ``[CLS]`` for ViT with ``pooling="cls"``).

    ``from_pretrained`` on a pretraining checkpoint loads the encoder and initialises only the classifier.
    """

    def __init__(self, config: SimMIMConfig):
        super().__init__(config)
        self.simmim = SimMIMModel(config, use_mask_token=False)
        self.build_classifier(config.hidden_size)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput | tuple:
        """Classifies ``pixel_values [B, C, H, W]``; ``labels [B]`` gives a cross-entropy ``loss``."""
        outputs = self.simmim(
            pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, output_hidden_states=output_hidden_states
        )
        return self.classify(outputs, labels, return_dict)
