// csrc/conv2d.cpp (namespace engine): 2-D convolution as im2col + GEMM, col2im for the input gradient, and
// the direct nested-loop convolution of the ladder. Matches engine/ref/conv2d.py.
// Dimensions: N batch, H/W input height/width, C input channels, F filters, KH/KW kernel, SH/SW strides,
// DH/DW dilation, OH/OW output; KKC = KH * KW * C, the length of one receptive field.
//
// Layout: NHWC (Keras' channels_last) throughout, with Keras' kernel (KH, KW, C, F). Why NHWC: one row of
// im2col is KH * KW runs of C contiguous input values (memcpy), the kernel is already the (KKC, F) matrix
// of the GEMM, and the GEMM's output (pixels, F) is already the NHWC output: no transposes anywhere.
// channels_first input is transposed at the edges (csrc/bind_cpu.cpp, with transpose_inner below).
//
// The ladder (engine.ladder, family 'conv2d'):
//   conv2d_forward_v1   direct nested loops: for each output value, the sum over kh, kw, c. No copies,
//                       no GEMM, one thread: the definition, and the speed of plain loops
//   (the Cython rung, engine/_im2col_cython.pyx, and the NumPy reference sit between these two)
//   conv2d_forward      im2col one block of output rows at a time into a buffer that stays in cache, then
//                       the packed SIMD GEMM (matmul_forward) writes the block's outputs, bias included.
//                       OpenMP over blocks (each thread runs its GEMMs alone), or over the GEMM itself when
//                       there are too few blocks to share.
//
// Determinism: blocks depend on the shape only; every output is written by one thread; the weight
// gradient is one GEMM per group of images (groups fixed by the shape), added in group order; col2im
// adds into one image on one thread, in a fixed order. The bits do not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common.h"
#include "kernels.h"

namespace engine {

// An im2col block holds about this many floats (256 KiB: it stays in L2 while the GEMM packs it).
constexpr int64_t kColsBlock = int64_t{1} << 16;
// The backward keeps whole images' columns for the weight-gradient GEMM, at most this many floats at a
// time (64 MiB); more images than that are done in groups.
constexpr int64_t kColsGroup = int64_t{1} << 24;

static int64_t receptive(const Window2d& g) { return g.KH * g.KW * g.C; }

// Output rows per block: at least one, as many as fit in kColsBlock.
static int64_t block_rows(const Window2d& g) {
    return std::max<int64_t>(1, std::min<int64_t>(g.OH, kColsBlock / std::max<int64_t>(1, g.OW * receptive(g))));
}

static bool is_pointwise(const Window2d& g) {     // 1x1, stride 1, no padding: the input is already cols
    return g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.pad_top == 0 && g.pad_left == 0 && g.OH == g.H &&
           g.OW == g.W;
}

// ---------------------------------------------------------------------------------------------------
// im2col and col2im for one image (x: H x W x C) and output rows [oh0, oh1). Row (oh - oh0) * OW + ow of
// cols is the receptive field of output pixel (oh, ow): KH * KW runs of C values, zeros in the padding.

void im2col(float* cols, const float* x, const Window2d& g, int64_t oh0, int64_t oh1) {
    const int64_t C = g.C, KKC = receptive(g);
    for (int64_t oh = oh0; oh < oh1; oh++)
        for (int64_t ow = 0; ow < g.OW; ow++) {
            float* row = cols + ((oh - oh0) * g.OW + ow) * KKC;
            for (int64_t kh = 0; kh < g.KH; kh++) {
                const int64_t ih = oh * g.SH - g.pad_top + kh * g.DH;
                float* dst = row + kh * g.KW * C;
                if (ih < 0 || ih >= g.H) {
                    std::fill(dst, dst + g.KW * C, 0.0f);
                    continue;
                }
                for (int64_t kw = 0; kw < g.KW; kw++) {
                    const int64_t iw = ow * g.SW - g.pad_left + kw * g.DW;
                    if (iw < 0 || iw >= g.W)
                        std::fill(dst + kw * C, dst + (kw + 1) * C, 0.0f);
                    else
                        std::memcpy(dst + kw * C, x + (ih * g.W + iw) * C, C * sizeof(float));
                }
            }
        }
}

void col2im(float* dx, const float* cols, const Window2d& g, int64_t oh0, int64_t oh1) {
    const int64_t C = g.C, KKC = receptive(g);
    for (int64_t oh = oh0; oh < oh1; oh++)
        for (int64_t ow = 0; ow < g.OW; ow++) {
            const float* row = cols + ((oh - oh0) * g.OW + ow) * KKC;
            for (int64_t kh = 0; kh < g.KH; kh++) {
                const int64_t ih = oh * g.SH - g.pad_top + kh * g.DH;
                if (ih < 0 || ih >= g.H) continue;
                for (int64_t kw = 0; kw < g.KW; kw++) {
                    const int64_t iw = ow * g.SW - g.pad_left + kw * g.DW;
                    if (iw < 0 || iw >= g.W) continue;
                    const float* src = row + (kh * g.KW + kw) * C;
                    float* dst = dx + (ih * g.W + iw) * C;
                    for (int64_t c = 0; c < C; c++) dst[c] += src[c];
                }
            }
        }
}

// ---------------------------------------------------------------------------------------------------
// Forward: y (N, OH, OW, F) = im2col(x) @ kernel (KKC, F) + bias.

// The GEMM of one block: y rows = bias (or 0) + cols @ kernel. Inside a parallel region the GEMM's own
// team is inactive (nested), so it runs on the calling thread alone.
static void block_gemm(float* y, const float* cols, const float* kernel, const float* bias, int64_t rows,
                       int64_t K, int64_t F) {
    if (bias != nullptr)
        for (int64_t r = 0; r < rows; r++) std::memcpy(y + r * F, bias, F * sizeof(float));
    matmul_forward(y, cols, kernel, rows, F, K, false, false, bias != nullptr);
}

// Share whole blocks among the threads only when each gets several: otherwise the GEMM shares the work.
static bool share_blocks(int64_t blocks, int64_t work) {
    const int64_t threads = omp_get_max_threads();
    return threads > 1 && blocks >= 2 * threads && parallel_worth_it(work);
}

void conv2d_forward(float* y, const float* x, const float* kernel, const float* bias, const Window2d& g,
                    int64_t F) {
    const int64_t K = receptive(g), pixels = g.OH * g.OW;
    if (g.N == 0 || pixels == 0 || F == 0) return;
    if (is_pointwise(g)) {                         // the input (N * H * W, C) is the cols matrix
        block_gemm(y, x, kernel, bias, g.N * pixels, K, F);
        return;
    }
    const int64_t rows_per_block = block_rows(g), per_image = (g.OH + rows_per_block - 1) / rows_per_block;
    const int64_t blocks = g.N * per_image;
    auto run = [&](int64_t b, std::vector<float>& cols) {
        const int64_t n = b / per_image, oh0 = (b % per_image) * rows_per_block;
        const int64_t oh1 = std::min(g.OH, oh0 + rows_per_block), rows = (oh1 - oh0) * g.OW;
        cols.resize(rows * K);
        im2col(cols.data(), x + n * g.H * g.W * g.C, g, oh0, oh1);
        block_gemm(y + (n * pixels + oh0 * g.OW) * F, cols.data(), kernel, bias, rows, K, F);
    };
    if (share_blocks(blocks, g.N * pixels * K * F)) {
        #pragma omp parallel
        {
            std::vector<float> cols;
            #pragma omp for schedule(static)
            for (int64_t b = 0; b < blocks; b++) run(b, cols);
        }
    } else {
        std::vector<float> cols;
        for (int64_t b = 0; b < blocks; b++) run(b, cols);
    }
}

// ---------------------------------------------------------------------------------------------------
// Backward: dbias = column sums of dY, dkernel = cols^T @ dY, dx = col2im(dY @ kernel^T).

// dx of one image: block by block, dcols = dY rows @ kernel^T, then col2im adds them into dx.
static void image_input_grad(float* dx, const float* dy, const float* kernel, const Window2d& g, int64_t F,
                             std::vector<float>& dcols) {
    const int64_t K = receptive(g), rows_per_block = block_rows(g);
    std::fill(dx, dx + g.H * g.W * g.C, 0.0f);
    for (int64_t oh0 = 0; oh0 < g.OH; oh0 += rows_per_block) {
        const int64_t oh1 = std::min(g.OH, oh0 + rows_per_block), rows = (oh1 - oh0) * g.OW;
        dcols.resize(rows * K);
        matmul_forward(dcols.data(), dy + oh0 * g.OW * F, kernel, rows, K, F, false, true, false);
        col2im(dx, dcols.data(), g, oh0, oh1);
    }
}

void conv2d_backward(float* dx, float* dkernel, float* dbias, const float* dy, const float* x, const float* kernel,
                     const Window2d& g, int64_t F) {
    const int64_t K = receptive(g), pixels = g.OH * g.OW, image = g.H * g.W * g.C;
    if (dbias != nullptr) bias_add_backward(dbias, dy, g.N * pixels, F);
    if (g.N == 0 || pixels == 0 || F == 0 || K == 0) {              // sums over nothing are zero
        std::fill(dkernel, dkernel + K * F, 0.0f);
        std::fill(dx, dx + g.N * image, 0.0f);
        return;
    }
    if (is_pointwise(g)) {
        matmul_forward(dkernel, x, dy, K, F, g.N * pixels, true, false, false);    // x^T @ dY
        matmul_forward(dx, dy, kernel, g.N * pixels, K, F, false, true, false);    // dY @ kernel^T
        return;
    }
    const int64_t group = std::max<int64_t>(1, std::min<int64_t>(g.N, kColsGroup / (pixels * K)));
    std::vector<float> cols(group * pixels * K);
    for (int64_t n0 = 0; n0 < g.N; n0 += group) {
        const int64_t n1 = std::min(g.N, n0 + group);
        auto run = [&](int64_t n, std::vector<float>& dcols) {
            im2col(cols.data() + (n - n0) * pixels * K, x + n * image, g, 0, g.OH);
            image_input_grad(dx + n * image, dy + n * pixels * F, kernel, g, F, dcols);
        };
        if (share_blocks(n1 - n0, (n1 - n0) * pixels * K * F)) {
            #pragma omp parallel
            {
                std::vector<float> dcols;
                #pragma omp for schedule(static)
                for (int64_t n = n0; n < n1; n++) run(n, dcols);
            }
        } else {
            std::vector<float> dcols;
            for (int64_t n = n0; n < n1; n++) run(n, dcols);
        }
        // dkernel (K, F) (+)= cols^T (K, rows) @ dY (rows, F), rows = every pixel of the group
        matmul_forward(dkernel, cols.data(), dy + n0 * pixels * F, K, F, (n1 - n0) * pixels, true, false, n0 > 0);
    }
}

// ---------------------------------------------------------------------------------------------------
// Rung v1: the direct convolution, seven nested loops and nothing else.

void conv2d_forward_v1(float* y, const float* x, const float* kernel, const float* bias, const Window2d& g,
                       int64_t F) {
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t oh = 0; oh < g.OH; oh++)
            for (int64_t ow = 0; ow < g.OW; ow++)
                for (int64_t f = 0; f < F; f++) {
                    float sum = bias != nullptr ? bias[f] : 0.0f;
                    for (int64_t kh = 0; kh < g.KH; kh++) {
                        const int64_t ih = oh * g.SH - g.pad_top + kh * g.DH;
                        if (ih < 0 || ih >= g.H) continue;                        // a row of zero padding
                        for (int64_t kw = 0; kw < g.KW; kw++) {
                            const int64_t iw = ow * g.SW - g.pad_left + kw * g.DW;
                            if (iw < 0 || iw >= g.W) continue;
                            for (int64_t c = 0; c < g.C; c++)
                                sum += x[((n * g.H + ih) * g.W + iw) * g.C + c] * kernel[((kh * g.KW + kw) * g.C + c) * F + f];
                        }
                    }
                    y[((n * g.OH + oh) * g.OW + ow) * F + f] = sum;
                }
}

// ---------------------------------------------------------------------------------------------------
// Layout changes at the edges: out[b, j, i] = in[b, i, j] for in (batch, R, S). NCHW -> NHWC is
// (N, C, H*W) -> (N, H*W, C); NHWC -> NCHW the reverse. Tiles of 32 x 32 keep both sides in cache.

void transpose_inner(float* out, const float* in, int64_t batch, int64_t R, int64_t S) {
    constexpr int64_t T = 32;
    const int64_t tiles_r = (R + T - 1) / T, tiles_s = (S + T - 1) / T;
    #pragma omp parallel for collapse(2) schedule(static) if (parallel_worth_it(batch * R * S))
    for (int64_t b = 0; b < batch; b++)
        for (int64_t t = 0; t < tiles_r * tiles_s; t++) {
            const int64_t r0 = (t / tiles_s) * T, s0 = (t % tiles_s) * T;
            const int64_t r1 = std::min(R, r0 + T), s1 = std::min(S, s0 + T);
            const float* src = in + b * R * S;
            float* dst = out + b * R * S;
            for (int64_t s = s0; s < s1; s++)
                for (int64_t r = r0; r < r1; r++) dst[s * R + r] = src[r * S + s];
        }
}

}  // namespace engine
