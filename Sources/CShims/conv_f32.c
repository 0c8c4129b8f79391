// Float32 channels-last convolutions for the fp32 channels-last program's thin layers: 1×1
// convolutions as a GEMM, depthwise convolutions and first layers on few channels, bias,
// clamp and an optional residual add applied before each output's one store, and an
// expansion (or a first layer) fused into the depthwise layer reading it. Per layer they are
// level with oneDNN's NHWC kernels; what they add is those fusions, which keep large
// intermediate maps out of memory, and a fixed summation order per output (bias, then inputs
// or taps in order; a first layer's taps, then its bias). AVX-512 kernels and a portable C
// definition of the same arithmetic.
#include "include/CShims.h"
#include <string.h>

#include "epilogue.h"

enum { PIXELS = 8, VECTORS = 3, BLOCK = 16 * VECTORS };
_Static_assert(PIXELS == 8, "GEMM_TILES (epilogue.h) tiles 8 pixels");

long rc_conv1x1_f32_packed_size(long n, long k) { return (n + 15) / 16 * k * 16; }

void rc_conv1x1_f32_pack(const float *weights, long n, long k, float *packed) {
    for (long block = 0; block < (n + 15) / 16; ++block)
        for (long i = 0; i < k; ++i)
            for (long lane = 0; lane < 16; ++lane) {
                const long channel = block * 16 + lane;
                packed[(block * k + i) * 16 + lane] = channel < n ? weights[channel * k + i] : 0;
            }
}

long rc_conv1x1_f32_items(const rc_conv1x1_f32_job *job) {
    return gemm_item_count(job->n, job->rows, job->columns, job->column_block, BLOCK);
}

static inline const float *pixel_base(const rc_conv1x1_f32_job *j, long row, long column) {
    return j->input + row / j->rows_per_image * j->image_stride + row % j->rows_per_image * j->row_stride + column * j->column_stride;
}

// NaN passes through both clamps (as through oneDNN's and PyTorch's activations).
static inline float clamp_value(float v, float lower, float upper) { return v < lower ? lower : (v > upper ? upper : v); }

// The same on sixteen lanes: max/min return their second operand when either is NaN.
AVX512 static inline __m512 clamp_ps16(__m512 v, __m512 lower, __m512 upper) {
    return _mm512_min_ps(upper, _mm512_max_ps(lower, v));
}

static void conv1x1_generic(const rc_conv1x1_f32_job *j, long row, long x0, long x1, long c0, long c1) {
    for (long x = x0; x < x1; ++x) {
        const float *a = pixel_base(j, row, x);
        const long at = (row * j->columns + x) * j->n;
        for (long c = c0; c < c1; ++c) {
            const float *w = j->packed + (c / 16) * j->k * 16 + c % 16;
            float acc = j->bias[c];
            for (long i = 0; i < j->k; ++i) acc = fmaf(a[i], w[i * 16], acc);
            if (j->residual) acc += j->residual[at + c];
            j->output[at + c] = clamp_value(acc, j->lower, j->upper);
        }
    }
}

// One float broadcast to 16 lanes straight from memory. Written out because, with a 256-bit
// use of the same value nearby, the compiler loads 8 lanes and widens them by a shuffle,
// which costs as much as the 256-bit FMAs save.
AVX512 static inline __m512 broadcast_from_memory(const float *p) {
    __m512 v;
    __asm__("vbroadcastss %1, %0" : "=v"(v) : "m"(*p));
    return v;
}

// `pixels` consecutive outputs of one row from column x × `vectors` groups of 16 channels
// from c (the last group masked to the real channel count). Called with constant pixels /
// vectors so that the accumulators live in registers. With `half`, the last group holds at
// most 8 channels and runs on 256-bit vectors: this core issues two of those FMAs per cycle
// against one 512-bit FMA, so a 24-channel layer (MobileNetV2's projections to 24) wastes no
// lanes. The same products in the same order either way.
AVX512 static inline __attribute__((always_inline)) void
tile(const rc_conv1x1_f32_job *j, long row, long x, long c, const int pixels, const int vectors, const int half) {
    const long k = j->k, step = j->column_stride;
    const int full = half ? vectors - 1 : vectors;
    const float *a = pixel_base(j, row, x);
    const float *w = j->packed + (c / 16) * k * 16;
    const float *w_half = w + full * k * 16;
    const __mmask8 m_half = (__mmask8)tail16(j->n - c - full * 16);
    __m512 acc[PIXELS][VECTORS];
    __m256 acc_half[PIXELS];
    for (int v = 0; v < full; ++v) {
        const __m512 bias = _mm512_maskz_loadu_ps(tail16(j->n - c - v * 16), j->bias + c + v * 16);
        for (int r = 0; r < pixels; ++r) acc[r][v] = bias;
    }
    if (half) {
        const __m256 bias = _mm256_maskz_loadu_ps(m_half, j->bias + c + full * 16);
        for (int r = 0; r < pixels; ++r) acc_half[r] = bias;
    }
    for (long i = 0; i < k; ++i) {
        __m512 b[VECTORS];
        for (int v = 0; v < full; ++v) b[v] = _mm512_loadu_ps(w + (v * k + i) * 16);
        const __m256 b_half = half ? _mm256_loadu_ps(w_half + i * 16) : _mm256_setzero_ps();
        for (int r = 0; r < pixels; ++r) {
            const __m512 input = half ? broadcast_from_memory(a + r * step + i) : _mm512_set1_ps(a[r * step + i]);
            for (int v = 0; v < full; ++v) acc[r][v] = _mm512_fmadd_ps(input, b[v], acc[r][v]);
            if (half) acc_half[r] = _mm256_fmadd_ps(_mm512_castps512_ps256(input), b_half, acc_half[r]);
        }
    }
    const __m512 lower = _mm512_set1_ps(j->lower), upper = _mm512_set1_ps(j->upper);
    // Locals, not j's fields: the intrinsic stores may alias anything.
    const long n = j->n, first = (row * j->columns + x) * n + c;
    const float *residual = j->residual;
    float *output = j->output;
#pragma clang loop unroll(full)
    for (int v = 0; v < full; ++v) {
        const __mmask16 m = tail16(n - c - v * 16);
#pragma clang loop unroll(full)
        for (int r = 0; r < pixels; ++r) {
            const long at = first + r * n + v * 16;
            __m512 value = acc[r][v];
            if (residual) value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(m, residual + at));
            _mm512_mask_storeu_ps(output + at, m, clamp_ps16(value, lower, upper));
        }
    }
    if (half) {
        const __m256 lower8 = _mm512_castps512_ps256(lower), upper8 = _mm512_castps512_ps256(upper);
#pragma clang loop unroll(full)
        for (int r = 0; r < pixels; ++r) {
            const long at = first + r * n + full * 16;
            __m256 value = acc_half[r];
            if (residual) value = _mm256_add_ps(value, _mm256_maskz_loadu_ps(m_half, residual + at));
            _mm256_mask_storeu_ps(output + at, m_half, _mm256_min_ps(upper8, _mm256_max_ps(lower8, value)));
        }
    }
}

AVX512 static void conv1x1_avx512(const rc_conv1x1_f32_job *j, long row, long x0, long x1, long c0, long c1) {
    const int vectors = (int)((c1 - c0 + 15) / 16);
    const long last = (c1 - c0) % 16;
    if (last > 0 && last <= 8) {
        GEMM_TILES(j, row, x0, x1, c0, vectors, 1);
    } else {
        GEMM_TILES(j, row, x0, x1, c0, vectors, 0);
    }
}

// Pixel-major work items.
static inline gemm_item item_at(const rc_conv1x1_f32_job *job, long item) {
    return gemm_item_at(job->n, job->rows, job->columns, job->column_block, BLOCK, 0, item);
}

AVX512 static void conv1x1_run_avx512(const rc_conv1x1_f32_job *job, long first_item, long last_item) {
    for (long item = first_item; item < last_item; ++item) {
        const gemm_item it = item_at(job, item);
        conv1x1_avx512(job, it.row, it.x0, it.x1, it.c0, it.c1);
    }
}

void rc_conv1x1_f32_run(const rc_conv1x1_f32_job *job, long first_item, long last_item) {
    if (rc_use_avx512()) {
        conv1x1_run_avx512(job, first_item, last_item);
        return;
    }
    for (long item = first_item; item < last_item; ++item) {
        const gemm_item it = item_at(job, item);
        conv1x1_generic(job, it.row, it.x0, it.x1, it.c0, it.c1);
    }
}

// ---------------------------------------------------------------------------------------
// Depthwise: work items are (image row of the output, 64-channel block) pairs.

enum { DEPTHWISE_BLOCK = 64 };

long rc_depthwise_f32_items(const rc_depthwise_f32_job *job) {
    return gemm_item_count(job->channels, job->batch * job->output_height, 1, 1, DEPTHWISE_BLOCK);
}

static inline gemm_item depthwise_item_at(const rc_depthwise_f32_job *job, long item) {
    return gemm_item_at(job->channels, job->batch * job->output_height, 1, 1, DEPTHWISE_BLOCK, 0, item);
}

// The kernel rows [*ky0, *ky1) of output row y that fall inside the image.
static inline void valid_rows(const rc_depthwise_f32_job *j, long y, long *ky0, long *ky1) {
    const long iy = y * j->stride_h - j->pad_top;
    *ky0 = iy < 0 ? -iy : 0;
    *ky1 = j->height - iy < j->kernel_h ? j->height - iy : j->kernel_h;
}

static void depthwise_generic(const rc_depthwise_f32_job *j, long b, long y, long c0, long c1) {
    long ky0, ky1;
    valid_rows(j, y, &ky0, &ky1);
    const long iy = y * j->stride_h - j->pad_top, channels = j->channels;
    const float *image = j->input + b * j->height * j->width * channels;
    float *out = j->output + ((b * j->output_height + y) * j->output_width) * channels;
    for (long x = 0; x < j->output_width; ++x) {
        const long ix = x * j->stride_w - j->pad_left;
        for (long c = c0; c < c1; ++c) {
            float acc = j->bias[c];
            for (long ky = ky0; ky < ky1; ++ky)
                for (long kx = 0; kx < j->kernel_w; ++kx) {
                    if (ix + kx < 0 || ix + kx >= j->width) continue;
                    acc = fmaf(image[((iy + ky) * j->width + ix + kx) * channels + c], j->weights[(ky * j->kernel_w + kx) * channels + c], acc);
                }
            out[x * channels + c] = clamp_value(acc, j->lower, j->upper);
        }
    }
}

// One output of 16 channels at column x: the taps inside the image, in kernel order.
AVX512 static inline __m512 depthwise_border16(const rc_depthwise_f32_job *j, const float *image, long iy, long ky0, long ky1,
                                               long x, long c, __mmask16 m, __m512 bias) {
    const long ix = x * j->stride_w - j->pad_left, channels = j->channels;
    __m512 acc = bias;
    for (long ky = ky0; ky < ky1; ++ky)
        for (long kx = 0; kx < j->kernel_w; ++kx) {
            if (ix + kx < 0 || ix + kx >= j->width) continue;
            const __m512 w = _mm512_maskz_loadu_ps(m, j->weights + (ky * j->kernel_w + kx) * channels + c);
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, image + ((iy + ky) * j->width + ix + kx) * channels + c), w, acc);
        }
    return acc;
}

// Four interior outputs of a 3×3 kernel from column x for 16 channels (see
// depthwise3x3_row_vector), each summed in kernel order: bias, then the taps row by row.
// With all lanes and stride 1 or 2 each input column is loaded once per kernel row and
// shared by the outputs it feeds — this core issues one 512-bit load per cycle, as many as
// multiply-adds.
AVX512 static inline __attribute__((always_inline)) void
depthwise3x3_group(const float *r0, const float *r1, const float *r2, const __m512 wv[9], __m512 bias, __m512 lower,
                   __m512 upper, long ky0, long ky1, long offset, long channels, __mmask16 m, float *o, const int full,
                   const long stride) {
    __m512 acc[4] = {bias, bias, bias, bias};
    if (full && (stride == 1 || stride == 2)) {
        for (int ky = 0; ky < 3; ++ky) {
            if (ky < ky0 || ky >= ky1) continue;
            const float *q = (ky == 0 ? r0 : ky == 1 ? r1 : r2) + offset;
            __m512 in[9];
            for (int col = 0; col < 3 * stride + 3; ++col) in[col] = _mm512_loadu_ps(q + col * channels);
            for (int k = 0; k < 4; ++k)
                for (int kx = 0; kx < 3; ++kx) acc[k] = _mm512_fmadd_ps(in[k * stride + kx], wv[ky * 3 + kx], acc[k]);
        }
    } else {
        for (int k = 0; k < 4; ++k)
            for (int t = 0; t < 9; ++t) {
                if (t / 3 < ky0 || t / 3 >= ky1) continue;
                const float *q = (t / 3 == 0 ? r0 : t / 3 == 1 ? r1 : r2) + offset + (k * stride + t % 3) * channels;
                acc[k] = _mm512_fmadd_ps(full ? _mm512_loadu_ps(q) : _mm512_maskz_loadu_ps(m, q), wv[t], acc[k]);
            }
    }
    for (int k = 0; k < 4; ++k) {
        const __m512 v = clamp_ps16(acc[k], lower, upper);
        if (full) _mm512_storeu_ps(o + k * channels, v);
        else _mm512_mask_storeu_ps(o + k * channels, m, v);
    }
}

// One output row of a 3×3 kernel for 16 channels from c, the nine weights in registers:
// kernel rows [ky0, ky1) lie inside the image; columns [x_lo, x_hi) have all three taps
// inside it and go four at a time (depthwise3x3_group), the others one at a time with their
// outside taps skipped. `full` (all 16 lanes) lets the input loads be shared (with masked
// loads the compiler hoists them all into registers and spills); a constant `stride` makes
// the group's loads constant offsets.
AVX512 static inline __attribute__((always_inline)) void
depthwise3x3_row_vector(const rc_depthwise_f32_job *j, const float *const rows[3], long ky0, long ky1, long x_lo, long x_hi,
                        long c, __mmask16 m, float *out, const int full, const long stride) {
    const long channels = j->channels, width = j->width;
    const long output_width = j->output_width, pad_left = j->pad_left;
    __m512 wv[9];
    for (int t = 0; t < 9; ++t) wv[t] = _mm512_maskz_loadu_ps(m, j->weights + t * channels + c);
    const __m512 bias = _mm512_maskz_loadu_ps(m, j->bias + c);
    const __m512 lower = _mm512_set1_ps(j->lower), upper = _mm512_set1_ps(j->upper);
    // Pointers are locals, not j's fields: the intrinsic stores may alias anything.
    const float *r0 = rows[0] + c, *r1 = rows[1] + c, *r2 = rows[2] + c;
    float *o = out + c;
    long x = 0;
    for (;; ++x) {
        if (x == x_lo) {
            for (; x + 4 <= x_hi; x += 4)
                depthwise3x3_group(r0, r1, r2, wv, bias, lower, upper, ky0, ky1, (x * stride - pad_left) * channels, channels, m,
                                   o + x * channels, full, stride);
        }
        if (x >= output_width) break;
        const long ix = x * stride - pad_left;
        __m512 sum = bias;
        for (int t = 0; t < 9; ++t) {
            const long kx = t % 3;
            if (t / 3 < ky0 || t / 3 >= ky1 || ix + kx < 0 || ix + kx >= width) continue;
            const float *r = t / 3 == 0 ? r0 : t / 3 == 1 ? r1 : r2;
            sum = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, r + (ix + kx) * channels), wv[t], sum);
        }
        _mm512_mask_storeu_ps(o + x * channels, m, clamp_ps16(sum, lower, upper));
    }
}

AVX512 static void depthwise3x3_row(const rc_depthwise_f32_job *j, const float *const rows[3], long ky0, long ky1, long x_lo,
                                    long x_hi, long c, __mmask16 m, float *out) {
    if (m != 0xFFFF) depthwise3x3_row_vector(j, rows, ky0, ky1, x_lo, x_hi, c, m, out, 0, j->stride_w);
    else if (j->stride_w == 1) depthwise3x3_row_vector(j, rows, ky0, ky1, x_lo, x_hi, c, m, out, 1, 1);
    else if (j->stride_w == 2) depthwise3x3_row_vector(j, rows, ky0, ky1, x_lo, x_hi, c, m, out, 1, 2);
    else depthwise3x3_row_vector(j, rows, ky0, ky1, x_lo, x_hi, c, m, out, 1, j->stride_w);
}

// Columns [*x_lo, *x_hi) of an output row have every tap of a kernel_w-wide window inside the image.
static inline void interior_columns(const rc_depthwise_f32_job *j, long *x_lo, long *x_hi) {
    const long sw = j->stride_w, kw = j->kernel_w;
    *x_lo = (j->pad_left + sw - 1) / sw;
    *x_hi = j->width - kw + j->pad_left >= 0 ? (j->width - kw + j->pad_left) / sw + 1 : 0;
    if (*x_hi > j->output_width) *x_hi = j->output_width;
    if (*x_lo > *x_hi) *x_lo = *x_hi;
}

// Interior outputs (every column tap inside the image), four at a time so that four
// independent multiply-add chains are in flight; rows outside the image are skipped.
AVX512 static void depthwise_avx512(const rc_depthwise_f32_job *j, long b, long y, long c0, long c1) {
    long ky0, ky1;
    valid_rows(j, y, &ky0, &ky1);
    const long iy = y * j->stride_h - j->pad_top, channels = j->channels, kw = j->kernel_w, sw = j->stride_w;
    const float *image = j->input + b * j->height * j->width * channels;
    float *out = j->output + ((b * j->output_height + y) * j->output_width) * channels;
    long x_lo, x_hi;
    interior_columns(j, &x_lo, &x_hi);
    const __m512 lower = _mm512_set1_ps(j->lower), upper = _mm512_set1_ps(j->upper);
    if (kw == 3 && j->kernel_h == 3) {
        // Rows outside the image are never read (ky0, ky1); any pointer will do for them.
        const long rs = j->width * channels;
        const float *rows[3] = {image + (iy + ky0) * rs, image + (iy + ky0) * rs, image + (iy + ky0) * rs};
        for (long k = ky0; k < ky1; ++k) rows[k] = image + (iy + k) * rs;
        for (long c = c0; c < c1; c += 16) depthwise3x3_row(j, rows, ky0, ky1, x_lo, x_hi, c, tail16(c1 - c), out);
        return;
    }
    for (long c = c0; c < c1; c += 16) {
        const __mmask16 m = tail16(c1 - c);
        const __m512 bias = _mm512_maskz_loadu_ps(m, j->bias + c);
        for (long x = 0; x < x_lo; ++x)
            _mm512_mask_storeu_ps(out + x * channels + c, m,
                                  clamp_ps16(depthwise_border16(j, image, iy, ky0, ky1, x, c, m, bias), lower, upper));
        long x = x_lo;
        for (; x + 4 <= x_hi; x += 4) {
            __m512 acc0 = bias, acc1 = bias, acc2 = bias, acc3 = bias;
            const float *p = image + ((iy + ky0) * j->width + x * sw - j->pad_left) * channels + c;
            const float *w = j->weights + ky0 * kw * channels + c;
            for (long ky = ky0; ky < ky1; ++ky, p += j->width * channels, w += kw * channels)
                for (long kx = 0; kx < kw; ++kx) {
                    const __m512 wv = _mm512_maskz_loadu_ps(m, w + kx * channels);
                    const float *q = p + kx * channels;
                    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q), wv, acc0);
                    acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + sw * channels), wv, acc1);
                    acc2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + 2 * sw * channels), wv, acc2);
                    acc3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + 3 * sw * channels), wv, acc3);
                }
            float *o = out + x * channels + c;
            _mm512_mask_storeu_ps(o, m, clamp_ps16(acc0, lower, upper));
            _mm512_mask_storeu_ps(o + channels, m, clamp_ps16(acc1, lower, upper));
            _mm512_mask_storeu_ps(o + 2 * channels, m, clamp_ps16(acc2, lower, upper));
            _mm512_mask_storeu_ps(o + 3 * channels, m, clamp_ps16(acc3, lower, upper));
        }
        for (; x < j->output_width; ++x)
            _mm512_mask_storeu_ps(out + x * channels + c, m,
                                  clamp_ps16(depthwise_border16(j, image, iy, ky0, ky1, x, c, m, bias), lower, upper));
    }
}

AVX512 static void depthwise_run_avx512(const rc_depthwise_f32_job *job, long first_item, long last_item) {
    for (long item = first_item; item < last_item; ++item) {
        const gemm_item it = depthwise_item_at(job, item);
        depthwise_avx512(job, it.row / job->output_height, it.row % job->output_height, it.c0, it.c1);
    }
}

void rc_depthwise_f32_run(const rc_depthwise_f32_job *job, long first_item, long last_item) {
    if (rc_use_avx512()) {
        depthwise_run_avx512(job, first_item, last_item);
        return;
    }
    for (long item = first_item; item < last_item; ++item) {
        const gemm_item it = depthwise_item_at(job, item);
        depthwise_generic(job, it.row / job->output_height, it.row % job->output_height, it.c0, it.c1);
    }
}

// ---------------------------------------------------------------------------------------
// A k×k convolution of an input with few channels (a network's first layer, on an image's
// three colour channels), direct: an output pixel's window row is kernel_w · channels
// contiguous floats of the NHWC input, each broadcast against 16-channel weight vectors. A
// tile holds up to 24 accumulators (pixels × vectors). Alone it is level with oneDNN's kernel;
// its point is that it can produce one output row at a time, so that MobileNetV2's stem runs
// inside its first block's fused kernel (below). Work items are (image row of the output,
// 64-channel block) pairs; each output sums its taps in (ky, kx, channel) order, skipping
// the taps outside the image (zero padding), and then adds its bias: the order of oneDNN's
// kernel (and so of PyTorch's CPU convolution), which iterated sign-gradient attacks on the
// PC engine would otherwise amplify into different adversarials (GradientAttackTests).

enum { DIRECT_BLOCK = 64 };

long rc_conv_direct_f32_packed_size(long n, long taps) { return (n + 15) / 16 * taps * 16; }

void rc_conv_direct_f32_pack(const float *weights, long n, long channels, long kernel_h, long kernel_w, float *packed) {
    const long taps = channels * kernel_h * kernel_w;
    for (long block = 0; block < (n + 15) / 16; ++block)
        for (long ky = 0; ky < kernel_h; ++ky)
            for (long kx = 0; kx < kernel_w; ++kx)
                for (long c = 0; c < channels; ++c)
                    for (long lane = 0; lane < 16; ++lane) {
                        const long o = block * 16 + lane, tap = (ky * kernel_w + kx) * channels + c;
                        packed[(block * taps + tap) * 16 + lane] = o < n ? weights[((o * channels + c) * kernel_h + ky) * kernel_w + kx] : 0;
                    }
}

long rc_conv_direct_f32_items(const rc_conv_direct_f32_job *job) {
    return gemm_item_count(job->n, job->batch * job->output_height, 1, 1, DIRECT_BLOCK);
}

// The window of output (y, x): its input rows [*ky0, *ky1) inside the image, and a pointer to
// tap (ky0, 0, 0) as if the row were unpadded.
static inline const float *direct_window(const rc_conv_direct_f32_job *j, long b, long y, long x, long *ky0, long *ky1) {
    const long iy = y * j->stride_h - j->pad_top, ix = x * j->stride_w - j->pad_left;
    *ky0 = iy < 0 ? -iy : 0;
    *ky1 = iy + j->kernel_h > j->height ? j->height - iy : j->kernel_h;
    return j->input + ((b * j->height + iy + *ky0) * j->width + ix) * j->channels;
}

// Output row (b, y), channels [c0, c1), into `row` (output_width × n floats).
static void direct_generic(const rc_conv_direct_f32_job *j, long b, long y, long c0, long c1, float *row) {
    const long taps = j->kernel_h * j->kernel_w * j->channels, row_taps = j->kernel_w * j->channels;
    for (long x = 0; x < j->output_width; ++x) {
        long ky0, ky1;
        const float *a = direct_window(j, b, y, x, &ky0, &ky1);
        const long ix = x * j->stride_w - j->pad_left;
        for (long o = c0; o < c1; ++o) {
            const float *w = j->packed + (o / 16 * taps) * 16 + o % 16;
            float acc = 0;
            for (long ky = ky0; ky < ky1; ++ky)
                for (long kx = 0; kx < j->kernel_w; ++kx) {
                    if (ix + kx < 0 || ix + kx >= j->width) continue;
                    for (long c = 0; c < j->channels; ++c) {
                        const long t = (ky - ky0) * j->width * j->channels + kx * j->channels + c;
                        acc = fmaf(a[t], w[(ky * row_taps + kx * j->channels + c) * 16], acc);
                    }
                }
            row[x * j->n + o] = clamp_value(acc + j->bias[o], j->lower, j->upper);
        }
    }
}

// `pixels` outputs from column x (every tap inside the image's columns when `interior`;
// otherwise one pixel, its outside columns skipped) × `vectors` 16-channel groups from c.
// `fixed_step`: the input floats between neighbouring outputs when known at compile time
// (then one address register serves every pixel), or 0.
AVX512 static inline __attribute__((always_inline)) void
direct_tile(const rc_conv_direct_f32_job *j, long b, long y, long x, long c, float *row, const int pixels, const int vectors,
            const int interior, const long fixed_step) {
    enum { MAX_PIXELS = 12, MAX_VECTORS = 4 };
    const long taps = j->kernel_h * j->kernel_w * j->channels, row_taps = j->kernel_w * j->channels;
    const long step = fixed_step ? fixed_step : j->stride_w * j->channels, image_row = j->width * j->channels;
    long ky0, ky1;
    const float *a = direct_window(j, b, y, x, &ky0, &ky1);
    long t0 = 0, t1 = row_taps;
    if (!interior) {
        const long ix = x * j->stride_w - j->pad_left;
        t0 = (ix < 0 ? -ix : 0) * j->channels;
        t1 = (ix + j->kernel_w > j->width ? j->width - ix : j->kernel_w) * j->channels;
    }
    const float *w = j->packed + (c / 16) * taps * 16;
    // Fully unrolled over pixels and vectors (also at -O2), so the accumulators stay in registers.
    __m512 acc[MAX_PIXELS][MAX_VECTORS];
#pragma clang loop unroll(full)
    for (int p = 0; p < pixels; ++p)
#pragma clang loop unroll(full)
        for (int v = 0; v < vectors; ++v) acc[p][v] = _mm512_setzero_ps();
    for (long ky = ky0; ky < ky1; ++ky, a += image_row) {
        const float *wr = w + ky * row_taps * 16;
        for (long t = t0; t < t1; ++t) {
            __m512 wv[MAX_VECTORS];
#pragma clang loop unroll(full)
            for (int v = 0; v < vectors; ++v) wv[v] = _mm512_loadu_ps(wr + (v * taps + t) * 16);
#pragma clang loop unroll(full)
            for (int p = 0; p < pixels; ++p) {
                const __m512 in = _mm512_set1_ps(a[p * step + t]);
#pragma clang loop unroll(full)
                for (int v = 0; v < vectors; ++v) acc[p][v] = _mm512_fmadd_ps(in, wv[v], acc[p][v]);
            }
        }
    }
    const __m512 lower = _mm512_set1_ps(j->lower), upper = _mm512_set1_ps(j->upper);
    // Locals, not j's fields: the intrinsic stores may alias anything.
    const long n = j->n;
    float *out = row + x * n + c;
#pragma clang loop unroll(full)
    for (int v = 0; v < vectors; ++v) {
        const __mmask16 m = tail16(n - c - v * 16);
        const __m512 bias = _mm512_maskz_loadu_ps(m, j->bias + c + v * 16);
#pragma clang loop unroll(full)
        for (int p = 0; p < pixels; ++p) _mm512_mask_storeu_ps(out + p * n + v * 16, m, clamp_ps16(_mm512_add_ps(acc[p][v], bias), lower, upper));
    }
}

// One output row's channels [c, c + 16 · vectors): interior columns in tiles of 24 / vectors
// pixels (at most 12), then fours, then ones; border columns one at a time.
AVX512 static inline __attribute__((always_inline)) void
direct_row(const rc_conv_direct_f32_job *j, long b, long y, long c, float *row, long x_lo, long x_hi, const int vectors,
           const long fixed_step) {
    const int tile_pixels = 24 / vectors < 12 ? 24 / vectors : 12;
    for (long x = 0; x < x_lo; ++x) direct_tile(j, b, y, x, c, row, 1, vectors, 0, fixed_step);
    long x = x_lo;
    for (; x + tile_pixels <= x_hi; x += tile_pixels) direct_tile(j, b, y, x, c, row, tile_pixels, vectors, 1, fixed_step);
    for (; x + 4 <= x_hi; x += 4) direct_tile(j, b, y, x, c, row, 4, vectors, 1, fixed_step);
    for (; x < x_hi; ++x) direct_tile(j, b, y, x, c, row, 1, vectors, 1, fixed_step);
    for (x = x_hi > x_lo ? x_hi : x_lo; x < j->output_width; ++x) direct_tile(j, b, y, x, c, row, 1, vectors, 0, fixed_step);
}

// The tiles for `vectors` 16-channel groups, with the step of a stride-2 layer on three
// channels (every first layer here) fixed.
AVX512 static inline __attribute__((always_inline)) void
direct_row_step(const rc_conv_direct_f32_job *j, long b, long y, long c, float *row, long x_lo, long x_hi, const int vectors) {
    if (j->stride_w * j->channels == 6) direct_row(j, b, y, c, row, x_lo, x_hi, vectors, 6);
    else direct_row(j, b, y, c, row, x_lo, x_hi, vectors, 0);
}

AVX512 static void direct_avx512(const rc_conv_direct_f32_job *j, long b, long y, long c0, long c1, float *row) {
    // Columns whose windows lie inside the image: x·stride − pad_left ≥ 0 and
    // x·stride − pad_left + kernel_w ≤ width.
    long x_lo = (j->pad_left + j->stride_w - 1) / j->stride_w;
    long x_hi = j->width + j->pad_left >= j->kernel_w ? (j->width + j->pad_left - j->kernel_w) / j->stride_w + 1 : 0;
    if (x_lo > j->output_width) x_lo = j->output_width;
    if (x_hi > j->output_width) x_hi = j->output_width;
    if (x_hi < x_lo) x_hi = x_lo;
    switch ((c1 - c0 + 15) / 16) {
    case 1: direct_row_step(j, b, y, c0, row, x_lo, x_hi, 1); break;
    case 2: direct_row_step(j, b, y, c0, row, x_lo, x_hi, 2); break;
    case 3: direct_row_step(j, b, y, c0, row, x_lo, x_hi, 3); break;
    default: direct_row_step(j, b, y, c0, row, x_lo, x_hi, 4); break;
    }
}

static void direct_block(const rc_conv_direct_f32_job *j, long b, long y, long c0, long c1, float *row, int vector) {
    if (vector) direct_avx512(j, b, y, c0, c1, row);
    else direct_generic(j, b, y, c0, c1, row);
}

void rc_conv_direct_f32_run(const rc_conv_direct_f32_job *job, long first_item, long last_item) {
    const int vector = rc_use_avx512();
    for (long item = first_item; item < last_item; ++item) {
        const gemm_item it = gemm_item_at(job->n, job->batch * job->output_height, 1, 1, DIRECT_BLOCK, 0, item);
        direct_block(job, it.row / job->output_height, it.row % job->output_height, it.c0, it.c1,
                     job->output + it.row * job->output_width * job->n, vector);
    }
}

// Output row (b, y), every channel, into `row` (the fused block kernel's producer, below).
static void direct_full_row(const rc_conv_direct_f32_job *j, long b, long y, float *row, int vector) {
    for (long c0 = 0; c0 < j->n; c0 += DIRECT_BLOCK) direct_block(j, b, y, c0, c0 + DIRECT_BLOCK < j->n ? c0 + DIRECT_BLOCK : j->n, row, vector);
}

// ---------------------------------------------------------------------------------------
// An expanding 1×1 convolution feeding a 3×3 depthwise one (MobileNetV2's inverted
// residual blocks; or MobileNetV2's stem feeding its first block's), fused: each work item
// (image, band of output rows) computes the expanded rows its depthwise rows need into a
// ring of three rows, so the expanded map — 4.8 MB at 112 × 112 × 96 — never goes out to
// memory and back; with a projection, each chunk of depthwise rows goes through it while
// still in cache, and the depthwise map is not stored either. Without the expansion, the
// depthwise rows read the input map itself.

// Depthwise rows per projection call: up to 128 KiB of them (all of a 7² or 14² band), so
// that the projection's weights — 1.2 MB for MobileNetV2's last block — are read once per
// chunk rather than once per row, and its tiles run over more pixels.
static long projected_rows(const rc_expand_depthwise_f32_job *job) {
    const rc_depthwise_f32_job *d = &job->depthwise;
    if (!job->projects) return 0;
    return band_chunk_rows(d->output_width * d->channels * (long)sizeof(float), 128 * 1024, d->output_height, job->bands);
}

// Floats of an item's scratch: the ring's three expanded rows, then the depthwise rows of a
// projection chunk when the job projects.
static long item_scratch_floats(const rc_expand_depthwise_f32_job *job) {
    const rc_depthwise_f32_job *d = &job->depthwise;
    return ((job->expands ? 3 * d->width : 0) + projected_rows(job) * d->output_width) * d->channels;
}

long rc_expand_depthwise_f32_items(const rc_expand_depthwise_f32_job *job) { return job->depthwise.batch * job->bands; }

long rc_expand_depthwise_f32_scratch_size(const rc_expand_depthwise_f32_job *job) {
    return rc_expand_depthwise_f32_items(job) * item_scratch_floats(job);
}

// A 1×1 kernel's whole output row: `pixels` pixels of `input` (k channels each) into `output`
// (with `residual` when not NULL), in the kernel's own order.
static void pointwise_row(const rc_conv1x1_f32_job *job, const float *input, long pixels, float *output, const float *residual,
                          int vector) {
    rc_conv1x1_f32_job e = *job;
    e.input = input;
    e.rows = 1;
    e.rows_per_image = 1;
    e.image_stride = pixels * job->column_stride;
    e.row_stride = pixels * job->column_stride;
    e.columns = pixels;
    e.output = output;
    e.residual = residual;
    for (long c0 = 0; c0 < e.n; c0 += BLOCK) {
        const long c1 = c0 + BLOCK < e.n ? c0 + BLOCK : e.n;
        if (vector) conv1x1_avx512(&e, 0, 0, pixels, c0, c1);
        else conv1x1_generic(&e, 0, 0, pixels, c0, c1);
    }
}

// Expanded row r of image b into `row`.
static void expand_row(const rc_expand_depthwise_f32_job *job, long b, long r, float *row, int vector) {
    if (job->direct) {
        direct_full_row(job->direct, b, r, row, vector);
        return;
    }
    const rc_conv1x1_f32_job *e = &job->expand;
    pointwise_row(e, e->input + b * e->image_stride + r * e->row_stride, job->depthwise.width, row, NULL, vector);
}

// One depthwise output row from kernel rows[ky0 .. ky1), in depthwise_generic's order.
static void depthwise3x3_row_generic(const rc_depthwise_f32_job *j, const float *const rows[3], long ky0, long ky1, float *out) {
    const long channels = j->channels;
    for (long x = 0; x < j->output_width; ++x) {
        const long ix = x * j->stride_w - j->pad_left;
        for (long c = 0; c < channels; ++c) {
            float acc = j->bias[c];
            for (long ky = ky0; ky < ky1; ++ky)
                for (long kx = 0; kx < 3; ++kx) {
                    if (ix + kx < 0 || ix + kx >= j->width) continue;
                    acc = fmaf(rows[ky][(ix + kx) * channels + c], j->weights[(ky * 3 + kx) * channels + c], acc);
                }
            out[x * channels + c] = clamp_value(acc, j->lower, j->upper);
        }
    }
}

AVX512 static void depthwise3x3_row_all(const rc_depthwise_f32_job *j, const float *const rows[3], long ky0, long ky1, float *out) {
    long x_lo, x_hi;
    interior_columns(j, &x_lo, &x_hi);
    for (long c = 0; c < j->channels; c += 16) depthwise3x3_row(j, rows, ky0, ky1, x_lo, x_hi, c, tail16(j->channels - c), out);
}

void rc_expand_depthwise_f32_run(const rc_expand_depthwise_f32_job *job, long first_item, long last_item) {
    const rc_depthwise_f32_job *d = &job->depthwise;
    const int vector = rc_use_avx512();
    const long row_floats = d->width * d->channels, chunk = projected_rows(job);
    for (long item = first_item; item < last_item; ++item) {
        const long b = item / job->bands, band = item % job->bands;
        const long y0 = band * d->output_height / job->bands, y1 = (band + 1) * d->output_height / job->bands;
        float *ring = job->scratch + item * item_scratch_floats(job);
        float *projected = job->expands ? ring + 3 * row_floats : ring;
        long held[3] = {-1, -1, -1};
        long chunk_start = y0;
        for (long y = y0; y < y1; ++y) {
            long ky0, ky1;
            valid_rows(d, y, &ky0, &ky1);
            const long iy = y * d->stride_h - d->pad_top;
            const float *rows[3] = {ring, ring, ring};
            for (long k = ky0; k < ky1; ++k) {
                const long r = iy + k, slot = r % 3;
                if (!job->expands) {
                    rows[k] = d->input + (b * d->height + r) * row_floats;
                    continue;
                }
                if (held[slot] != r) {
                    expand_row(job, b, r, ring + slot * row_floats, vector);
                    held[slot] = r;
                }
                rows[k] = ring + slot * row_floats;
            }
            const long pixel = (b * d->output_height + y) * d->output_width;
            float *out = job->projects ? projected + (y - chunk_start) * d->output_width * d->channels : d->output + pixel * d->channels;
            if (vector) depthwise3x3_row_all(d, rows, ky0, ky1, out);
            else depthwise3x3_row_generic(d, rows, ky0, ky1, out);
            if (job->projects && (y + 1 - chunk_start == chunk || y + 1 == y1)) {
                // The chunk's rows lie one after the other in the scratch and in the output.
                const rc_conv1x1_f32_job *p = &job->project;
                const long first = (b * d->output_height + chunk_start) * d->output_width;
                pointwise_row(p, projected, (y + 1 - chunk_start) * d->output_width, p->output + first * p->n,
                              p->residual ? p->residual + first * p->n : NULL, vector);
                chunk_start = y + 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// NCHW planes to channels-last, with a network's preprocessing on the way (the inference
// engine's first step). Three channels (an image) run 16 pixels at a time: the three
// preprocessed vectors interleaved into 48 outputs by two permutes per output vector.

// Output vector k, lane j holds pixel (16k + j) / 3 of channel (16k + j) % 3.
AVX512 static void channels_last_rgb_avx512(const float *planes, long plane, long first_pixel, long last_pixel,
                                            const rc_preprocessing *pre, float *output) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512i first[3], pixel[3];
    __mmask16 third[3];
    for (int k = 0; k < 3; ++k) {
        const __m512i g = _mm512_add_epi32(lane, _mm512_set1_epi32(16 * k));
        pixel[k] = _mm512_srli_epi32(_mm512_mullo_epi32(g, _mm512_set1_epi32(43691)), 17);  // g / 3 for g < 98304
        const __m512i channel = _mm512_sub_epi32(g, _mm512_mullo_epi32(pixel[k], _mm512_set1_epi32(3)));
        third[k] = _mm512_cmpeq_epi32_mask(channel, _mm512_set1_epi32(2));
        const __mmask16 second = _mm512_cmpeq_epi32_mask(channel, _mm512_set1_epi32(1));
        first[k] = _mm512_mask_add_epi32(pixel[k], second, pixel[k], _mm512_set1_epi32(16));
    }
    const rgb_planes in = rgb_planes_at(planes, plane, pre);
    for (long p0 = first_pixel; p0 < last_pixel; p0 += 16) {
        const long count = last_pixel - p0 < 16 ? last_pixel - p0 : 16;
        const __mmask16 m = tail16(count);
        __m512 v[3];
        for (int c = 0; c < 3; ++c) {
            v[c] = _mm512_maskz_loadu_ps(m, in.source[c] + p0);
            if (pre) v[c] = preprocess16(v[c], in.scale[c], in.shift[c]);
        }
        float *out = output + p0 * 3;
        for (int k = 0; k < 3; ++k) {
            const long left = 3 * count - 16 * k;
            if (left <= 0) break;
            __m512 x = _mm512_permutex2var_ps(v[0], first[k], v[1]);
            x = _mm512_mask_permutexvar_ps(x, third[k], pixel[k], v[2]);
            _mm512_mask_storeu_ps(out + 16 * k, tail16(left), x);
        }
    }
}

void rc_channels_last_f32(const float *planes, long channels, long plane, long first_pixel, long last_pixel,
                          const rc_preprocessing *preprocessing, float *output) {
    if (channels == 3 && rc_use_avx512()) {
        channels_last_rgb_avx512(planes, plane, first_pixel, last_pixel, preprocessing, output);
        return;
    }
    for (long p = first_pixel; p < last_pixel; ++p)
        for (long c = 0; c < channels; ++c)
            output[p * channels + c] = preprocess(planes[source_plane(preprocessing, c) * plane + p], preprocessing, c);
}

enum { LINEAR_ROWS = 16 };

// ---------------------------------------------------------------------------------------
// A fully connected layer on one input vector: y[o] = bias[o] + Σ_i w[o, i]·x[i] for rows
// [first_row, last_row) of the row-major weights. The step is bound by streaming the
// weights (a classifier's 5–8 MB, cold at the end of a network), so four rows share each
// load of x and every weight is read once.

long rc_linear_f32_items(long outputs) { return (outputs + LINEAR_ROWS - 1) / LINEAR_ROWS; }

AVX512 static void linear_rows_avx512(const float *x, long inputs, const float *weights, const float *bias, long r0, long r1,
                                      float *output) {
    long r = r0;
    for (; r + 4 <= r1; r += 4) {
        const float *w = weights + r * inputs;
        __m512 acc[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps() };
        for (long i = 0; i < inputs; i += 16) {
            const __mmask16 m = tail16(inputs - i);
            const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
            for (int k = 0; k < 4; ++k) acc[k] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + k * inputs + i), v, acc[k]);
        }
        for (int k = 0; k < 4; ++k) output[r + k] = (bias ? bias[r + k] : 0.0f) + _mm512_reduce_add_ps(acc[k]);
    }
    for (; r < r1; ++r) {
        const float *w = weights + r * inputs;
        __m512 acc = _mm512_setzero_ps();
        for (long i = 0; i < inputs; i += 16) {
            const __mmask16 m = tail16(inputs - i);
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + i), _mm512_maskz_loadu_ps(m, x + i), acc);
        }
        output[r] = (bias ? bias[r] : 0.0f) + _mm512_reduce_add_ps(acc);
    }
}

void rc_linear_f32_run(const float *x, long inputs, const float *weights, const float *bias, long outputs, float *output,
                       long first_item, long last_item) {
    const long r0 = first_item * LINEAR_ROWS, r1 = last_item * LINEAR_ROWS < outputs ? last_item * LINEAR_ROWS : outputs;
    if (rc_use_avx512()) {
        linear_rows_avx512(x, inputs, weights, bias, r0, r1, output);
        return;
    }
    for (long r = r0; r < r1; ++r) {
        float acc = 0;
        for (long i = 0; i < inputs; ++i) acc = fmaf(weights[r * inputs + i], x[i], acc);
        output[r] = (bias ? bias[r] : 0.0f) + acc;
    }
}
