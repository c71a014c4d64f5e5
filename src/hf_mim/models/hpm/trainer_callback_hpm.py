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

    #: Epoch scale used when the dataset has no length (Trainer then reports ``sys.maxsize`` epochs).
    NOMINAL_EPOCHS = 100.0

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        hpm = self._hpm(model)
        if hpm is None:
            return
        total = state.num_train_epochs or args.num_train_epochs
        if total and total < 1e6 and state.epoch is not None:
            hpm.set_training_progress(min(state.epoch, total), total)
        else:  # an iterable dataset: no epochs, so progress is the share of the optimizer steps
            done = state.global_step / max(state.max_steps, 1)
            hpm.set_training_progress(min(done, 1.0) * self.NOMINAL_EPOCHS, self.NOMINAL_EPOCHS)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        hpm = self._hpm(model)
        if hpm is not None:
            hpm.update_teacher()
