"""SGD: gradient descent with optional momentum and Nesterov momentum (Keras 3's keras.optimizers.SGD).
The rule is engine/ref/optimizer.py's sgd_update; one slot, `velocity`, only when momentum > 0."""
from .base import Optimizer, flag, hyperparameter


class SGD(Optimizer):
    """momentum == 0:  param -= lr * grad
    momentum > 0:   velocity = momentum * velocity - lr * grad;  param += velocity
    nesterov=True:  velocity as above;  param += momentum * velocity - lr * grad

    momentum: float in [0, 1]. Other arguments: see Optimizer."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name="SGD", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.momentum = hyperparameter("SGD", "momentum", momentum, "[0, 1]")
        self.nesterov = flag("SGD", "nesterov", nesterov)

    def _slot_names(self):
        return ("velocity",) if self.momentum > 0 else ()

    def _update_step(self, kernels, param, grad, slots, learning_rate, weight_decay):
        kernels.sgd_update(param, grad, slots.get("velocity"), learning_rate, self.momentum, self.nesterov,
                           weight_decay)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
