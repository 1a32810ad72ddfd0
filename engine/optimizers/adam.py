"""Adam and AdamW (Keras 3's keras.optimizers.Adam and AdamW). The rule is engine/ref/optimizer.py's
adam_update; slots `m` and `v`, plus `v_hat` with amsgrad. AdamW is Adam with decoupled weight decay on by
default, exactly as Keras 3 defines it (its weight decay is the base Optimizer's)."""
from .base import Optimizer, flag, hyperparameter


class Adam(Optimizer):
    """m += (g - m)(1 - beta_1);  v += (g^2 - v)(1 - beta_2);  amsgrad: v_hat = max(v_hat, v) replaces v below
    param -= alpha * m / (sqrt(v) + epsilon),  alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t),  t = iterations + 1

    beta_1, beta_2: floats in [0, 1). epsilon: float >= 0. amsgrad: bool. Other arguments: see Optimizer."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="adam", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name, **kwargs)
        where = type(self).__name__
        self.beta_1 = hyperparameter(where, "beta_1", beta_1, "[0, 1)")
        self.beta_2 = hyperparameter(where, "beta_2", beta_2, "[0, 1)")
        self.epsilon = hyperparameter(where, "epsilon", epsilon, ">= 0")
        self.amsgrad = flag(where, "amsgrad", amsgrad)

    def _slot_names(self):
        return ("m", "v", "v_hat") if self.amsgrad else ("m", "v")

    def _update_step(self, kernels, param, grad, slots, learning_rate, weight_decay):
        kernels.adam_update(param, grad, slots["m"], slots["v"], slots.get("v_hat"), learning_rate, self.beta_1,
                            self.beta_2, self.epsilon, self.iterations + 1, weight_decay)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): param -= lr * weight_decay * param before each
    Adam update. weight_decay: float >= 0 (required, 0.004 by default). Other arguments: see Adam."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, name="adamw", **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: expected `weight_decay` to be a float >= 0 (use Adam for none). "
                             "Received: weight_decay=None")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad,
                         weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
