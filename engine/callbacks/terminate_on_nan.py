"""TerminateOnNaN: stop training as soon as the loss is NaN or infinite."""
import math

from .base import Callback


class TerminateOnNaN(Callback):
    """Stop fit() after the first batch whose running loss is NaN or infinite (a diverged run only gets
    worse, and every later update would write NaN into the weights)."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
