// csrc/pool2d.cpp (namespace engine): max and average pooling, forward and backward. Matches
// engine/ref/pool2d.py. Dimensions: N batch, H/W input, C channels, KH/KW the pool window, SH/SW strides,
// OH/OW output (the geometry lives in Window2d; dilation is 1).
//
// Layout: NHWC. For each output pixel the window is clipped to the real input (padding never counts), and
// the inner loop runs over the C contiguous channels, so it vectorises. channels_first input (N, C, H, W)
// needs no transpose: it is NHWC with N * C images of one channel (csrc/bind_cpu/bind_pool2d.cpp passes it so).
//
// Max pooling keeps, per output, the input position h * W + w it came from (argmax, int32): the first
// maximum of the window in row-major order, or the first NaN (NaN propagates). The backward adds each
// output's gradient to that position (walking the window again, so that it vectorises). Every loop over
// channels is compiled for the active SIMD path. Threads: OpenMP over images (over output rows in the
// forward); an output or an image is only ever written by one thread, in a fixed order: the bits do not
// depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"
#include "kernels.h"

namespace engine {

// The clipped window of output (oh, ow): rows [h0, h1), columns [w0, w1).
struct Span { int64_t h0, h1, w0, w1; };

static inline Span window(const Window2d& g, int64_t oh, int64_t ow) {
    const int64_t top = oh * g.SH - g.pad_top, left = ow * g.SW - g.pad_left;
    return {std::max<int64_t>(top, 0), std::min(g.H, top + g.KH), std::max<int64_t>(left, 0), std::min(g.W, left + g.KW)};
}

// body(n, o, s) for every output pixel o = (n * OH + oh) * OW + ow and its clipped window s: the output rows
// in one chunk per thread (each output is written by one thread), each chunk compiled for the active SIMD path.
template <class Body>
static void each_output(const Window2d& g, const Body& body) {
    simd_chunks(g.N * g.OH, g.OW * g.C * g.KH * g.KW, [&](int64_t lo, int64_t hi) {
        for (int64_t row = lo; row < hi; row++) {
            const int64_t n = row / g.OH, oh = row % g.OH;
            for (int64_t ow = 0; ow < g.OW; ow++) body(n, row * g.OW + ow, window(g, oh, ow));
        }
    });
}

void maxpool2d_forward(float* y, int32_t* argmax, const float* x, const Window2d& g) {
    const int64_t C = g.C;
    each_output(g, [&](int64_t n, int64_t o, const Span& s) {
        float* __restrict best = y + o * C;
        int32_t* __restrict where = argmax + o * C;
        const float* xi = x + n * g.H * g.W * C;
        const int32_t first = static_cast<int32_t>(s.h0 * g.W + s.w0);
        std::copy(xi + first * C, xi + (first + 1) * C, best);
        std::fill(where, where + C, first);
        for (int64_t h = s.h0; h < s.h1; h++)
            for (int64_t w = (h == s.h0 ? s.w0 + 1 : s.w0); w < s.w1; w++) {
                const float* __restrict v = xi + (h * g.W + w) * C;
                const int32_t pos = static_cast<int32_t>(h * g.W + w);
                for (int64_t c = 0; c < C; c++) {
                    // strictly larger wins (ties keep the first); a NaN wins over any number. Bitwise & and |
                    // (no short-circuit branches) let the compiler turn the loop into vector compares and blends.
                    const float vc = v[c], bc = best[c];
                    const bool take = (vc > bc) | ((vc != vc) & (bc == bc));
                    best[c] = take ? vc : bc;
                    where[c] = take ? pos : where[c];
                }
            }
    });
}

// v where take, else +0 (which changes no bits of d: d starts at +0 and a sum is never -0). Bit masking, not a
// select, so that the loop has no branch and vectorises.
static inline float share_if(bool take, float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    bits &= 0u - static_cast<uint32_t>(take);
    std::memcpy(&v, &bits, sizeof bits);
    return v;
}

// Walks each output's window like the forward, instead of scattering through argmax: each input position
// of the window takes the output's gradient where its argmax points there. A compare and a masked add over
// the C contiguous channels vectorise; a scatter (dx[argmax * C + c] += dy) does not. Overlapping windows add
// into a position in output order, as the scatter would. Every output's argmax must match one position of
// its window: the matches are counted, and the shortfall returned.
int64_t maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, const Window2d& g) {
    const int64_t C = g.C, outputs = g.OH * g.OW * C;
    std::vector<int64_t> matched(g.N, 0);
    #pragma omp parallel for schedule(static) if (parallel_worth_it(g.N * (outputs + g.H * g.W * C)) && g.N > 1)
    for (int64_t n = 0; n < g.N; n++) simd_dispatch([&] {     // one image, compiled for the active SIMD path
        float* __restrict dxi = dx + n * g.H * g.W * C;
        std::fill(dxi, dxi + g.H * g.W * C, 0.0f);
        int64_t hits = 0;
        for (int64_t oh = 0; oh < g.OH; oh++)
            for (int64_t ow = 0; ow < g.OW; ow++) {
                const Span s = window(g, oh, ow);
                const int64_t o = n * outputs + (oh * g.OW + ow) * C;
                const float* __restrict share = dy + o;
                const int32_t* __restrict where = argmax + o;
                for (int64_t h = s.h0; h < s.h1; h++)
                    for (int64_t w = s.w0; w < s.w1; w++) {
                        float* __restrict d = dxi + (h * g.W + w) * C;
                        const int32_t pos = static_cast<int32_t>(h * g.W + w);
                        int32_t found = 0;
                        for (int64_t c = 0; c < C; c++) {
                            d[c] += share_if(where[c] == pos, share[c]);
                            found += where[c] == pos;
                        }
                        hits += found;
                    }
            }
        matched[n] = hits;
    });
    int64_t total = 0;
    for (int64_t n = 0; n < g.N; n++) total += matched[n];
    return g.N * outputs - total;
}

int64_t maxpool2d_argmax_outside(const int32_t* argmax, const Window2d& g) {
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t oh = 0; oh < g.OH; oh++)
            for (int64_t ow = 0; ow < g.OW; ow++) {
                const Span s = window(g, oh, ow);
                const int64_t o = ((n * g.OH + oh) * g.OW + ow) * g.C;
                for (int64_t c = 0; c < g.C; c++) {
                    const int64_t h = argmax[o + c] / g.W, w = argmax[o + c] % g.W;
                    if (argmax[o + c] < 0 || h < s.h0 || h >= s.h1 || w < s.w0 || w >= s.w1) return o + c;
                }
            }
    return -1;
}

void avgpool2d_forward(float* y, const float* x, const Window2d& g) {
    const int64_t C = g.C;
    each_output(g, [&](int64_t n, int64_t o, const Span& s) {
        float* __restrict out = y + o * C;
        const float* xi = x + n * g.H * g.W * C;
        std::fill(out, out + C, 0.0f);
        for (int64_t h = s.h0; h < s.h1; h++)
            for (int64_t w = s.w0; w < s.w1; w++) {
                const float* __restrict v = xi + (h * g.W + w) * C;
                for (int64_t c = 0; c < C; c++) out[c] += v[c];
            }
        const float count = static_cast<float>((s.h1 - s.h0) * (s.w1 - s.w0));
        for (int64_t c = 0; c < C; c++) out[c] /= count;
    });
}

void avgpool2d_backward(float* dx, const float* dy, const Window2d& g) {
    const int64_t C = g.C, outputs = g.OH * g.OW * C;
    #pragma omp parallel for schedule(static) if (parallel_worth_it(g.N * g.OH * g.OW * C * g.KH * g.KW) && g.N > 1)
    for (int64_t n = 0; n < g.N; n++) simd_dispatch([&] {     // one image, compiled for the active SIMD path
        float* dxi = dx + n * g.H * g.W * C;
        std::fill(dxi, dxi + g.H * g.W * C, 0.0f);
        for (int64_t oh = 0; oh < g.OH; oh++)
            for (int64_t ow = 0; ow < g.OW; ow++) {
                const Span s = window(g, oh, ow);
                const float* __restrict share = dy + n * outputs + (oh * g.OW + ow) * C;
                const float count = static_cast<float>((s.h1 - s.h0) * (s.w1 - s.w0));
                for (int64_t h = s.h0; h < s.h1; h++)
                    for (int64_t w = s.w0; w < s.w1; w++) {
                        float* __restrict d = dxi + (h * g.W + w) * C;
                        for (int64_t c = 0; c < C; c++) d[c] += share[c] / count;
                    }
            }
    });
}

}  // namespace engine
