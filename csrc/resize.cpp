// csrc/resize.cpp (namespace engine): resizing NHWC images by separable interpolation (UpSampling2D's
// 'nearest' and 'bilinear') and its gradient. Matches engine/ref/resize.py, which explains the math:
//     y  = A_h x A_w^T  (per image and channel)        dx = A_h^T dy A_w
// A along one axis is a list of taps for each output index o: input index and weight (axis_taps below, the same
// arithmetic as engine/ref/resize.py axis_taps, in double; a zero weight is no tap).
// Dimensions: N batch, H/W input height/width, C channels, OH/OW output height/width.
//
// Both directions do the work in two passes per row so that the long loop runs over whole contiguous rows
// (OW * C or W * C floats), which vectorises for any C, even C = 1:
//   forward, for output row (n, o):  t = sum over row taps (i, w) of w * x[n, i]   (a blend of input rows)
//                                    y[n, o, p] = sum over column taps (j, v) of v * t[j]
//   backward, for input row (n, i):  s = sum over (o, w) with o reading row i of w * dy[n, o]
//                                    dx[n, i, j] = sum over (p, v) with p reading column j of v * s[p]
// Each output row of a pass is written by one thread, in a fixed order: the result does not depend on the
// thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "kernels.h"

namespace engine {

namespace {

// Taps as lists: entries [start[r], start[r + 1]) of (index, weight) for row r. Built from the 2-per-output
// arrays without the zero-weight taps, either as they are (forward) or transposed (backward: for each input
// index, the outputs that read it, in increasing order).
struct TapLists {
    std::vector<int64_t> start, index;
    std::vector<float> weight;
};

// engine/ref/resize.py axis_taps: two (index, weight) taps per output index, row-major (out, 2).
void axis_taps(int64_t in, int64_t out, bool bilinear, std::vector<int64_t>& index, std::vector<float>& weight) {
    index.resize(2 * out);
    weight.resize(2 * out);
    for (int64_t o = 0; o < out; o++) {
        if (!bilinear) {
            const int64_t i = std::min<int64_t>(static_cast<int64_t>(std::floor(double(o) * in / out)), in - 1);
            index[2 * o] = index[2 * o + 1] = i;
            weight[2 * o] = 1.0f;
            weight[2 * o + 1] = 0.0f;
            continue;
        }
        const double t = std::clamp((double(o) + 0.5) * in / out - 0.5, 0.0, double(in - 1));
        const int64_t i0 = static_cast<int64_t>(std::floor(t));
        const double frac = t - double(i0);
        index[2 * o] = i0;
        index[2 * o + 1] = std::min<int64_t>(i0 + 1, in - 1);
        weight[2 * o] = static_cast<float>(1.0 - frac);
        weight[2 * o + 1] = static_cast<float>(frac);
    }
}

TapLists tap_lists(int64_t in, int64_t out, bool bilinear, bool transpose) {
    std::vector<int64_t> index_;
    std::vector<float> weight_;
    axis_taps(in, out, bilinear, index_, weight_);
    const int64_t* index = index_.data();
    const float* weight = weight_.data();
    TapLists t;
    const int64_t rows = transpose ? in : out;
    t.start.assign(rows + 1, 0);
    for (int64_t o = 0; o < out; o++)
        for (int k = 0; k < 2; k++)
            if (weight[2 * o + k] != 0.0f) t.start[(transpose ? index[2 * o + k] : o) + 1]++;
    for (int64_t r = 0; r < rows; r++) t.start[r + 1] += t.start[r];
    t.index.resize(t.start[rows]);
    t.weight.resize(t.start[rows]);
    std::vector<int64_t> fill(t.start.begin(), t.start.end() - 1);
    for (int64_t o = 0; o < out; o++)                   // increasing o: the transposed lists come out sorted
        for (int k = 0; k < 2; k++) {
            const float w = weight[2 * o + k];
            if (w == 0.0f) continue;
            const int64_t r = transpose ? index[2 * o + k] : o;
            t.index[fill[r]] = transpose ? o : index[2 * o + k];
            t.weight[fill[r]++] = w;
        }
    return t;
}

// The blend of whole rows (each `n` floats, `stride` apart) named by row r's taps, vectorised on n. A row that
// reads one source row with weight 1 (nearest) is that row itself: no copy. Otherwise the first tap writes
// out and the others add to it (no separate zeroing pass).
ENGINE_INLINE const float* blend_rows(float* __restrict out, const float* __restrict base, int64_t stride,
                                      int64_t n, const TapLists& taps, int64_t r) {
    const int64_t first = taps.start[r], last = taps.start[r + 1];
    if (last - first == 1 && taps.weight[first] == 1.0f) return base + taps.index[first] * stride;
    if (first == last) {
        std::fill(out, out + n, 0.0f);
        return out;
    }
    const float w0 = taps.weight[first];
    const float* __restrict src0 = base + taps.index[first] * stride;
    for (int64_t k = 0; k < n; k++) out[k] = w0 * src0[k];
    for (int64_t e = first + 1; e < last; e++) {
        const float w = taps.weight[e];
        const float* __restrict src = base + taps.index[e] * stride;
        for (int64_t k = 0; k < n; k++) out[k] += w * src[k];
    }
    return out;
}

// out[p * C + c] = sum over the taps of pixel p of w * row[index * C + c]: the pass along one row (a copy for a
// pixel that reads one pixel with weight 1).
ENGINE_INLINE void blend_pixels(float* __restrict out, const float* __restrict row, int64_t pixels, int64_t C,
                                const TapLists& taps) {
    for (int64_t p = 0; p < pixels; p++) {
        float* __restrict dst = out + p * C;
        const int64_t first = taps.start[p], last = taps.start[p + 1];
        if (first == last) {
            std::fill(dst, dst + C, 0.0f);
            continue;
        }
        const float w0 = taps.weight[first];
        const float* __restrict src0 = row + taps.index[first] * C;
        if (w0 == 1.0f)
            std::copy(src0, src0 + C, dst);
        else
            for (int64_t c = 0; c < C; c++) dst[c] = w0 * src0[c];
        for (int64_t e = first + 1; e < last; e++) {
            const float w = taps.weight[e];
            const float* __restrict src = row + taps.index[e] * C;
            for (int64_t c = 0; c < C; c++) dst[c] += w * src[c];
        }
    }
}

// The shared two-pass loop: for each destination row (n, r) of `rows_out`, blend whole source rows with
// `by_row`, then the pixels of the blended row with `by_pixel`.
void two_pass(float* dst, const float* src, int64_t N, int64_t src_rows, int64_t src_pixels, int64_t rows_out,
              int64_t pixels_out, int64_t C, const TapLists& by_row, const TapLists& by_pixel) {
    const int64_t src_row = src_pixels * C, dst_row = pixels_out * C;
    #pragma omp parallel if (parallel_worth_it(N * rows_out * (src_row + dst_row), 4))
    {
        std::vector<float> blended(src_row);
        #pragma omp for schedule(static)
        for (int64_t nr = 0; nr < N * rows_out; nr++) {
            const int64_t n = nr / rows_out, r = nr % rows_out;
            simd_dispatch([&] {
                const float* rows = blend_rows(blended.data(), src + n * src_rows * src_row, src_row, src_row, by_row, r);
                blend_pixels(dst + nr * dst_row, rows, pixels_out, C, by_pixel);
            });
        }
    }
}

}  // namespace

void resize_forward(float* y, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, int64_t OH, int64_t OW,
                    bool bilinear) {
    const TapLists rows = tap_lists(H, OH, bilinear, false), cols = tap_lists(W, OW, bilinear, false);
    two_pass(y, x, N, H, W, OH, OW, C, rows, cols);
}

void resize_backward(float* dx, const float* dy, int64_t N, int64_t H, int64_t W, int64_t C, int64_t OH,
                     int64_t OW, bool bilinear) {
    // The transposed taps: for each input row (column), the output rows (columns) that read it.
    const TapLists rows = tap_lists(H, OH, bilinear, true), cols = tap_lists(W, OW, bilinear, true);
    two_pass(dx, dy, N, OH, OW, H, W, C, rows, cols);
}

}  // namespace engine
