"""Adagrad (Keras 3's keras.optimizers.Adagrad). The rule is engine/ref/optimizer.py's adagrad_update; one
slot, `accumulator`, which starts at initial_accumulator_value instead of zero."""
from .base import Optimizer, hyperparameter


class Adagrad(Optimizer):
    """accumulator += g^2;  param -= lr g / sqrt(accumulator + epsilon)

    initial_accumulator_value: float >= 0, the accumulator's starting value. epsilon: float >= 0.
    Other arguments: see Optimizer."""

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="adagrad", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.initial_accumulator_value = hyperparameter("Adagrad", "initial_accumulator_value",
                                                        initial_accumulator_value, ">= 0")
        self.epsilon = hyperparameter("Adagrad", "epsilon", epsilon, ">= 0")

    def _slot_names(self):
        return ("accumulator",)

    def _slot_initial_value(self, slot_name):
        return self.initial_accumulator_value

    def _update_step(self, kernels, param, grad, slots, learning_rate, weight_decay):
        kernels.adagrad_update(param, grad, slots["accumulator"], learning_rate, self.epsilon, weight_decay)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}
