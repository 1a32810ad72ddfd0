# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The Cython rung of the conv2d ladder: im2col written as the Python loops a learner would write, made fast
by typed memoryviews (every index is a C integer, every element access a C array access: no Python objects
inside the loops). Matches engine.ref.conv2d.im2col; the GEMM that follows is NumPy's (engine/ladder.py).

Dimensions: N batch, H/W input, C channels, KH/KW kernel, SH/SW strides, DH/DW dilation, OH/OW output.
x is NHWC; cols is (N * OH * OW, KH * KW * C), zeros where a tap falls in the padding.
"""


def im2col(const float[:, :, :, ::1] x, float[:, ::1] cols, int KH, int KW, int SH, int SW, int DH, int DW,
           int pad_top, int pad_left, int OH, int OW):
    """Fill cols (N * OH * OW, KH * KW * C) from x (N, H, W, C)."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t n, oh, ow, kh, kw, c, ih, iw, row, col
    with nogil:
        for n in range(N):
            for oh in range(OH):
                for ow in range(OW):
                    row = (n * OH + oh) * OW + ow
                    for kh in range(KH):
                        ih = oh * SH - pad_top + kh * DH
                        for kw in range(KW):
                            iw = ow * SW - pad_left + kw * DW
                            col = (kh * KW + kw) * C
                            if ih < 0 or ih >= H or iw < 0 or iw >= W:
                                for c in range(C):
                                    cols[row, col + c] = 0.0
                            else:
                                for c in range(C):
                                    cols[row, col + c] = x[n, ih, iw, c]
