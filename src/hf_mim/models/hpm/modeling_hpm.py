"""HPM (Wang et al., "Hard Patches Mining for Masked Image Modeling", CVPR 2023), with MAE as its baseline.

An MAE (encoder on visible patches, pixel decoder) plus a loss predictor: a second decoder branch that learns
which patches are hard to reconstruct. An exponential-moving-average teacher scores every patch, and masks are
drawn easy-to-hard: a growing share of each mask is the teacher's predicted hardest patches, the rest is random.
Parameter names follow transformers' ``ViTMAEForPreTraining`` so its weights convert by renaming a prefix.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.vit_mae.modeling_vit_mae import ViTMAEPatchEmbeddings, build_2d_sinusoidal_position_embedding
from transformers.utils import ModelOutput

from ...backbones import BackboneMixin, VisiblePatchEncoder
from ...losses import masked_mean, mse_loss_predictor_loss, relative_loss_predictor_loss
from ...modeling_utils import (
    ClassifierMixin,
    ResolutionMixin,
    ViTBlock,
    check_bool_masked_pos,
    fc_norm_pool,
    pool_tokens,
)
from ...targets import PatchTargets
from .configuration_hpm import HPMConfig

logger = logging.getLogger(__name__)

__all__ = [
    "HPMPreTrainedModel",
    "HPMModel",
    "HPMForPreTraining",
    "HPMForImageClassification",
    "HPMForPreTrainingOutput",
]


def sincos_position_embedding(grid: tuple[int, int], dim: int, device=None) -> torch.Tensor:
    """MAE's fixed 2-D sin-cos embedding ``[1, 1 + h * w, dim]`` with a zero ``[CLS]`` row, in MAE's layout."""
    pos = build_2d_sinusoidal_position_embedding(grid[0], grid[1], embed_dim=dim, cls_token=True, device=device)
    half = dim // 2  # MAE's reference swapped the h / w halves; its checkpoints depend on that layout
    return torch.cat([pos[..., half:], pos[..., :half]], dim=-1).unsqueeze(0)


def decoder_config(config: HPMConfig) -> HPMConfig:
    """A copy of ``config`` with the decoder's sizes in the ViT fields (what ``ViTBlock`` reads)."""
    dec = copy.deepcopy(config)
    dec.hidden_size = config.decoder_hidden_size
    dec.num_attention_heads = config.decoder_num_attention_heads
    dec.intermediate_size = config.decoder_intermediate_size
    dec.drop_path_rate = 0.0
    return dec


@dataclass
class HPMForPreTrainingOutput(ModelOutput):
    """Outputs of :class:`HPMForPreTraining`.

    Attributes:
        loss: ``reconstruction_loss + loss_predictor_loss``.
        reconstruction_loss: MSE on masked patches.
        loss_predictor_loss: Relative (BCE) or MSE loss of the loss predictor (``None`` for MAE).
        logits: ``[B, L, patch^2 * C]`` predictions for ALL patches, MAE / ViTMAE patchify order.
        predicted_patch_loss: ``[B, L]`` the loss predictor's scores (``None`` for MAE).
        mask: ``[B, L]`` bool, True = masked.
        patch_loss: ``[B, L]`` true per-patch reconstruction loss (detached).
    """

    loss: torch.Tensor | None = None
    reconstruction_loss: torch.Tensor | None = None
    loss_predictor_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    predicted_patch_loss: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    patch_loss: torch.Tensor | None = None


class MAEEmbeddings(nn.Module):
    """Patch embedding, ``[CLS]`` and fixed sin-cos positions. Its own class (holding its tokens directly) so that
    ``_init_weights`` reaches it: transformers skips modules without direct parameters."""

    def __init__(self, config: HPMConfig):
        super().__init__()
        self.patch_embeddings = ViTMAEPatchEmbeddings(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.position_embeddings = nn.Parameter(
            sincos_position_embedding((config.image_size // config.patch_size,) * 2, config.hidden_size),
            requires_grad=False,
        )


class MAEEncoder(nn.Module):
    """MAE's ViT encoder: patch embedding + fixed sin-cos positions, ``[CLS]``, blocks on the visible patches only."""

    has_cls_token = True

    def __init__(self, config: HPMConfig):
        super().__init__()
        self.config = config
        self.embeddings = MAEEmbeddings(config)
        rates = torch.linspace(0, config.drop_path_rate, config.num_hidden_layers).tolist()
        self.layers = nn.ModuleList([ViTBlock(config, rate) for rate in rates])
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def position_embeddings(self, grid: tuple[int, int]) -> torch.Tensor:
        """Stored embeddings at the config's grid, exact sin-cos ones for any other grid (nothing to interpolate)."""
        stored = self.embeddings.position_embeddings
        if grid[0] * grid[1] + 1 == stored.shape[1] and grid[0] == grid[1]:
            return stored
        return sincos_position_embedding(grid, stored.shape[-1], stored.device).to(stored.dtype)

    def forward(
        self, pixel_values: torch.Tensor, ids_keep: torch.Tensor | None = None, final_norm: bool = True
    ) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, 1 + K, D]`` for the ``K`` patches in ``ids_keep [B, K]`` (all when None),
        after the final LayerNorm unless ``final_norm=False``."""
        patch = self.config.patch_size
        grid = (pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch)
        pos = self.position_embeddings(grid)
        weight = self.embeddings.patch_embeddings.projection.weight
        x = self.embeddings.patch_embeddings.projection(pixel_values.to(weight.dtype)).flatten(2).transpose(1, 2)
        x = x + pos[:, 1:]  # [B, L, D]
        if ids_keep is not None:
            x = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # [B, K, D]
        cls = (self.embeddings.cls_token + pos[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)  # [B, 1 + K, D]
        for layer in self.layers:
            x = layer(x)
        return self.layernorm(x) if final_norm else x


def build_encoder(config: HPMConfig) -> nn.Module:
    """MAE's own encoder, or the released class of a wrapped backbone encoding the visible patches only (the same
    interface: ``(pixel_values, ids_keep=None, final_norm=True) -> [B, 1 + K, D]``)."""
    if config.encoder_config is None:
        return MAEEncoder(config)
    return VisiblePatchEncoder(config.encoder_config, config._attn_implementation, config.initializer_range)


def decoder_blocks(config: HPMConfig) -> nn.ModuleList:
    dec = decoder_config(config)
    return nn.ModuleList([ViTBlock(dec) for _ in range(config.decoder_num_hidden_layers)])


class LossPredictor(nn.Module):
    """HPM's loss predictor: a second decoder branch (same depth and width), LayerNorm, a linear layer whose
    outputs are averaged to one score per patch."""

    def __init__(self, config: HPMConfig):
        super().__init__()
        self.layers = decoder_blocks(config)
        self.norm = nn.LayerNorm(config.decoder_hidden_size, eps=config.layer_norm_eps)
        self.pred = nn.Linear(config.decoder_hidden_size, config.target_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder input ``[B, 1 + L, Dd]`` -> predicted loss ``[B, L]``."""
        for layer in self.layers:
            x = layer(x)
        return self.pred(self.norm(x))[:, 1:].mean(dim=-1)


class HPMTeacher(nn.Module):
    """The parts of the model the teacher needs to score patches: encoder, decoder embedding, loss predictor."""

    def __init__(self, config: HPMConfig):
        super().__init__()
        self.encoder = build_encoder(config)
        self.decoder_embed = nn.Linear(config.hidden_size, config.decoder_hidden_size)
        self.loss_predictor = LossPredictor(config)


class HPMPreTrainedModel(ResolutionMixin, BackboneMixin, PreTrainedModel):
    config_class = HPMConfig
    config: HPMConfig
    base_model_prefix = "hpm"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["ViTBlock"]
    #: MAE's fixed sin-cos tables: recomputed for another grid, never interpolated
    _fixed_position_tables = ("position_embeddings", "decoder_pos_embed")

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):  # the patch embedding, initialised like nn.Linear as in MAE
            init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1))
            init.zeros_(module.bias)
        elif isinstance(module, MAEEmbeddings):
            grid = (self.config.image_size // self.config.patch_size,) * 2
            init.copy_(module.position_embeddings, sincos_position_embedding(grid, self.config.hidden_size))
            init.normal_(module.cls_token, std=std)
        elif isinstance(module, HPMDecoder):
            grid = (self.config.image_size // self.config.patch_size,) * 2
            init.copy_(module.decoder_pos_embed, sincos_position_embedding(grid, self.config.decoder_hidden_size))
            init.normal_(module.mask_token, std=std)


class HPMModel(HPMPreTrainedModel):
    """The bare MAE / HPM encoder (all patches, for features and downstream use)."""

    def __init__(self, config: HPMConfig):
        super().__init__(config)
        self.encoder = build_encoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.embeddings.patch_embeddings

    def forward(self, pixel_values: torch.Tensor, return_dict: bool | None = None, **kwargs):
        """Encodes all patches of ``pixel_values [B, C, H, W]``.

        Returns:
            ``last_hidden_state [B, 1 + L, D]``, ``pooler_output [B, D]`` (mean of patch tokens by default).
        """
        if self.config.use_fc_norm:
            tokens = self.encoder(pixel_values, final_norm=False)  # [B, 1 + L, D]
            sequence, pooled = self.encoder.layernorm(tokens), fc_norm_pool(tokens, self.encoder.layernorm)
        else:
            sequence = self.encoder(pixel_values)
            pooled = pool_tokens(sequence, self.config.pooling)
        out = BaseModelOutputWithPooling(last_hidden_state=sequence, pooler_output=pooled)
        return out if return_dict is not False else out.to_tuple()


class HPMDecoder(nn.Module):
    """MAE's decoder input (embedding, mask tokens, positions) and pixel branch, with ViTMAE's parameter names."""

    def __init__(self, config: HPMConfig):
        super().__init__()
        self.decoder_embed = nn.Linear(config.hidden_size, config.decoder_hidden_size)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.decoder_hidden_size))
        grid = (config.image_size // config.patch_size,) * 2
        self.decoder_pos_embed = nn.Parameter(
            sincos_position_embedding(grid, config.decoder_hidden_size), requires_grad=False
        )
        self.decoder_layers = decoder_blocks(config)
        self.decoder_norm = nn.LayerNorm(config.decoder_hidden_size, eps=config.layer_norm_eps)
        self.decoder_pred = nn.Linear(config.decoder_hidden_size, config.target_dim)

    def position_embeddings(self, grid: tuple[int, int]) -> torch.Tensor:
        stored = self.decoder_pos_embed
        if grid[0] * grid[1] + 1 == stored.shape[1] and grid[0] == grid[1]:
            return stored
        return sincos_position_embedding(grid, stored.shape[-1], stored.device).to(stored.dtype)

    def embed(self, latent: torch.Tensor, ids_restore: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Visible tokens ``[B, 1 + K, D]`` -> full decoder input ``[B, 1 + L, Dd]`` with mask tokens."""
        x = self.decoder_embed(latent)
        length = ids_restore.shape[1]
        mask_tokens = self.mask_token.expand(x.shape[0], length + 1 - x.shape[1], -1)
        tokens = torch.cat([x[:, 1:], mask_tokens], dim=1)  # visible first, then masked
        tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # unshuffle
        return torch.cat([x[:, :1], tokens], dim=1) + self.position_embeddings(grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder input ``[B, 1 + L, Dd]`` -> predictions ``[B, L, target_dim]``."""
        for layer in self.decoder_layers:
            x = layer(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]


def ids_from_mask(mask: torch.Tensor, num_visible: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, L]`` bool mask with ``num_visible`` False per row -> ``ids_keep [B, K]`` (visible, in index order) and
    ``ids_restore [B, L]`` (MAE's unshuffle indices). The count is passed, not read from the mask: reading it would
    wait for the GPU and break a compiled graph."""
    ids_shuffle = torch.argsort(mask.to(torch.int8), dim=1, stable=True)  # visible first, then masked
    return ids_shuffle[:, :num_visible], torch.argsort(ids_shuffle, dim=1)


class HPMForPreTraining(HPMPreTrainedModel):
    """MAE with hard patches mining.

    Training progress drives the schedule: call :meth:`set_training_progress` (``epoch``, ``total_epochs``) and,
    after every optimizer step, :meth:`update_teacher`. The training hooks :meth:`on_train_step_begin` /
    :meth:`on_train_step_end` do both from step counts (one rule, used by :class:`~hf_mim.training.Pretrainer` and
    by :class:`~hf_mim.models.hpm.HPMTrainerCallback` for ``Trainer``). Progress and teacher live in the state
    dict, so checkpoints resume exactly.
    """

    #: Epoch scale of the progress when the run's length in epochs is unknown (a stream run by ``Trainer``).
    NOMINAL_EPOCHS = 100.0

    def __init__(self, config: HPMConfig):
        super().__init__(config)
        self.hpm = HPMModel(config)
        self.decoder = HPMDecoder(config)
        self.targets = PatchTargets(config)
        self.loss_predictor = LossPredictor(config) if config.hard_patches_mining else None
        self.teacher = HPMTeacher(config) if config.hard_patches_mining else None
        self.register_buffer("training_epoch", torch.zeros((), dtype=torch.float32))
        self.register_buffer("total_epochs", torch.zeros((), dtype=torch.float32))
        self._warned_progress = False
        self.post_init()
        if self.teacher is not None:
            self.teacher.requires_grad_(False)
            self.reset_teacher()

    @classmethod
    def from_backbone(cls, *args, **kwargs):
        """As :meth:`hf_mim.backbones.BackboneMixin.from_backbone`; the teacher starts as a copy of the student."""
        model = super().from_backbone(*args, **kwargs)
        if model.teacher is not None:
            model.reset_teacher()
        return model

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """As ``PreTrainedModel.from_pretrained``; a checkpoint without a teacher (e.g. MAE weights) gets the
        student's copy instead of random teacher weights."""
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        if model.teacher is not None and any(key.startswith("teacher.") for key in info["missing_keys"]):
            model.reset_teacher()
        return (model, info) if want_info else model

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, HPMForPreTraining):
            init.zeros_(module.training_epoch)
            init.zeros_(module.total_epochs)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # the teacher never drops paths
        return self

    # -- schedule ------------------------------------------------------------------------------------------
    def set_training_progress(self, epoch: float, total_epochs: float) -> None:
        """Sets the training progress: ``epoch`` (0-based, may be fractional) of ``total_epochs``."""
        if not total_epochs > 0:
            raise ValueError(f"`total_epochs` must be > 0, got {total_epochs!r}.")
        if not 0 <= epoch <= total_epochs:
            raise ValueError(f"`epoch` must be in [0, total_epochs={total_epochs}], got {epoch!r}.")
        self.training_epoch.fill_(float(epoch))
        self.total_epochs.fill_(float(total_epochs))

    def on_train_step_begin(self, step: int, max_steps: int, num_epochs: float | None = None) -> None:
        """Training hook, before optimizer step ``step + 1`` of ``max_steps``: the progress is the share of the
        optimizer steps done, on the run's epoch scale (``num_epochs``; :attr:`NOMINAL_EPOCHS` when unknown). For a
        map-style dataset this is ``step / steps_per_epoch`` epochs, the official per-epoch schedule
        (main_pretrain.py passes the epoch to the model).

        Args:
            step: Optimizer steps done so far (0-based).
            max_steps: Optimizer steps of the whole run (> 0).
            num_epochs: The run's length in epochs, or None when it has none (a stream).
        """
        if max_steps <= 0:
            raise ValueError(f"`max_steps` must be > 0, got {max_steps!r}.")
        epochs = float(num_epochs) if num_epochs else self.NOMINAL_EPOCHS
        self.set_training_progress(min(step / max_steps, 1.0) * epochs, epochs)

    def on_train_step_end(self) -> None:
        """Training hook, after each optimizer step: one EMA step of the teacher."""
        self.update_teacher()

    def num_hard_patches(self, num_masked: int) -> int:
        """``int(num_masked * hard_fraction_max * (e + 1) / E)`` at epoch ``e`` of ``E`` (0 before any progress)."""
        total = float(self.total_epochs)
        if total <= 0:
            if not self._warned_progress:
                logger.warning(
                    "HPM: training progress not set; masks use no hard patches. Call set_training_progress."
                )
                self._warned_progress = True
            return 0
        epoch = min(math.floor(float(self.training_epoch)) + 1, total)
        return int(num_masked * self.config.hard_fraction_max * epoch / total)

    @property
    def teacher_momentum(self) -> float:
        """EMA momentum: linear from ``teacher_momentum_start`` to ``_end`` over the warm-up epochs, then fixed."""
        config = self.config
        warmup = config.teacher_momentum_warmup_epochs
        ramp = 1.0 if warmup <= 0 else min(1.0, float(self.training_epoch) / warmup)
        return config.teacher_momentum_start + (config.teacher_momentum_end - config.teacher_momentum_start) * ramp

    def _teacher_pairs(self):
        students = (self.hpm.encoder, self.decoder.decoder_embed, self.loss_predictor)
        teachers = (self.teacher.encoder, self.teacher.decoder_embed, self.teacher.loss_predictor)
        for student, teacher in zip(students, teachers):
            yield from zip(teacher.parameters(), student.parameters())

    @torch.no_grad()
    def reset_teacher(self) -> None:
        """Copies the student's weights into the teacher."""
        for teacher, student in self._teacher_pairs():
            teacher.copy_(student)

    @torch.no_grad()
    def update_teacher(self) -> float:
        """One EMA step of the teacher towards the student (after an optimizer step); returns the momentum."""
        if self.teacher is None:
            return 0.0
        momentum = self.teacher_momentum
        for teacher, student in self._teacher_pairs():
            teacher.lerp_(student.detach().to(teacher.dtype), 1.0 - momentum)
        return momentum

    # -- masks ---------------------------------------------------------------------------------------------
    def num_masked(self, length: int) -> int:
        return length - int(length * (1 - self.config.mask_ratio))

    @torch.no_grad()
    def teacher_scores(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The teacher's predicted loss of every patch ``[B, L]`` (encoder on ALL patches, no pixel decoder)."""
        patch = self.config.patch_size
        grid = (pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch)
        latent = self.teacher.encoder(pixel_values)  # [B, 1 + L, D]
        x = self.teacher.decoder_embed(latent) + self.decoder.position_embeddings(grid)
        return self.teacher.loss_predictor(x).float()

    @torch.no_grad()
    def easy_to_hard_mask(self, scores: torch.Tensor) -> torch.Tensor:
        """Vectorised: the scheduled number of highest-scored patches, plus uniformly drawn others, per image.

        Args:
            scores: ``[B, L]`` predicted patch losses.

        Returns:
            ``[B, L]`` bool with exactly ``L - int(L * (1 - mask_ratio))`` True per row.
        """
        batch, length = scores.shape
        num_masked = self.num_masked(length)
        key = torch.rand(batch, length, device=scores.device)  # uniform order for the random part
        num_hard = self.num_hard_patches(num_masked)
        if num_hard > 0:
            key.scatter_(1, scores.topk(num_hard, dim=1).indices, -1.0)  # hardest patches sort first
        order = torch.argsort(key, dim=1)
        mask = torch.zeros(batch, length, dtype=torch.bool, device=scores.device)
        return mask.scatter_(1, order[:, :num_masked], True)

    def random_mask(self, batch: int, length: int, device) -> torch.Tensor:
        """MAE's uniform random mask ``[B, L]``."""
        order = torch.argsort(torch.rand(batch, length, device=device), dim=1)
        mask = torch.zeros(batch, length, dtype=torch.bool, device=device)
        return mask.scatter_(1, order[:, : self.num_masked(length)], True)

    # -- forward -------------------------------------------------------------------------------------------
    def forward_encoder(self, pixel_values: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Encodes the visible patches: ``[B, 1 + K, D]``."""
        return self.hpm.encoder(pixel_values, ids_keep)

    def forward_decoder(self, decoder_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``[B, 1 + L, Dd]`` -> pixel predictions ``[B, L, target_dim]`` and predicted losses ``[B, L]``."""
        logits = self.decoder(decoder_input)
        predicted = self.loss_predictor(decoder_input) if self.loss_predictor is not None else None
        return logits, predicted

    @torch.no_grad()
    def forward_targets(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, L, target_dim]``: (per-patch normalised) pixels in MAE's patchify order by default, or HOG, both,
        or a teacher's patch features (:class:`~hf_mim.targets.PatchTargets`)."""
        return self.targets(pixel_values)

    def forward_loss(self, logits, targets, predicted, mask):
        """Reconstruction MSE on masked patches, plus the loss predictor's loss on the masked patches."""
        patch_loss = self.targets.per_patch_loss(logits, targets)  # [B, L]; MSE for pixels and HOG
        reconstruction = masked_mean(patch_loss, mask)
        if predicted is None:
            return reconstruction, None, patch_loss.detach()
        batch = mask.shape[0]
        actual = patch_loss.detach()[mask].view(batch, -1)  # [B, M]
        scores = predicted[mask].view(batch, -1)
        if self.config.loss_predictor_loss == "relative":
            return reconstruction, relative_loss_predictor_loss(scores, actual), patch_loss.detach()
        return reconstruction, mse_loss_predictor_loss(scores, actual), patch_loss.detach()

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> HPMForPreTrainingOutput | tuple:
        """Pretraining step.

        Args:
            pixel_values: Normalised images ``[B, C, H, W]``.
            bool_masked_pos: Optional ``[B, L]`` bool mask with exactly ``L - int(L * (1 - mask_ratio))`` True per
                image; by default the teacher builds easy-to-hard masks (HPM) or masks are random (MAE).

        Returns:
            :class:`HPMForPreTrainingOutput`.
        """
        batch = pixel_values.shape[0]
        patch = self.config.patch_size
        grid = (pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch)
        length = grid[0] * grid[1]
        if pixel_values.shape[-2] % patch or pixel_values.shape[-1] % patch:
            raise ValueError(
                f"`pixel_values` ({tuple(pixel_values.shape[-2:])}) must be divisible by patch_size={patch}."
            )
        if bool_masked_pos is not None:
            mask = check_bool_masked_pos(bool_masked_pos, batch, length)
            counts = mask.sum(dim=1)
            if (counts != self.num_masked(length)).any():
                raise ValueError(
                    f"`bool_masked_pos` must mask exactly {self.num_masked(length)} patches per image "
                    f"(L - int(L * (1 - mask_ratio)) with L={length}), got {counts.tolist()}."
                )
        elif self.teacher is not None:
            mask = self.easy_to_hard_mask(self.teacher_scores(pixel_values))
        else:
            mask = self.random_mask(batch, length, pixel_values.device)

        ids_keep, ids_restore = ids_from_mask(mask, length - self.num_masked(length))
        latent = self.forward_encoder(pixel_values, ids_keep)  # [B, 1 + K, D]
        decoder_input = self.decoder.embed(latent, ids_restore, grid)  # [B, 1 + L, Dd]
        logits, predicted = self.forward_decoder(decoder_input)
        targets = self.forward_targets(pixel_values)
        reconstruction, predictor_loss, patch_loss = self.forward_loss(logits, targets, predicted, mask)
        loss = reconstruction if predictor_loss is None else reconstruction + predictor_loss
        out = HPMForPreTrainingOutput(
            loss=loss,
            reconstruction_loss=reconstruction,
            loss_predictor_loss=predictor_loss,
            logits=logits,
            predicted_patch_loss=predicted,
            mask=mask,
            patch_loss=patch_loss,
        )
        return out if return_dict is not False else out.to_tuple()

    @classmethod
    def from_transformers(cls, model: PreTrainedModel, **config_kwargs) -> HPMForPreTraining:
        """An HPM model (``hard_patches_mining=False`` unless overridden) with the weights of transformers'
        ``ViTMAEForPreTraining`` (e.g. ``facebook/vit-mae-base``)."""
        from .convert_hpm import hpm_from_transformers

        return hpm_from_transformers(cls, model, **config_kwargs)


class HPMForImageClassification(ClassifierMixin, HPMPreTrainedModel):
    """HPM / MAE encoder + linear classifier on mean-pooled patch tokens (``Trainer``-ready).

    ``from_pretrained`` on a pretraining checkpoint loads the encoder and initialises only the classifier.
    """

    def __init__(self, config: HPMConfig):
        super().__init__(config)
        self.hpm = HPMModel(config)
        self.build_classifier(config.hidden_size)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict=None, **kwargs):
        """Classifies ``pixel_values [B, C, H, W]``; ``labels [B]`` gives a cross-entropy ``loss``."""
        return self.classify(self.hpm(pixel_values), labels, return_dict)
