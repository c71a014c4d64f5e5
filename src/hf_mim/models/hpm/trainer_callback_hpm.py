"""Drives HPM's schedule from ``transformers.Trainer``."""

from __future__ import annotations

from transformers import TrainerCallback


class HPMTrainerCallback(TrainerCallback):
    """Sets :class:`HPMForPreTraining`'s training progress before each step and updates its EMA teacher after
    each optimizer step: ``Trainer(..., callbacks=[HPMTrainerCallback()])``."""

    @staticmethod
    def _hpm(model):
        model = getattr(model, "module", model)  # DDP / accelerate wrappers
        return model if hasattr(model, "update_teacher") else None

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        hpm = self._hpm(model)
        if hpm is not None:
            total = state.num_train_epochs or args.num_train_epochs
            hpm.set_training_progress(min(state.epoch or 0.0, total), total)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        hpm = self._hpm(model)
        if hpm is not None:
            hpm.update_teacher()
