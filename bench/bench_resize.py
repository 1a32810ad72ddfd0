"""UpSampling2D benchmarks: resizing (8, 32, 32, 64) images to (64, 64), 'nearest' and 'bilinear', forward and
backward, for the NumPy reference ('ref'), engine's kernel ('cpu') and PyTorch's interpolate and its backward
('torch', when installed, on channels-last memory like engine's NHWC). Each validates once against the reference,
then times. The summary table gives Gelem/s (output pixels x channels) and the ratios cpu/ref, cpu/torch.

    OMP_NUM_THREADS=2 pytest bench/bench_resize.py --benchmark-only --benchmark-group-by=group
    OMP_NUM_THREADS=2 python bench/bench_resize.py 7      # engine vs PyTorch, interleaved
"""
import functools

import numpy as np
import pytest

from _util import backend_or_skip, random_f32, timed
from engine import ref

SHAPE, SIZE = (8, 32, 32, 64), (64, 64)
MODES = ["nearest", "bilinear"]
IMPLS = ["ref", "cpu", "torch"]


@functools.lru_cache(maxsize=1)
def _data():
    return random_f32(*SHAPE, seed=1), random_f32(SHAPE[0], *SIZE, SHAPE[3], seed=2)


def _impl(name, mode, direction):
    """(fn, args, to_numpy) of implementation `name`: the forward (-> y) or the backward (-> dx)."""
    x, dy = _data()
    if name == "torch":
        torch = pytest.importorskip("torch", reason="torch: PyTorch is not installed (optional comparison)")
        options = {} if mode == "nearest" else {"align_corners": False}
        nchw = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2)        # noqa: E731  (NHWC memory, as engine's)
        if direction == "forward":
            return (lambda t: torch.nn.functional.interpolate(t, size=SIZE, mode=mode, **options), (nchw(x),),
                    lambda y: y.permute(0, 2, 3, 1).numpy())
        if mode == "nearest":
            backward = lambda g: torch.ops.aten.upsample_nearest2d_backward(g, SIZE, nchw(x).shape)  # noqa: E731
        else:
            backward = lambda g: torch.ops.aten.upsample_bilinear2d_backward(g, SIZE, nchw(x).shape,  # noqa: E731
                                                                             False)
        return backward, (nchw(dy),), lambda d: d.permute(0, 2, 3, 1).numpy()
    kernels = backend_or_skip(name).kernels
    if direction == "forward":
        return kernels.resize_forward, (x, SIZE, mode), np.asarray
    return kernels.resize_backward, (dy, SHAPE, mode), np.asarray


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_resize(benchmark, impl, mode, direction):
    fn, args, to_numpy = _impl(impl, mode, direction)
    x, dy = _data()
    want = ref.resize_forward(x, SIZE, mode) if direction == "forward" else ref.resize_backward(dy, SHAPE, mode)
    np.testing.assert_allclose(to_numpy(fn(*args)), want, rtol=1e-4, atol=1e-4)
    n = SHAPE[0] * SIZE[0] * SIZE[1] * SHAPE[3]
    timed(benchmark, fn, *args, group=f"resize_{direction}", row=mode, impl=impl, work=n, unit="Gelem/s",
          row_name="interpolation")


def main(rounds=7):
    """Engine vs PyTorch, interleaved: each mode and direction."""
    from _util import interleaved, print_interleaved
    cases = {f"upsampling {mode} {direction}": {impl: (lambda f=_impl(impl, mode, direction): f[0](*f[1]))
                                                for impl in ("cpu", "torch")}
             for mode in MODES for direction in ("forward", "backward")}
    print_interleaved("engine vs PyTorch, interleaved medians", interleaved(cases, rounds))


if __name__ == "__main__":
    import sys
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
