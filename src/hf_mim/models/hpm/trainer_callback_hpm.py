"""Drives HPM's schedule from ``transformers.Trainer`` through the model's own training hooks."""

from __future__ import annotations

from transformers import TrainerCallback

from .modeling_hpm import HPMForPreTraining

#: Trainer reports this many epochs (``sys.maxsize``) or more when the dataset has no length.
_UNKNOWN_EPOCHS = 1e6


class HPMTrainerCallback(TrainerCallback):
    """Calls :class:`HPMForPreTraining`'s training hooks: progress before each step, an EMA teacher step after each
    optimizer step (``Trainer(..., callbacks=[HPMTrainerCallback()])``). The rule lives in the model
    (:meth:`~HPMForPreTraining.on_train_step_begin`), shared with :class:`~hf_mim.training.Pretrainer`."""

    @staticmethod
    def _hpm(model):
        model = getattr(model, "module", model)  # DDP / accelerate wrappers
        return model if hasattr(model, "on_train_step_begin") else None

    #: Epoch scale used when the dataset has no length (the model's).
    NOMINAL_EPOCHS = HPMForPreTraining.NOMINAL_EPOCHS

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        hpm = self._hpm(model)
        if hpm is None:
            return
        epochs = state.num_train_epochs or args.num_train_epochs
        hpm.on_train_step_begin(
            state.global_step, max(state.max_steps, 1), epochs if epochs < _UNKNOWN_EPOCHS else None
        )

    def on_step_end(self, args, state, control, model=None, **kwargs):
        hpm = self._hpm(model)
        if hpm is not None:
            hpm.on_train_step_end()
