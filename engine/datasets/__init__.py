"""engine.datasets: readers for data sets a user keeps on disk (nothing is downloaded).

    from engine.datasets import mnist
    (x_train, y_train), (x_test, y_test) = mnist.load_data('path/to/mnist')    # the four IDX files
"""
from . import mnist

__all__ = ["mnist"]
