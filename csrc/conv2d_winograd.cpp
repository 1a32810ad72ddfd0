// csrc/conv2d_winograd.cpp (namespace engine): 3x3 convolution, stride 1, by Winograd's minimal
// filtering F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): the
// conv2d ladder's last rung, conv2d_forward_v3, and both gradients. Matches engine/ref/conv2d.py
// (conv2d_forward, and both gradients of conv2d_backward) to float32 rounding. A dilated kernel is one
// undilated convolution per phase (every DH-th row, DW-th column; see phases_of).
//
// The idea: a 2x2 block of outputs needs a 4x4 patch of input (a tile). In the transformed domain the
// convolution of the tile with the kernel is an element-wise product of two 4x4 arrays:
//     Y = A^T [ (G g G^T) * (B^T d B) ] A          (* element-wise; g the 3x3 kernel, d the 4x4 tile)
// Summed over the C input channels, each of the 16 positions of that product is a matrix product:
//     M[xi] (tiles x F) = V[xi] (tiles x C) @ U[xi] (C x F),   xi = 0..15
// 16 products of C x F multiply-adds per tile of 4 outputs: 4 per output and channel pair, against 9 for
// im2col + GEMM (2.25x fewer). The transforms are additions (and halvings, exact in binary), so the cost is
// a little more rounding: the error stays within a few float32 ulps of the products' magnitude.
//
//     G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]       (kernel: U = G g G^T, once per call)
//     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]          (input tile: V = B^T d B)
//     A^T = [1 1 1 0; 0 1 -1 -1]                             (output: Y = A^T M A, a 2x2 block)
//
// Layout and threads: NHWC, so every transform is a loop over the C (or F) contiguous channels. The tiles
// go in blocks sized so that the block's V and M stay in L2; each block is one thread's (its 16 products
// run on that thread alone, reading V and U in place), and writes its own outputs: the bits do not depend on
// the thread count. Tiles past the edge read zeros (the padding) and drop the outputs past the edge.
//
// The input gradient is the same convolution run backwards: dx = conv(dy, the kernel turned 180 degrees
// with C and F swapped), padded by 2 - pad on each side; conv2d_backward_input_winograd sets that up.
// The kernel gradient goes through the same transforms: per tile, dL/dU = (A dY A^T) * V, so
//     dU[xi] (C x F) = sum over tiles of V[xi]^T (C x tiles) @ Z[xi] (tiles x F),   Z = A dY A^T,
// and dkernel = G^T dU G (conv2d_backward_kernel_winograd).
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"
#include "kernels.h"

namespace engine {

// Below these channel counts the products are too thin for the GEMM to run well; im2col wins there.
constexpr int64_t kWinogradMinChannels = 8;
// V and M of one block of tiles take about this many floats (512 KiB: half of L2).
constexpr int64_t kWinogradBlockFloats = int64_t{1} << 17;

bool conv2d_winograd_applies(const Window2d& g, int64_t F) {
    return g.KH == 3 && g.KW == 3 && g.SH == 1 && g.SW == 1 && g.C >= kWinogradMinChannels &&
           F >= kWinogradMinChannels && g.OH >= 2 && g.OW >= 2;
}

namespace {

// u (16, C, F) = G g G^T for every (c, f) of kernel (3, 3, C, F).
void transform_kernel(float* u, const float* kernel, int64_t C, int64_t F) {
    simd_dispatch([&] {
        const int64_t CF = C * F;
        float* __restrict out = u;
        const float* __restrict k = kernel;
        // e = c * F + f: the same offset in every tap and plane. ivdep: no plane overlaps another (GCC cannot
        // prove it for a CF it does not know, and gives up on the 16 stores x 9 loads of run-time checks).
        #pragma GCC ivdep
        for (int64_t e = 0; e < CF; e++) {
            float t[4][3];
            for (int j = 0; j < 3; j++) {                       // t = G g (4 x 3)
                const float g0 = k[(0 * 3 + j) * CF + e], g1 = k[(1 * 3 + j) * CF + e], g2 = k[(2 * 3 + j) * CF + e];
                t[0][j] = g0;
                t[1][j] = 0.5f * (g0 + g1 + g2);
                t[2][j] = 0.5f * (g0 - g1 + g2);
                t[3][j] = g2;
            }
            for (int i = 0; i < 4; i++) {                       // U = t G^T (4 x 4)
                out[(i * 4 + 0) * CF + e] = t[i][0];
                out[(i * 4 + 1) * CF + e] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                out[(i * 4 + 2) * CF + e] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                out[(i * 4 + 3) * CF + e] = t[i][2];
            }
        }
    });
}

// Where pixel (n, h, w) of the image a convolution reads (or writes) lies in its array (N, rows, cols, D): at
// row r0 + rs h, column c0 + cs w. The identity view {rows, cols, 0, 1, 0, 1} is the array itself; a phase of
// a dilated convolution (below) is every rs-th row and cs-th column.
struct View {
    int64_t rows, cols, r0, rs, c0, cs;
    int64_t pixel(int64_t n, int64_t h, int64_t w) const { return (n * rows + r0 + rs * h) * cols + c0 + cs * w; }
};

struct Plan {
    int64_t N, IH, IW, C, OH, OW, F, top, left;    // input (N, IH, IW, C) -> output (N, OH, OW, F)
    int64_t TH, TW;                                // tiles: ceil(OH / 2) x ceil(OW / 2) per image
    View in, out;                                  // where the input and output pixels are in their arrays
};

// The tiles of a plan come in up to four regions: those whose 2x2 outputs all exist, and, when OH or OW is odd,
// the last row of tiles (bottom outputs past the image), the last column (right outputs past it) and the corner.
// An output past the image needs neither row 3 nor column 3 of M (Y = A^T M A reads rows 0-2 for the top outputs,
// columns 0-2 for the left ones), so a region skips those positions' GEMMs: `skip` has bit xi set for each.
// (In the kernel gradient, the same rows or columns of Z = A dY A^T are zeros there.)
constexpr uint32_t kSkipRow3 = 0xF000, kSkipColumn3 = 0x8888;
struct Region { int64_t th0, TH, tw0, TW; uint32_t skip; };

std::vector<Region> regions_of(const Plan& p) {
    const int64_t fh = p.OH / 2, fw = p.OW / 2;
    const bool tall = p.OH % 2 == 1, wide = p.OW % 2 == 1;
    std::vector<Region> all{{0, fh, 0, fw, 0}};
    if (tall) all.push_back({fh, 1, 0, fw, kSkipRow3});
    if (wide) all.push_back({0, fh, fw, 1, kSkipColumn3});
    if (tall && wide) all.push_back({fh, 1, fw, 1, kSkipRow3 | kSkipColumn3});
    std::vector<Region> regions;
    for (const Region& r : all)
        if (r.TH > 0 && r.TW > 0) regions.push_back(r);
    return regions;
}

// Tile number `tile` of a region (image-major): its image n and the output row and column of its top-left output.
struct Tile { int64_t n, oh, ow; };
inline Tile tile_at(const Region& r, int64_t tile) {
    return {tile / (r.TH * r.TW), (r.th0 + tile / r.TW % r.TH) * 2, (r.tw0 + tile % r.TW) * 2};
}

// One tile's input transform over its C channels: out (16 planes `plane` apart) = B^T d B, where pixel (r, j) of
// the 4x4 patch d is pix[r * 4 + j] (C channels; a pixel in the padding points at zeros). Row i of B^T d is
// d[a] + sign d[b]: one loop per row keeps each loop to 8 loads and 4 stores, few enough streams for the
// compiler to vectorise it.
ENGINE_INLINE void input_transform_body(float* __restrict out, const float* const* pix, int64_t C, int64_t plane) {
    constexpr int a[4] = {0, 1, 2, 1}, b[4] = {2, 2, 1, 3};
    constexpr float sign[4] = {-1.0f, 1.0f, -1.0f, -1.0f};
    for (int i = 0; i < 4; i++) {
        const float* __restrict a0 = pix[a[i] * 4 + 0];
        const float* __restrict a1 = pix[a[i] * 4 + 1];
        const float* __restrict a2 = pix[a[i] * 4 + 2];
        const float* __restrict a3 = pix[a[i] * 4 + 3];
        const float* __restrict b0 = pix[b[i] * 4 + 0];
        const float* __restrict b1 = pix[b[i] * 4 + 1];
        const float* __restrict b2 = pix[b[i] * 4 + 2];
        const float* __restrict b3 = pix[b[i] * 4 + 3];
        float* __restrict o = out + i * 4 * plane;
        const float sg = sign[i];
        for (int64_t c = 0; c < C; c++) {
            const float s0 = a0[c] + sg * b0[c], s1 = a1[c] + sg * b1[c];
            const float s2 = a2[c] + sg * b2[c], s3 = a3[c] + sg * b3[c];
            o[c] = s0 - s2;                                     // and times B
            o[plane + c] = s1 + s2;
            o[2 * plane + c] = s2 - s1;
            o[3 * plane + c] = s1 - s3;
        }
    }
}

// One tile's output transform over its F filters: the 2x2 outputs A^T M A + bias, M (16 planes `plane` apart);
// the top two outputs go to top (2 pixels of F filters, ps floats apart), the bottom two to bottom.
ENGINE_INLINE void output_transform_body(float* __restrict top, float* __restrict bottom, int64_t ps,
                                         const float* __restrict in, const float* __restrict b, int64_t F,
                                         int64_t plane) {
    for (int64_t f = 0; f < F; f++) {
        float s[2][4];
        for (int j = 0; j < 4; j++) {                           // s = A^T M
            const float m0 = in[(0 * 4 + j) * plane + f], m1 = in[(1 * 4 + j) * plane + f];
            const float m2 = in[(2 * 4 + j) * plane + f], m3 = in[(3 * 4 + j) * plane + f];
            s[0][j] = m0 + m1 + m2;
            s[1][j] = m1 - m2 - m3;
        }
        top[f] = s[0][0] + s[0][1] + s[0][2] + b[f];
        top[ps + f] = s[0][1] - s[0][2] - s[0][3] + b[f];
        bottom[f] = s[1][0] + s[1][1] + s[1][2] + b[f];
        bottom[ps + f] = s[1][1] - s[1][2] - s[1][3] + b[f];
    }
}

#define ENGINE_WINOGRAD_DISPATCH(name, body, params, args)                                                    \
    ENGINE_AVX512 ENGINE_FLATTEN void name##_avx512 params { body args; }                                      \
    ENGINE_AVX2 ENGINE_FLATTEN void name##_avx2 params { body args; }                                          \
    ENGINE_FLATTEN void name##_portable params { body args; }                                                  \
    void name params {                                                                                         \
        switch (simd_active()) {                                                                               \
            case Simd::avx512: return name##_avx512 args;                                                      \
            case Simd::avx2: return name##_avx2 args;                                                          \
            default: return name##_portable args;                                                              \
        }                                                                                                      \
    }

// input_transform, output_transform: the bodies above, compiled for each SIMD path and picked at run time.
ENGINE_WINOGRAD_DISPATCH(input_transform, input_transform_body,
                         (float* out, const float* const* pix, int64_t C, int64_t plane), (out, pix, C, plane))
ENGINE_WINOGRAD_DISPATCH(output_transform, output_transform_body,
                         (float* top, float* bottom, int64_t ps, const float* in, const float* b, int64_t F,
                          int64_t plane),
                         (top, bottom, ps, in, b, F, plane))

// One tile's output-gradient transform over its F filters: z (16 planes `plane` apart) = A dY A^T, the 2x2
// gradients dY read from top (2 pixels of F filters, ps floats apart) and bottom. One loop per row i of A dY.
ENGINE_INLINE void gradient_transform_body(float* __restrict z, const float* __restrict top,
                                           const float* __restrict bottom, int64_t ps, int64_t F, int64_t plane) {
    constexpr float wa[4] = {1.0f, 1.0f, 1.0f, 0.0f}, wb[4] = {0.0f, 1.0f, -1.0f, -1.0f};   // A's rows
    for (int i = 0; i < 4; i++) {
        float* __restrict o = z + i * 4 * plane;
        const float a = wa[i], b = wb[i];
        for (int64_t f = 0; f < F; f++) {
            const float t0 = a * top[f] + b * bottom[f], t1 = a * top[ps + f] + b * bottom[ps + f];   // (A dY)[i]
            o[f] = t0;                                          // and times A^T
            o[plane + f] = t0 + t1;
            o[2 * plane + f] = t0 - t1;
            o[3 * plane + f] = -t1;
        }
    }
}

ENGINE_WINOGRAD_DISPATCH(gradient_transform, gradient_transform_body,
                         (float* z, const float* top, const float* bottom, int64_t ps, int64_t F, int64_t plane),
                         (z, top, bottom, ps, F, plane))

// v (16, T, C): B^T d B for tiles [t0, t0 + T). d is the 4x4 patch at input row oh - top, column ow - left, read
// in place; its pixels in the padding read a pixel of zeros.
void transform_tiles(float* v, const float* x, const Plan& p, const Region& r, int64_t t0, int64_t T) {
    const int64_t C = p.C, plane = T * C;
    thread_local std::vector<float> zeros;
    zeros.assign(C, 0.0f);
    for (int64_t t = 0; t < T; t++) {
        const auto [n, oh, ow] = tile_at(r, t0 + t);
        const int64_t h0 = oh - p.top, w0 = ow - p.left;
        const float* pix[16];
        for (int64_t i = 0; i < 4; i++)
            for (int64_t j = 0; j < 4; j++) {
                const int64_t h = h0 + i, w = w0 + j;
                pix[i * 4 + j] = h >= 0 && h < p.IH && w >= 0 && w < p.IW ? x + p.in.pixel(n, h, w) * C : zeros.data();
            }
        input_transform(v + t * C, pix, C, plane);
    }
}

// The 2x2 outputs of tiles [t0, t0 + T) from m (16, T, F): Y = A^T M A, plus the bias. A tile whose block
// crosses the image's last row or column goes through a (4, F) buffer, and only its outputs inside are kept.
void untransform_tiles(float* y, const float* m, const float* bias, const Plan& p, const Region& r, int64_t t0,
                       int64_t T) {
    const int64_t F = p.F, plane = T * F;
    thread_local std::vector<float> block, zero_bias;
    block.resize(4 * F);
    zero_bias.assign(F, 0.0f);
    const float* b = bias ? bias : zero_bias.data();
    for (int64_t t = 0; t < T; t++) {
        const auto [n, oh, ow] = tile_at(r, t0 + t);
        if (oh + 2 <= p.OH && ow + 2 <= p.OW) {
            output_transform(y + p.out.pixel(n, oh, ow) * F, y + p.out.pixel(n, oh + 1, ow) * F, p.out.cs * F,
                             m + t * F, b, F, plane);
            continue;
        }
        output_transform(block.data(), block.data() + 2 * F, F, m + t * F, b, F, plane);
        for (int64_t i = 0; i < 2 && oh + i < p.OH; i++)
            for (int64_t j = 0; j < 2 && ow + j < p.OW; j++)
                std::memcpy(y + p.out.pixel(n, oh + i, ow + j) * F, block.data() + (i * 2 + j) * F, F * sizeof(float));
    }
}

// z (16, T, F): A dY A^T for tiles [t0, t0 + T) of dy (N, OH, OW, F); outputs past the image's last row or
// column (the forward dropped them) count as zero gradients.
void transform_gradient_tiles(float* z, const float* dy, const Plan& p, const Region& r, int64_t t0, int64_t T) {
    const int64_t F = p.F, plane = T * F;
    thread_local std::vector<float> block;
    block.resize(4 * F);
    for (int64_t t = 0; t < T; t++) {
        const auto [n, oh, ow] = tile_at(r, t0 + t);
        if (oh + 2 <= p.OH && ow + 2 <= p.OW) {
            gradient_transform(z + t * F, dy + p.out.pixel(n, oh, ow) * F, dy + p.out.pixel(n, oh + 1, ow) * F,
                               p.out.cs * F, F, plane);
            continue;
        }
        std::fill(block.begin(), block.end(), 0.0f);
        for (int64_t i = 0; i < 2 && oh + i < p.OH; i++)
            for (int64_t j = 0; j < 2 && ow + j < p.OW; j++)
                std::memcpy(block.data() + (i * 2 + j) * F, dy + p.out.pixel(n, oh + i, ow + j) * F, F * sizeof(float));
        gradient_transform(z + t * F, block.data(), block.data() + 2 * F, F, F, plane);
    }
}

// Tiles per block: V and M (or Z) within kWinogradBlockFloats, a multiple of 12 (the GEMM's row panel).
int64_t tiles_per_block(const Plan& p) {
    const int64_t fit = kWinogradBlockFloats / (16 * (p.C + p.F));
    return std::max<int64_t>(12, std::min<int64_t>(256, fit / 12 * 12));
}

// The blocks of tiles of a list of plans (the phases of one convolution), in order: each is one unit of work.
struct Block { const Plan* p; Region r; int64_t t0, count; };

std::vector<Block> blocks_of(const std::vector<Plan>& plans) {
    std::vector<Block> blocks;
    for (const Plan& p : plans)
        for (const Region& r : regions_of(p)) {
            const int64_t tiles = p.N * r.TH * r.TW, T = tiles_per_block(p);
            for (int64_t t0 = 0; t0 < tiles; t0 += T) blocks.push_back({&p, r, t0, std::min(T, tiles - t0)});
        }
    return blocks;
}

// Run body(i, v, m) for i in [0, count) (blocks, or slices of them), sharing them among the threads when there
// is enough work (all phases in one loop, so that no thread waits at the end of each); v and m are the running
// thread's buffers.
template <class Body>
void each_block(int64_t count, int64_t work, const Body& body) {
    thread_local std::vector<float> v_buffer, m_buffer;
    if (count > 1 && parallel_worth_it(work)) {
        #pragma omp parallel
        {
            std::vector<float>& v = v_buffer;
            std::vector<float>& m = m_buffer;
            #pragma omp for schedule(dynamic, 1)                 // any thread may take any block: same bits
            for (int64_t b = 0; b < count; b++) body(b, v, m);
        }
    } else {
        for (int64_t b = 0; b < count; b++) body(b, v_buffer, m_buffer);
    }
}

// y = the convolution of every plan, with the kernel already transformed (u: (16, C, F)).
void winograd(float* y, const float* x, const float* u, const float* bias, const std::vector<Plan>& plans) {
    const std::vector<Block> blocks = blocks_of(plans);
    if (blocks.empty() || plans[0].F == 0) return;
    const int64_t C = plans[0].C, F = plans[0].F;
    const int64_t count = static_cast<int64_t>(blocks.size());
    each_block(count, count * tiles_per_block(plans[0]) * 16 * C * F,
               [&](int64_t b, std::vector<float>& v, std::vector<float>& m) {
        const Block& k = blocks[b];
        v.resize(16 * k.count * C);
        m.resize(16 * k.count * F);
        transform_tiles(v.data(), x, *k.p, k.r, k.t0, k.count);
        for (int xi = 0; xi < 16; xi++)                         // nested in the block loop: one thread each
            if (!(k.r.skip >> xi & 1))
                matmul_forward(m.data() + xi * k.count * F, v.data() + xi * k.count * C, u + xi * C * F, k.count, F,
                               C, false, false, false);
        untransform_tiles(y, m.data(), bias, *k.p, k.r, k.t0, k.count);
    });
}

// dkernel (3, 3, C, F) = G^T dU G for every (c, f), du (16, C, F).
void untransform_kernel(float* dkernel, const float* du, int64_t C, int64_t F) {
    simd_dispatch([&] {
        const int64_t CF = C * F;
        float* __restrict out = dkernel;
        const float* __restrict d = du;
        #pragma GCC ivdep                                       // planes never overlap (see transform_kernel)
        for (int64_t e = 0; e < CF; e++) {
            float t[3][4];
            for (int j = 0; j < 4; j++) {                       // t = G^T dU (3 x 4)
                const float d0 = d[(0 * 4 + j) * CF + e], d1 = d[(1 * 4 + j) * CF + e];
                const float d2 = d[(2 * 4 + j) * CF + e], d3 = d[(3 * 4 + j) * CF + e];
                t[0][j] = d0 + 0.5f * (d1 + d2);
                t[1][j] = 0.5f * (d1 - d2);
                t[2][j] = 0.5f * (d1 + d2) + d3;
            }
            for (int r = 0; r < 3; r++) {                       // dkernel = t G (3 x 3)
                out[(r * 3 + 0) * CF + e] = t[r][0] + 0.5f * (t[r][1] + t[r][2]);
                out[(r * 3 + 1) * CF + e] = 0.5f * (t[r][1] - t[r][2]);
                out[(r * 3 + 2) * CF + e] = 0.5f * (t[r][1] + t[r][2]) + t[r][3];
            }
        }
    });
}

// du (16, C, F): the kernel gradient in the transformed domain, summed over every plan's tiles.
void kernel_gradient(float* du, const float* dy, const float* x, const std::vector<Plan>& plans) {
    const std::vector<Block> blocks = blocks_of(plans);
    const int64_t C = plans[0].C, F = plans[0].F, CF = C * F, count = static_cast<int64_t>(blocks.size());
    if (count == 0) return std::fill(du, du + 16 * CF, 0.0f);
    // dU = sum over tiles of V^T Z, per position. The blocks are cut into at most 16 slices (by the shape, not
    // the thread count); each slice sums its blocks in order into its own partial, and the partials are added
    // in slice order: the same bits for any number of threads.
    const int64_t slices = std::min<int64_t>(count, 16);
    thread_local std::vector<float> partial_buffer;              // the calling thread's; the team gets a pointer
    partial_buffer.resize(slices * 16 * CF);
    float* const partial = partial_buffer.data();
    each_block(slices, count * tiles_per_block(plans[0]) * 16 * CF,
               [&](int64_t s, std::vector<float>& v, std::vector<float>& z) {
        float* part = partial + s * 16 * CF;
        bool started[16] = {};                                   // positions this slice has written yet
        for (int64_t b = count * s / slices; b < count * (s + 1) / slices; b++) {
            const Block& k = blocks[b];
            v.resize(16 * k.count * C);
            z.resize(16 * k.count * F);
            transform_tiles(v.data(), x, *k.p, k.r, k.t0, k.count);
            transform_gradient_tiles(z.data(), dy, *k.p, k.r, k.t0, k.count);
            for (int xi = 0; xi < 16; xi++) {                   // dU[xi] (+)= V[xi]^T @ Z[xi]
                if (k.r.skip >> xi & 1) continue;
                matmul_forward(part + xi * CF, v.data() + xi * k.count * C, z.data() + xi * k.count * F, C, F,
                               k.count, true, false, started[xi]);
                started[xi] = true;
            }
        }
        for (int xi = 0; xi < 16; xi++)
            if (!started[xi]) std::fill(part + xi * CF, part + (xi + 1) * CF, 0.0f);
    });
    const float* parts = partial;
    parallel_chunks(16 * CF, slices, [&](int64_t lo, int64_t hi) {     // slice by slice: unit stride, vectorised
        std::copy(parts + lo, parts + hi, du + lo);
        for (int64_t s = 1; s < slices; s++) {
            const float* __restrict part = parts + s * 16 * CF;
            for (int64_t i = lo; i < hi; i++) du[i] += part[i];
        }
    });
}

// A dilated 3x3 convolution with stride 1 is DH x DW undilated ones: the outputs (r + DH a, s + DW b) of phase
// (r, s) read only the inputs (q + DH u, q' + DW v), q = (r - pad_top) mod DH, which form an ordinary image
// (every DH-th row from q) convolved with the same 3x3 kernel. Each phase is one plan whose views pick its
// rows and columns out of the whole arrays: nothing is copied. Dilation 1 is the one phase, q = 0.
std::vector<Plan> phases_of(const Window2d& g, int64_t F) {
    std::vector<Plan> phases;
    for (int64_t r = 0; r < g.DH; r++)
        for (int64_t s = 0; s < g.DW; s++) {
            const int64_t vh = r - g.pad_top, vw = s - g.pad_left;
            const int64_t qh = (vh % g.DH + g.DH) % g.DH, qw = (vw % g.DW + g.DW) % g.DW;
            const int64_t IH = g.H > qh ? (g.H - qh + g.DH - 1) / g.DH : 0, IW = g.W > qw ? (g.W - qw + g.DW - 1) / g.DW : 0;
            const int64_t OH = g.OH > r ? (g.OH - r + g.DH - 1) / g.DH : 0, OW = g.OW > s ? (g.OW - s + g.DW - 1) / g.DW : 0;
            phases.push_back({g.N, IH, IW, g.C, OH, OW, F, -(vh - qh) / g.DH, -(vw - qw) / g.DW, (OH + 1) / 2,
                              (OW + 1) / 2, {g.H, g.W, qh, g.DH, qw, g.DW}, {g.OH, g.OW, r, g.DH, s, g.DW}});
        }
    return phases;
}

}  // namespace

void conv2d_forward_v3(float* y, const float* x, const float* kernel, const float* bias, const Window2d& g,
                       int64_t F) {
    ENGINE_CHECK(conv2d_winograd_applies(g, F), "conv2d_forward_v3",
                 "expected a 3x3 kernel, strides 1, at least ", kWinogradMinChannels,
                 " input channels and filters and an output of at least 2x2. Received: kernel ", g.KH, "x", g.KW,
                 ", strides (", g.SH, ", ", g.SW, "), ", g.C, " channels, ", F, " filters, output ", g.OH, "x", g.OW);
    thread_local std::vector<float> u;
    u.resize(16 * g.C * F);
    transform_kernel(u.data(), kernel, g.C, F);
    winograd(y, x, u.data(), bias, phases_of(g, F));
}

void conv2d_backward_input_winograd(float* dx, const float* dy, const float* kernel, const Window2d& g, int64_t F) {
    ENGINE_CHECK(conv2d_winograd_applies(g, F), "conv2d_backward_input_winograd",
                 "expected a convolution that conv2d_forward_v3 computes");
    // flipped (3, 3, F, C): flipped[i][j][f][c] = kernel[2 - i][2 - j][c][f]
    thread_local std::vector<float> flipped, u;
    const int64_t C = g.C;
    flipped.resize(9 * F * C);
    for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 0; j < 3; j++)
            transpose_inner(flipped.data() + (i * 3 + j) * F * C, kernel + ((2 - i) * 3 + (2 - j)) * C * F, 1, C, F);
    u.resize(16 * F * C);
    transform_kernel(u.data(), flipped.data(), F, C);
    // Per phase: its dy (OH, OW, F) in, its dx (IH, IW, C) out, dy read 2 - pad before its first row and column.
    // Each input phase takes its gradient from exactly one output phase, so every dx pixel is written once.
    std::vector<Plan> plans;
    for (const Plan& f : phases_of(g, F))
        plans.push_back({f.N, f.OH, f.OW, F, f.IH, f.IW, C, 2 - f.top, 2 - f.left, (f.IH + 1) / 2, (f.IW + 1) / 2,
                         f.out, f.in});
    winograd(dx, dy, u.data(), nullptr, plans);
}

void conv2d_backward_kernel_winograd(float* dkernel, const float* dy, const float* x, const Window2d& g, int64_t F) {
    ENGINE_CHECK(conv2d_winograd_applies(g, F), "conv2d_backward_kernel_winograd",
                 "expected a convolution that conv2d_forward_v3 computes");
    thread_local std::vector<float> du;
    du.resize(16 * g.C * F);
    kernel_gradient(du.data(), dy, x, phases_of(g, F));
    untransform_kernel(dkernel, du.data(), g.C, F);
}

}  // namespace engine
