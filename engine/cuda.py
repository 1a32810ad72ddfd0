"""engine.cuda: the GPU backend's status. The CUDA kernels (engine._cuda) are not part of this build yet,
so is_available() is False and everything runs on the CPU."""
from . import backend


def is_available():
    """True when the CUDA kernels were built and a GPU can run them."""
    if not backend.available("cuda"):
        return False
    return backend.get("cuda").device_count() > 0
