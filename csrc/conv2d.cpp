// csrc/conv2d.cpp (namespace engine): 2-D convolution as im2col + GEMM, col2im for the input gradient, and
// the direct nested-loop convolution of the ladder. Matches engine/ref/conv2d.py.
// Dimensions: N batch, H/W input height/width, C input channels, F filters, KH/KW kernel, SH/SW strides,
// DH/DW dilation, OH/OW output; KKC = KH * KW * C, the length of one receptive field.
//
// Layout: NHWC (Keras' channels_last) throughout, with Keras' kernel (KH, KW, C, F). Why NHWC: one row of
// im2col is KH * KW runs of C contiguous input values (memcpy), the kernel is already the (KKC, F) matrix
// of the GEMM, and the GEMM's output (pixels, F) is already the NHWC output: no transposes anywhere.
// channels_first input is transposed at the edges (csrc/bind_cpu/bind_conv2d.cpp, with transpose_inner below).
//
// The ladder (engine.ladder, family 'conv2d'):
//   conv2d_forward_v1   direct nested loops: for each output value, the sum over kh, kw, c. No copies,
//                       no GEMM, one thread: the definition, and the speed of plain loops
//   (the Cython rung, engine/_im2col_cython.pyx, and the NumPy reference sit between these two)
//   conv2d_forward_v2   im2col + GEMM: im2col one block (whole images, or rows of one large image) at a time
//                       into a buffer that stays in cache, then the packed SIMD GEMM (matmul_forward) writes the
//                       block's outputs, bias included.
//                       OpenMP over blocks (each thread runs its GEMMs alone), or over the GEMM itself when
//                       there are too few blocks to share.
//   conv2d_forward_v3   (conv2d_winograd.cpp) 3x3, stride 1 (any dilation): Winograd's F(2x2, 3x3), 2.25x
//                       fewer multiply-adds. conv2d_forward and conv2d_backward take it wherever it applies
//                       (conv2d_winograd_applies), im2col everywhere else.
//
// Determinism: blocks depend on the shape only; every output is written by one thread; the weight
// gradient is summed in slices of images fixed by the shape, added in slice order; col2im adds into one
// image on one thread, in a fixed order. The bits do not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common.h"
#include "kernels.h"

namespace engine {

// An im2col block holds about this many floats (256 KiB: it stays in L2 while the GEMM packs it).
constexpr int64_t kColsBlock = int64_t{1} << 16;

static int64_t receptive(const Window2d& g) { return g.KH * g.KW * g.C; }

// A block of im2col rows, about kColsBlock floats: whole images [n0, n1) when at least one fits, else output
// rows [oh0, oh1) of one image. Its rows are consecutive rows of y and dy, from (n0 * OH + oh0) * OW on.
struct Block { int64_t n0, n1, oh0, oh1; };

static std::vector<Block> blocks_of(const Window2d& g, int64_t n0, int64_t n1) {
    const int64_t row = g.OW * receptive(g), images = kColsBlock / std::max<int64_t>(1, g.OH * row);
    std::vector<Block> out;
    if (images >= 1) {
        for (int64_t n = n0; n < n1; n += images) out.push_back({n, std::min(n1, n + images), 0, g.OH});
        return out;
    }
    const int64_t rows = std::max<int64_t>(1, kColsBlock / std::max<int64_t>(1, row));
    for (int64_t n = n0; n < n1; n++)
        for (int64_t oh = 0; oh < g.OH; oh += rows) out.push_back({n, n + 1, oh, std::min(g.OH, oh + rows)});
    return out;
}

// Buffers that live as long as their thread (OpenMP keeps its workers between regions): a new vector each
// call would be a fresh mmap of a few hundred KiB, and every call would pay its page faults again.
static std::vector<float>& thread_buffer(int which) {
    thread_local std::vector<float> buffers[4];
    return buffers[which];
}
enum Buffer { kCols = 0, kDcols = 1, kPartial = 2, kKernelT = 3 };

static int64_t block_rows(const Window2d& g, const Block& b) { return (b.n1 - b.n0) * (b.oh1 - b.oh0) * g.OW; }
static int64_t block_start(const Window2d& g, const Block& b) { return (b.n0 * g.OH + b.oh0) * g.OW; }

static bool is_pointwise(const Window2d& g) {     // 1x1, stride 1, no padding: the input is already cols
    return g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.pad_top == 0 && g.pad_left == 0 && g.OH == g.H &&
           g.OW == g.W;
}

// ---------------------------------------------------------------------------------------------------
// im2col and col2im for one image (x: H x W x C) and output rows [oh0, oh1). Row (oh - oh0) * OW + ow of
// cols is the receptive field of output pixel (oh, ow): KH * KW runs of C values, zeros in the padding.

// The output columns [lo, hi) whose tap at input column `offset` + ow * SW lies inside the image.
static void inside_columns(const Window2d& g, int64_t offset, int64_t* lo, int64_t* hi) {
    *lo = offset >= 0 ? 0 : std::min(g.OW, (-offset + g.SW - 1) / g.SW);
    *hi = offset >= g.W ? 0 : std::min(g.OW, (g.W - 1 - offset) / g.SW + 1);
    *hi = std::max(*hi, *lo);
}

void im2col(float* cols, const float* x, const Window2d& g, int64_t oh0, int64_t oh1) {
    // Loops: output row, kernel row, kernel column, then the output columns; the columns whose tap falls in the
    // padding are worked out once per kernel column, so the copy loop has no bounds checks.
    const int64_t C = g.C, KKC = receptive(g);
    for (int64_t oh = oh0; oh < oh1; oh++) {
        float* out_row = cols + (oh - oh0) * g.OW * KKC;
        for (int64_t kh = 0; kh < g.KH; kh++) {
            const int64_t ih = oh * g.SH - g.pad_top + kh * g.DH;
            for (int64_t kw = 0; kw < g.KW; kw++) {
                float* dst = out_row + (kh * g.KW + kw) * C;
                const int64_t offset = kw * g.DW - g.pad_left;      // input column of output column 0's tap
                int64_t lo = g.OW, hi = g.OW;
                if (ih >= 0 && ih < g.H) inside_columns(g, offset, &lo, &hi);
                const int64_t first = ih * g.W + offset;             // x pixel of output column 0 (if inside)
                for (int64_t ow = 0; ow < lo; ow++) std::fill(dst + ow * KKC, dst + ow * KKC + C, 0.0f);
                if (C == 1) {                    // one value: a memcpy call per value would cost more than the copy
                    for (int64_t ow = lo; ow < hi; ow++) dst[ow * KKC] = x[first + ow * g.SW];
                } else {
                    for (int64_t ow = lo; ow < hi; ow++)
                        std::memcpy(dst + ow * KKC, x + (first + ow * g.SW) * C, C * sizeof(float));
                }
                for (int64_t ow = hi; ow < g.OW; ow++) std::fill(dst + ow * KKC, dst + ow * KKC + C, 0.0f);
            }
        }
    }
}

void col2im(float* dx, const float* cols, const Window2d& g, int64_t oh0, int64_t oh1) {
    const int64_t C = g.C, KKC = receptive(g);           // im2col's loops, adding instead of copying
    for (int64_t oh = oh0; oh < oh1; oh++) {
        const float* in_row = cols + (oh - oh0) * g.OW * KKC;
        for (int64_t kh = 0; kh < g.KH; kh++) {
            const int64_t ih = oh * g.SH - g.pad_top + kh * g.DH;
            if (ih < 0 || ih >= g.H) continue;
            for (int64_t kw = 0; kw < g.KW; kw++) {
                const float* src = in_row + (kh * g.KW + kw) * C;
                const int64_t offset = kw * g.DW - g.pad_left;
                int64_t lo, hi;
                inside_columns(g, offset, &lo, &hi);
                const int64_t first = ih * g.W + offset;
                for (int64_t ow = lo; ow < hi; ow++) {
                    float* dst = dx + (first + ow * g.SW) * C;
                    for (int64_t c = 0; c < C; c++) dst[c] += src[ow * KKC + c];
                }
            }
        }
    }
}

// The same for a block: each of its images in turn.
static void im2col_block(float* cols, const float* x, const Window2d& g, const Block& b) {
    const int64_t image = g.H * g.W * g.C, per_image = (b.oh1 - b.oh0) * g.OW * receptive(g);
    for (int64_t n = b.n0; n < b.n1; n++) im2col(cols + (n - b.n0) * per_image, x + n * image, g, b.oh0, b.oh1);
}

static void col2im_block(float* dx, const float* cols, const Window2d& g, const Block& b) {
    const int64_t image = g.H * g.W * g.C, per_image = (b.oh1 - b.oh0) * g.OW * receptive(g);
    for (int64_t n = b.n0; n < b.n1; n++) col2im(dx + n * image, cols + (n - b.n0) * per_image, g, b.oh0, b.oh1);
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
    if (g.N > 0 && conv2d_winograd_applies(g, F)) return conv2d_forward_v3(y, x, kernel, bias, g, F);   // Winograd
    conv2d_forward_v2(y, x, kernel, bias, g, F);                                                           // im2col
}

void conv2d_forward_v2(float* y, const float* x, const float* kernel, const float* bias, const Window2d& g,
                       int64_t F) {
    const int64_t K = receptive(g), pixels = g.OH * g.OW;
    if (g.N == 0 || pixels == 0 || F == 0) return;
    if (is_pointwise(g)) {                         // the input (N * H * W, C) is the cols matrix
        block_gemm(y, x, kernel, bias, g.N * pixels, K, F);
        return;
    }
    const std::vector<Block> blocks = blocks_of(g, 0, g.N);
    auto run = [&](const Block& b, std::vector<float>& cols) {
        cols.resize(block_rows(g, b) * K);
        im2col_block(cols.data(), x, g, b);
        block_gemm(y + block_start(g, b) * F, cols.data(), kernel, bias, block_rows(g, b), K, F);
    };
    const int64_t count = static_cast<int64_t>(blocks.size());
    if (share_blocks(count, g.N * pixels * K * F)) {
        #pragma omp parallel
        {
            std::vector<float>& cols = thread_buffer(kCols);
            #pragma omp for schedule(dynamic, 1)      // a thread slowed by other work takes fewer blocks
            for (int64_t b = 0; b < count; b++) run(blocks[b], cols);
        }
    } else {
        for (const Block& b : blocks) run(b, thread_buffer(kCols));
    }
}

// ---------------------------------------------------------------------------------------------------
// Backward: dbias = column sums of dY, dkernel = cols^T @ dY, dx = col2im(dY @ kernel^T) (skipped when dx is
// nullptr: the first layer of a network needs no gradient for its input).

// The weight gradient is a sum over images. The images are cut into at most kSlices slices (by the shape, never
// by the thread count); each slice sums its own partial dkernel, one image block at a time, and the partials are
// added in slice order at the end: the same bits for any number of threads. The partials take at most
// kPartialFloats floats (fewer slices for a large kernel).
constexpr int64_t kSlices = 16;
constexpr int64_t kPartialFloats = int64_t{1} << 22;

// One slice of images [n0, n1): per block, im2col (kept in cache), dkernel (+)= cols^T @ dY, and (when dx is
// wanted) dcols = dY @ kernel^T, which col2im adds into the image's dx. kernel^T comes transposed already
// (kernel_t, (F, KKC)): the GEMM then reads it in place when it is small, instead of packing it every block.
static void backward_slice(float* dx, float* dkernel, const float* dy, const float* x, const float* kernel_t,
                           const Window2d& g, int64_t F, int64_t n0, int64_t n1, std::vector<float>& cols,
                           std::vector<float>& dcols) {
    const int64_t K = receptive(g), image = g.H * g.W * g.C;
    bool first = true;
    for (const Block& b : blocks_of(g, n0, n1)) {
        const int64_t rows = block_rows(g, b);
        const float* dy_block = dy + block_start(g, b) * F;
        cols.resize(rows * K);
        im2col_block(cols.data(), x, g, b);
        matmul_forward(dkernel, cols.data(), dy_block, K, F, rows, true, false, !first);   // cols^T @ dY
        first = false;
        if (dx == nullptr) continue;
        if (b.oh0 == 0) std::fill(dx + b.n0 * image, dx + b.n1 * image, 0.0f);      // the block's images start here
        dcols.resize(rows * K);
        matmul_forward(dcols.data(), dy_block, kernel_t, rows, K, F, false, false, false);  // dY @ kernel^T
        col2im_block(dx, dcols.data(), g, b);
    }
}

void conv2d_backward(float* dx, float* dkernel, float* dbias, const float* dy, const float* x, const float* kernel,
                     const Window2d& g, int64_t F) {
    const int64_t K = receptive(g), pixels = g.OH * g.OW, image = g.H * g.W * g.C;
    if (dbias != nullptr) bias_add_backward(dbias, dy, g.N * pixels, F);
    if (g.N == 0 || pixels == 0 || F == 0 || K == 0) {              // sums over nothing are zero
        std::fill(dkernel, dkernel + K * F, 0.0f);
        if (dx != nullptr) std::fill(dx, dx + g.N * image, 0.0f);
        return;
    }
    if (conv2d_winograd_applies(g, F)) {
        if (dx != nullptr) conv2d_backward_input_winograd(dx, dy, kernel, g, F);
        return conv2d_backward_kernel_winograd(dkernel, dy, x, g, F);
    }
    if (is_pointwise(g)) {
        matmul_forward(dkernel, x, dy, K, F, g.N * pixels, true, false, false);    // x^T @ dY
        if (dx != nullptr) matmul_forward(dx, dy, kernel, g.N * pixels, K, F, false, true, false);  // dY @ kernel^T
        return;
    }
    const int64_t slices = std::max<int64_t>(1, std::min({g.N, kSlices, kPartialFloats / (K * F)}));
    // The calling thread's buffers (the workers only read and write them through these references).
    std::vector<float>& partial = thread_buffer(kPartial);        // (slices, KKC, F): dkernel per slice
    std::vector<float>& kernel_t = thread_buffer(kKernelT);       // (F, KKC)
    partial.resize(slices * K * F);
    kernel_t.resize(K * F);
    transpose_inner(kernel_t.data(), kernel, 1, K, F);
    auto run = [&](int64_t s, std::vector<float>& cols, std::vector<float>& dcols) {
        backward_slice(dx, partial.data() + s * K * F, dy, x, kernel_t.data(), g, F, g.N * s / slices,
                       g.N * (s + 1) / slices, cols, dcols);
    };
    if (share_blocks(slices, g.N * pixels * K * F)) {
        #pragma omp parallel
        {
            std::vector<float>& cols = thread_buffer(kCols);
            std::vector<float>& dcols = thread_buffer(kDcols);
            #pragma omp for schedule(dynamic, 1)      // any thread may take any slice: the bits stay the same
            for (int64_t s = 0; s < slices; s++) run(s, cols, dcols);
        }
    } else {                                     // few slices: one after another, each GEMM on the whole team
        for (int64_t s = 0; s < slices; s++) run(s, thread_buffer(kCols), thread_buffer(kDcols));
    }
    parallel_chunks(K * F, slices, [&](int64_t lo, int64_t hi) {      // dkernel = the partials, added in order
        for (int64_t i = lo; i < hi; i++) {
            float sum = partial[i];
            for (int64_t s = 1; s < slices; s++) sum += partial[s * K * F + i];
            dkernel[i] = sum;
        }
    });
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
