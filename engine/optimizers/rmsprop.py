"""RMSprop (Keras 3's keras.optimizers.RMSprop). The rule is engine/ref/optimizer.py's rmsprop_update; slot
`velocity`, plus `average_grad` when centered and `momentum_buf` when momentum > 0."""
from .base import Optimizer, flag, hyperparameter


class RMSprop(Optimizer):
    """velocity = rho velocity + (1 - rho) g^2
    centered: average_grad = rho average_grad + (1 - rho) g, denominator = velocity - average_grad^2 + epsilon;
              else denominator = velocity + epsilon
    increment = lr g / sqrt(denominator);  momentum > 0: momentum_buf = momentum momentum_buf + increment,
    param -= momentum_buf;  else param -= increment

    rho: float in [0, 1). momentum: float in [0, 1]. epsilon: float >= 0. centered: bool.
    Other arguments: see Optimizer."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="rmsprop", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.rho = hyperparameter("RMSprop", "rho", rho, "[0, 1)")
        self.momentum = hyperparameter("RMSprop", "momentum", momentum, "[0, 1]")
        self.epsilon = hyperparameter("RMSprop", "epsilon", epsilon, ">= 0")
        self.centered = flag("RMSprop", "centered", centered)

    def _slot_names(self):
        names = ["velocity"]
        if self.centered:
            names.append("average_grad")
        if self.momentum > 0:
            names.append("momentum_buf")
        return tuple(names)

    def _update_step(self, kernels, param, grad, slots, learning_rate, weight_decay):
        kernels.rmsprop_update(param, grad, slots["velocity"], slots.get("average_grad"), slots.get("momentum_buf"),
                               learning_rate, self.rho, self.momentum, self.epsilon, weight_decay)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}
