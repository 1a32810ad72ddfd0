"""engine.random: the one random number generator behind every draw the engine makes (weight
initialisation, dropout masks, shuffling, sampling). set_seed(s) makes them all repeatable."""
import random as _py_random

import numpy as np

_generator = np.random.default_rng()


def set_seed(seed):
    """Seed the engine's generator, NumPy's global one and Python's `random`, as keras.utils.set_random_seed
    does: after set_seed(s), the same program draws the same numbers."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_seed: expected a non-negative int. Received: seed={seed!r}")
    _py_random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    _generator = np.random.default_rng(int(seed))


def generator():
    """The engine's numpy.random.Generator (replaced by set_seed, so fetch it each time)."""
    return _generator


def get_state():
    """The generator's state as a JSON-friendly dict (BackupAndRestore saves it with each checkpoint)."""
    return _generator.bit_generator.state


def set_state(state):
    """Continue the draws from a state returned by get_state()."""
    global _generator
    generator = np.random.default_rng()
    try:
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"random.set_state: expected a state from engine.random.get_state(). ({err})") from None
    _generator = generator
