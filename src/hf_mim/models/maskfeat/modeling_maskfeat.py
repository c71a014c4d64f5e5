"""MaskFeat (Wei et al., "Masked Feature Prediction for Self-Supervised Visual Pre-Training", CVPR 2022).

A ViT whose masked patch embeddings are replaced by a learnable ``[MASK]`` token regresses, with one linear
head, the HOG features of the masked patches (L2 loss on masked patches only). The targets and their loss are
:class:`hf_mim.targets.PatchTargets`' (shared with HPM); ``target="hog+pixel"`` keeps the paper's second linear
head for the pixels, whose predictions are joined to the HOG head's and scored by PatchTargets' one rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.models.vit.modeling_vit import ViTEmbeddings
from transformers.utils import ModelOutput

from ...backbones import BackboneEncoder, BackboneMixin
from ...losses import masked_mean
from ...modeling_utils import (
    ClassifierMixin,
    MaskedViTEncoder,
    ResolutionMixin,
    check_bool_masked_pos,
    fc_norm_pool,
    pool_tokens,
)
from ...targets import HOGFeatures, PatchTargets
from .configuration_maskfeat import MaskFeatConfig

__all__ = [
    "MaskFeatPreTrainedModel",
    "MaskFeatModel",
    "MaskFeatForPreTraining",
    "MaskFeatForImageClassification",
    "MaskFeatForPreTrainingOutput",
]


@dataclass
class MaskFeatForPreTrainingOutput(ModelOutput):
    """Outputs of :class:`MaskFeatForPreTraining`.

    Attributes:
        loss: Total loss (``target="hog+pixel"``: ``hog_loss_weight`` x HOG term + ``pixel_loss_weight`` x pixel
            term, :meth:`hf_mim.targets.PatchTargets.per_patch_loss`).
        logits: ``[B, L, target_dim]`` predictions of the main head for all patches (HOG by default).
        hog_targets: ``[B, L, target_dim]`` the main head's targets (HOG by default; pixels or teacher features
            with ``target="pixel"`` / ``"features"``).
        mask: ``[B, L]`` bool, the masked patches the loss was computed on.
        hog_loss: The main head's term, unweighted (the whole loss unless multi-task).
        pixel_logits: ``[B, L, patch^2 * C]`` pixel predictions (multi-task only).
        pixel_targets: ``[B, L, patch^2 * C]`` pixel targets (multi-task only).
        pixel_loss: The pixel term, unweighted (multi-task only).
        hidden_states: Per-block hidden states when asked.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hog_targets: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    hog_loss: torch.Tensor | None = None
    pixel_logits: torch.Tensor | None = None
    pixel_targets: torch.Tensor | None = None
    pixel_loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class MaskFeatPreTrainedModel(ResolutionMixin, BackboneMixin, PreTrainedModel):
    config_class = MaskFeatConfig
    config: MaskFeatConfig
    base_model_prefix = "maskfeat"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["ViTEmbeddings", "ViTBlock"]

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


class MaskFeatModel(MaskFeatPreTrainedModel):
    """The bare MaskFeat ViT encoder, for features and downstream use.

    ``pooler_output`` is the mean of the patch tokens (or ``[CLS]``, per ``config.pooling``).
    """

    def __init__(self, config: MaskFeatConfig, use_mask_token: bool = True):
        super().__init__(config)
        if config.encoder_config is None:
            self.encoder = MaskedViTEncoder(config, use_mask_token=use_mask_token)
        else:  # the released class of a backbone (continued pretraining, from_backbone)
            self.encoder = BackboneEncoder(config.encoder_config, use_mask_token, config._attn_implementation,
                                           config.initializer_range)  # fmt: skip
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.embeddings.patch_embeddings

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        """Encodes ``pixel_values [B, C, H, W]``; ``bool_masked_pos [B, L]`` optionally masks patches.

        Returns:
            ``last_hidden_state [B, 1 + L, D]`` (``[CLS]`` first; a wrapped Swin: its ``L`` output tokens),
            ``pooler_output [B, D]``, ``hidden_states``.
        """
        output_hidden_states = output_hidden_states or self.config.output_hidden_states
        fc_norm = self.config.use_fc_norm
        sequence, hidden_states = self.encoder(
            pixel_values, bool_masked_pos, interpolate_pos_encoding, output_hidden_states=bool(output_hidden_states) or fc_norm
        )  # fmt: skip
        cls = self.encoder.has_cls_token
        if fc_norm:  # the last hidden state is the final block's output, before the LayerNorm
            pooled = fc_norm_pool(hidden_states[-1], self.encoder.layernorm, has_cls_token=cls)
            hidden_states = hidden_states if output_hidden_states else None
        else:
            pooled = pool_tokens(sequence, self.config.pooling, has_cls_token=cls)
        out = BaseModelOutputWithPooling(last_hidden_state=sequence, pooler_output=pooled, hidden_states=hidden_states)
        return out if return_dict is not False else out.to_tuple()


class MaskFeatForPreTraining(MaskFeatPreTrainedModel):
    """MaskFeat pretraining: ViT with ``[MASK]`` token + linear head regressing HOG features of masked patches.

    When ``hog_targets`` is not given, they are computed on the model's device, without gradients, from the same
    normalised ``pixel_values`` the encoder sees.
    """

    def __init__(self, config: MaskFeatConfig):
        super().__init__(config)
        self.maskfeat = MaskFeatModel(config)
        # targets, their layout and their loss; hog+pixel keeps the paper's two heads, one per part of the layout
        self.targets = PatchTargets(config)
        self.head = nn.Linear(config.hidden_size, config.target_dim)
        self.pixel_head = (
            nn.Linear(config.hidden_size, config.patch_size**2 * config.num_channels)
            if config.target == "hog+pixel"
            else None
        )
        self.post_init()

    def forward_encoder(
        self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor, interpolate_pos_encoding, hidden: bool
    ) -> tuple[torch.Tensor, tuple | None]:
        """``[B, C, H, W]`` + mask ``[B, L]`` -> normalised tokens ``[B, 1 + L, D]``."""
        return self.maskfeat.encoder(pixel_values, bool_masked_pos, interpolate_pos_encoding, hidden)

    def forward_decoder(self, sequence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Linear heads on the patch tokens: HOG ``[B, L, hog_dim]`` (and pixels ``[B, L, p^2 C]``)."""
        patches = sequence[:, 1:] if self.maskfeat.encoder.has_cls_token else sequence  # [B, L, D], drop [CLS]
        pixels = self.pixel_head(patches) if self.pixel_head is not None else None
        return self.head(patches), pixels

    @property
    def hog(self) -> HOGFeatures | None:
        return self.targets.hog

    @torch.no_grad()
    def forward_targets(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Targets ``[B, L, dim]`` of the normalised input, in float32, in :class:`~hf_mim.targets.PatchTargets`'
        layout (HOG by default; ``hog+pixel``: ``[HOG | pixels]``)."""
        return self.targets(pixel_values)

    def forward_loss(self, predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The target's per-patch loss (mean squared error for HOG and pixels; ``hog+pixel``: their weighted sum)
        averaged over masked patches; 0 when nothing is masked. ``predictions`` and ``targets`` are ``[B, L, dim]``
        in PatchTargets' layout."""
        return masked_mean(self.targets.per_patch_loss(predictions, targets), mask)

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        hog_targets: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MaskFeatForPreTrainingOutput | tuple:
        """Pretraining step.

        Args:
            pixel_values: Normalised images ``[B, C, H, W]``.
            bool_masked_pos: ``[B, L]`` torch.bool, True = masked (required).
            hog_targets: Optional precomputed targets of the main head ``[B, L, target_dim]`` (e.g. HOG from the
                image processor); the pixel part of ``hog+pixel`` is always computed here.
            interpolate_pos_encoding: See :class:`~hf_mim.modeling_utils.MaskedViTEncoder`.
            output_hidden_states: Return per-block hidden states.
            return_dict: Return a ``ModelOutput`` (default) or a tuple.

        Returns:
            :class:`MaskFeatForPreTrainingOutput`.
        """
        if bool_masked_pos is None:
            raise ValueError(
                "`bool_masked_pos` is required for MaskFeat pretraining: a [batch_size, num_patches] bool mask, "
                "e.g. from MaskFeatImageProcessor."
            )
        batch = pixel_values.shape[0]
        grid = (pixel_values.shape[-2] // self.config.patch_size) * (pixel_values.shape[-1] // self.config.patch_size)
        mask = check_bool_masked_pos(bool_masked_pos, batch, grid)
        sequence, hidden_states = self.forward_encoder(
            pixel_values,
            mask,
            interpolate_pos_encoding,
            bool(output_hidden_states or self.config.output_hidden_states),
        )
        logits, pixel_logits = self.forward_decoder(sequence)
        heads = (logits,) if pixel_logits is None else (logits, pixel_logits)  # one per part of the target layout

        if hog_targets is None:
            targets = self.forward_targets(pixel_values)
            hog_targets = self.targets.split(targets)[0]
        elif hog_targets.shape != logits.shape:
            raise ValueError(f"`hog_targets` must have shape {tuple(logits.shape)}, got {tuple(hog_targets.shape)}.")
        else:  # the given part first, the rest (hog+pixel: the pixels) computed as forward_targets would
            rest = [self.targets.compute_part(part, pixel_values) for part in self.targets.parts[1:]]
            targets = self.targets.join(hog_targets, *rest)
        predictions = self.targets.join(*heads)
        loss = self.forward_loss(predictions, targets, mask)

        hog_loss, pixel_targets, pixel_loss = loss, None, None
        if pixel_logits is not None:  # the unweighted terms, for the logs
            pixel_targets = self.targets.split(targets)[1]
            terms = self.targets.per_patch_terms(predictions, targets)
            hog_loss, pixel_loss = masked_mean(terms["hog"], mask), masked_mean(terms["pixel"], mask)

        out = MaskFeatForPreTrainingOutput(
            loss=loss,
            logits=logits,
            hog_targets=hog_targets,
            mask=mask,
            hog_loss=hog_loss,
            pixel_logits=pixel_logits,
            pixel_targets=pixel_targets,
            pixel_loss=pixel_loss,
            hidden_states=hidden_states,
        )
        return out if return_dict is not False else out.to_tuple()


class MaskFeatForImageClassification(ClassifierMixin, MaskFeatPreTrainedModel):
    """MaskFeat encoder + linear classifier on mean-pooled patch tokens (or ``[CLS]``).

    ``from_pretrained`` on a pretraining checkpoint loads the encoder and initialises only the classifier.
    """

    def __init__(self, config: MaskFeatConfig):
        super().__init__(config)
        self.maskfeat = MaskFeatModel(config, use_mask_token=False)
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
        """Classifies ``pixel_values [B, C, H, W]``; ``labels [B]`` gives a cross-entropy ``loss``.

        Returns:
            ``ImageClassifierOutput`` with ``logits [B, num_labels]``.
        """
        outputs = self.maskfeat(
            pixel_values,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_hidden_states=output_hidden_states,
        )
        return self.classify(outputs, labels, return_dict)
