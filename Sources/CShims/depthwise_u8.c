// Depthwise int8 convolution on uint8 channels-last maps with the scheme's requantization
// fused: oneDNN's depthwise kernels would write int32 accumulators for the TFLite scheme's
// fixed-point epilogue to read back. Work items are (output row, 64-channel block) pairs.
// 3×3 kernels go through a VNNI kernel (below); other kernels and CPUs without VNNI take
// sixteen channels per AVX-512 vector, and the portable C is the definition. Tests compare all of them with oneDNN + the separate epilogue.
#include "include/CShims.h"

#include "epilogue.h"

#define VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))

enum { MAX_TAPS = 25, BLOCK = 64 };

long rc_depthwise_u8_items(const rc_depthwise_u8_job *job) {
    return job->batch * job->output_height * ((job->channels + BLOCK - 1) / BLOCK);
}

// The taps of output (y, x) inside the image: rows [ky0, ky1), columns [kx0, kx1).
typedef struct { long ky0, ky1, kx0, kx1, iy, ix; } window;

static inline window window_at(const rc_depthwise_u8_job *j, long y, long x) {
    window w;
    w.iy = y * j->stride_h - j->pad_top;
    w.ix = x * j->stride_w - j->pad_left;
    w.ky0 = w.iy < 0 ? -w.iy : 0;
    w.ky1 = j->height - w.iy < j->kernel_h ? j->height - w.iy : j->kernel_h;
    w.kx0 = w.ix < 0 ? -w.ix : 0;
    w.kx1 = j->width - w.ix < j->kernel_w ? j->width - w.ix : j->kernel_w;
    return w;
}

// One work item: output row r (of batch × output_height), channels [c0, c1).
typedef struct { long row, y, c0, c1; const uint8_t *image; uint8_t *out; } item;

static inline item item_at(const rc_depthwise_u8_job *j, long index) {
    const long blocks = (j->channels + BLOCK - 1) / BLOCK;
    item it;
    it.row = index / blocks;
    it.y = it.row % j->output_height;
    it.c0 = index % blocks * BLOCK;
    it.c1 = it.c0 + BLOCK < j->channels ? it.c0 + BLOCK : j->channels;
    it.image = j->input + it.row / j->output_height * j->height * j->width * j->channels;
    it.out = j->output + it.row * j->output_width * j->channels;
    return it;
}

// Item `it` moved down `r` output rows of the same image, its output `r · out_row_stride` bytes on.
static inline item item_row(const item *it, long r, long out_row_stride) {
    item row = *it;
    row.row += r;
    row.y += r;
    row.out += r * out_row_stride;
    return row;
}

static void item_generic(const rc_depthwise_u8_job *j, const item *it) {
    const long channels = j->channels;
    for (long x = 0; x < j->output_width; ++x) {
        const window w = window_at(j, it->y, x);
        for (long c = it->c0; c < it->c1; ++c) {
            int32_t acc = 0;
            for (long ky = w.ky0; ky < w.ky1; ++ky)
                for (long kx = w.kx0; kx < w.kx1; ++kx) {
                    int32_t value = it->image[((w.iy + ky) * j->width + w.ix + kx) * channels + c];
                    acc += (value - j->input_zero_point) * j->weights[(ky * j->kernel_w + kx) * channels + c];
                }
            it->out[x * channels + c] = requantize_value(&j->requantization, acc, c);
        }
    }
}

// Sixteen channels of one output through the window's valid taps, (x − zp)·w summed.
AVX512 static inline __m512i window16(const rc_depthwise_u8_job *j, const uint8_t *image, window w, long c, __mmask16 m,
                                      const __m512i *weights, __m512i zero_point) {
    __m512i acc = _mm512_setzero_si512();
    for (long ky = w.ky0; ky < w.ky1; ++ky) {
        const uint8_t *line = image + ((w.iy + ky) * j->width + w.ix) * j->channels + c;
        for (long kx = w.kx0; kx < w.kx1; ++kx) {
            __m512i value = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, line + kx * j->channels));
            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_sub_epi32(value, zero_point), weights[ky * j->kernel_w + kx]));
        }
    }
    return acc;
}

// 3×3 kernels with VNNI, up to 64 channels at a time: the three input rows of one window
// column are interleaved into (row 0, row 1, row 2, 0) byte quads per channel, so that one
// vpdpbusd applies a whole weight column, and a window sliding right reuses the columns it
// already interleaved. The unpacks work within 128-bit lanes: quad vector k, lane L takes
// input dword 4L + k; each row's dwords are first transposed 4 × 4 (dword_transpose4x4) so
// that this is channel group 16k + 4L, and quad vector k holds channels 16k … 16k + 15 in
// order. Cells outside the image are the zero point, so its share is the constant −zp·Σw.
typedef struct { __m512i q[4]; } column64;

VNNI static inline column64 interleave_column(__m512i r0, __m512i r1, __m512i r2) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i a_lo = _mm512_unpacklo_epi8(r0, r1), a_hi = _mm512_unpackhi_epi8(r0, r1);
    __m512i b_lo = _mm512_unpacklo_epi8(r2, zero), b_hi = _mm512_unpackhi_epi8(r2, zero);
    column64 c = { { _mm512_unpacklo_epi16(a_lo, b_lo), _mm512_unpackhi_epi16(a_lo, b_lo),
                     _mm512_unpacklo_epi16(a_hi, b_hi), _mm512_unpackhi_epi16(a_hi, b_hi) } };
    return c;
}

// Window column ix of the rows from iy: cells outside the image hold the zero point, which
// contributes nothing to Σ (x − zp)·w — the padding's meaning.
// `rows`: the window's three input rows at this item's first channel, NULL outside the image.
VNNI static inline column64 load_column(const uint8_t *const rows[3], long ix, long width, long channels, __mmask64 m,
                                        __m512i zero_point) {
    if (ix < 0 || ix >= width) return interleave_column(zero_point, zero_point, zero_point);
    const long offset = ix * channels;
    return interleave_column(rows[0] ? dword_transpose4x4(_mm512_maskz_loadu_epi8(m, rows[0] + offset)) : zero_point,
                             rows[1] ? dword_transpose4x4(_mm512_maskz_loadu_epi8(m, rows[1] + offset)) : zero_point,
                             rows[2] ? dword_transpose4x4(_mm512_maskz_loadu_epi8(m, rows[2] + offset)) : zero_point);
}

long rc_depthwise_u8_packed3x3_size(long channels) { return (channels + BLOCK - 1) / BLOCK * 3 * 4 * 64; }

// The layout load_column gives a weight column: byte b of dword i in 128-bit lane L of
// quad vector k is row b (b < 3; byte 3 is 0) of channel 16k + 4L + i of the block.
void rc_depthwise_u8_pack3x3(const int32_t *weights, long channels, int8_t *packed) {
    for (long block = 0; block < (channels + BLOCK - 1) / BLOCK; ++block)
        for (long kx = 0; kx < 3; ++kx)
            for (long k = 0; k < 4; ++k)
                for (long lane = 0; lane < 4; ++lane)
                    for (long i = 0; i < 4; ++i)
                        for (long b = 0; b < 4; ++b) {
                            long channel = block * BLOCK + 16 * k + 4 * lane + i;
                            int8_t value = b < 3 && channel < channels ? (int8_t)weights[(b * 3 + kx) * channels + channel] : 0;
                            packed[((block * 3 + kx) * 4 + k) * 64 + lane * 16 + i * 4 + b] = value;
                        }
}

// How window3x3 requantizes, fixed per item so that its group loop unrolls without branches:
// the TFLite scheme's single floor (sign test on or off: see single_floor16), QNNPACK's float
// form (with or without its upper limit: see float_requantize16_unclamped), or
// requantize16_unclamped's general case (left shifts, shifts outside the single floor's range).
enum { REQUANTIZE_GENERAL, REQUANTIZE_FLOAT, REQUANTIZE_FLOAT_BOUNDED, REQUANTIZE_SINGLE, REQUANTIZE_SINGLE_SIGNED };

AVX512 static inline __attribute__((always_inline)) __m512i requantize_as(const requantization16 *q, __m512i x, const int mode) {
    if (mode == REQUANTIZE_FLOAT || mode == REQUANTIZE_FLOAT_BOUNDED)
        return float_requantize16_unclamped(x, q->scale, q->zero_point, mode == REQUANTIZE_FLOAT_BOUNDED);
    if (mode == REQUANTIZE_SINGLE || mode == REQUANTIZE_SINGLE_SIGNED)
        return single_floor16_apply_limit(x, &q->sf, mode == REQUANTIZE_SINGLE_SIGNED, _mm512_set1_epi64(-(1LL << 30)));
    return requantize16_unclamped(q, x);
}

// Every output of item `it`, `groups` of sixteen channels; `full`: all 64 (constants there,
// so that the loops unroll).
VNNI static inline __attribute__((always_inline)) void
window3x3(const rc_depthwise_u8_job *j, const item *it, const requantization16 q[4], const __m512i offset[4], const int groups,
          const int full, const int mode) {
    const long channels = j->channels, line = j->width * channels, stride = j->stride_w, block = it->c1 - it->c0;
    const __mmask64 m = block == 64 ? ~(__mmask64)0 : (((__mmask64)1 << block) - 1);
    column64 w[3];
    for (long kx = 0; kx < 3; ++kx)
        for (int k = 0; k < 4; ++k) w[kx].q[k] = _mm512_loadu_si512(j->packed3x3 + ((it->c0 / BLOCK * 3 + kx) * 4 + k) * 64);
    const long iy = it->y * j->stride_h - j->pad_top, width = j->width;
    const uint8_t *rows[3];
    for (int k = 0; k < 3; ++k) rows[k] = iy + k >= 0 && iy + k < j->height ? it->image + (iy + k) * line + it->c0 : NULL;
    const __m512i zp = _mm512_set1_epi8((char)j->input_zero_point);
    long ix = -j->pad_left;
    column64 c0 = load_column(rows, ix, width, channels, m, zp), c1 = load_column(rows, ix + 1, width, channels, m, zp);
    for (long x = 0; x < j->output_width; ++x) {
        column64 c2 = load_column(rows, ix + 2, width, channels, m, zp);
        __m512i r[4];
#pragma clang loop unroll(full)
        for (int g = 0; g < 4; ++g) {
            if (g < groups) {
                __m512i acc = _mm512_dpbusd_epi32(offset[g], c0.q[g], w[0].q[g]);
                acc = _mm512_dpbusd_epi32(acc, c1.q[g], w[1].q[g]);
                acc = _mm512_dpbusd_epi32(acc, c2.q[g], w[2].q[g]);
                r[g] = requantize_as(&q[g], acc, mode);
            } else {
                r[g] = _mm512_setzero_si512();
            }
        }
        // The packs leave lane L holding dwords 4L … 4L + 3 of r0 … r3: transposed again.
        const __m512i bytes = dword_transpose4x4(pack64_clamped(r[0], r[1], r[2], r[3], j->requantization.lo, j->requantization.hi));
        uint8_t *o = it->out + x * channels + it->c0;
        if (full) _mm512_storeu_si512(o, bytes);
        else _mm512_mask_storeu_epi8(o, m, bytes);
        ix += stride;
        if (stride == 1) { c0 = c1; c1 = c2; }
        else { c0 = c2; c1 = load_column(rows, ix + 1, width, channels, m, zp); }
    }
}

// window3x3 with `mode` as a compile-time constant.
#define WINDOW3X3_MODES(j, it, q, offset, groups, full, mode)                                      \
    switch (mode) {                                                                                 \
    case REQUANTIZE_FLOAT: window3x3(j, it, q, offset, groups, full, REQUANTIZE_FLOAT); break;      \
    case REQUANTIZE_FLOAT_BOUNDED: window3x3(j, it, q, offset, groups, full, REQUANTIZE_FLOAT_BOUNDED); break; \
    case REQUANTIZE_SINGLE: window3x3(j, it, q, offset, groups, full, REQUANTIZE_SINGLE); break;    \
    case REQUANTIZE_SINGLE_SIGNED: window3x3(j, it, q, offset, groups, full, REQUANTIZE_SINGLE_SIGNED); break; \
    default: window3x3(j, it, q, offset, groups, full, REQUANTIZE_GENERAL); break;                 \
    }

// Item `it` and the `rows` − 1 output rows after it (same image and channels), row r written
// at it->out + r·out_row_stride: the parameters are loaded and the mode chosen once.
VNNI static void item3x3_vnni(const rc_depthwise_u8_job *j, const item *it, long rows, long out_row_stride) {
    const long block = it->c1 - it->c0;
    const int groups = (int)((block + 15) / 16);
    requantization16 q[4];
    __m512i offset[4];
    int mode = j->requantization.scheme == 0 ? REQUANTIZE_SINGLE
                                              : (j->requantization.bounded ? REQUANTIZE_FLOAT_BOUNDED : REQUANTIZE_FLOAT);
    for (int g = 0; g < groups; ++g) {
        const __mmask16 gm = tail16(block - 16 * g);
        q[g] = requantization16_load(&j->requantization, it->c0 + 16 * g, gm);
        offset[g] = _mm512_add_epi32(_mm512_maskz_loadu_epi32(gm, j->zero_point_offset + it->c0 + 16 * g), q[g].bias);
        if (q[g].scheme == 0 && (!q[g].single || q[g].shifts_left)) mode = REQUANTIZE_GENERAL;
    }
    if (mode == REQUANTIZE_SINGLE && q[0].sf.sign_correction) mode = REQUANTIZE_SINGLE_SIGNED;
    for (long r = 0; r < rows; ++r) {
        const item row = item_row(it, r, out_row_stride);
        if (block == BLOCK) WINDOW3X3_MODES(j, &row, q, offset, 4, 1, mode)
        else WINDOW3X3_MODES(j, &row, q, offset, groups, 0, mode)
    }
}

AVX512 static void item_avx512(const rc_depthwise_u8_job *j, const item *it) {
    const long channels = j->channels, taps = j->kernel_h * j->kernel_w;
    const __m512i zero_point = _mm512_set1_epi32(j->input_zero_point);
    for (long c = it->c0; c < it->c1; c += 16) {
        const __mmask16 m = tail16(it->c1 - c);
        __m512i weights[MAX_TAPS];
        for (long t = 0; t < taps; ++t) weights[t] = _mm512_maskz_loadu_epi32(m, j->weights + t * channels + c);
        const requantization16 q = requantization16_load(&j->requantization, c, m);
        for (long x = 0; x < j->output_width; ++x) {
            __m512i acc = window16(j, it->image, window_at(j, it->y, x), c, m, weights, zero_point);
            _mm512_mask_cvtepi32_storeu_epi8(it->out + x * channels + c, m, requantize16(&q, acc));
        }
    }
}

// Work item `it` and the `rows` − 1 output rows after it in the same image, row r written at
// it->out + r·out_row_stride, on the kernel this job and CPU take.
static void run_rows(const rc_depthwise_u8_job *j, const item *it, long rows, long out_row_stride) {
    if (rc_use_vnni() && j->kernel_h == 3 && j->kernel_w == 3) {
        item3x3_vnni(j, it, rows, out_row_stride);
        return;
    }
    for (long r = 0; r < rows; ++r) {
        const item row = item_row(it, r, out_row_stride);
        if (rc_use_avx512() && j->kernel_h * j->kernel_w <= MAX_TAPS) item_avx512(j, &row);
        else item_generic(j, &row);
    }
}

void rc_depthwise_u8_run(const rc_depthwise_u8_job *job, long first_item, long last_item) {
    for (long index = first_item; index < last_item; ++index) {
        const item it = item_at(job, index);
        run_rows(job, &it, 1, 0);
    }
}

// ---------------------------------------------------------------------------------------
// A depthwise layer and the 1×1 projection reading it, fused: each work item (image, band of
// output rows) writes a chunk of depthwise rows into its scratch and projects it at once, so the
// depthwise map is never stored.

long rc_depthwise_project_u8_items(const rc_depthwise_project_u8_job *job) { return job->depthwise.batch * job->bands; }

// Depthwise rows per projection call: narrow rows go several at a time, so that the per-row
// set-up (each channel block's parameters and weights, the GEMM's job) is shared and the
// projection's tiles run over more pixels; about 16 KiB of depthwise output at most, so that
// it stays in L1 for the projection.
static long chunk_rows(const rc_depthwise_project_u8_job *job) {
    const rc_depthwise_u8_job *d = &job->depthwise;
    return band_chunk_rows(d->output_width * d->channels, 16384, d->output_height, job->bands);
}

// Bytes of an item's scratch: a chunk of depthwise rows, with 64 bytes of slack for the GEMM's reads.
static long scratch_bytes(const rc_depthwise_project_u8_job *job) {
    return (chunk_rows(job) * job->depthwise.output_width * job->depthwise.channels + 64 + 63) / 64 * 64;
}

long rc_depthwise_project_u8_scratch_size(const rc_depthwise_project_u8_job *job) {
    return rc_depthwise_project_u8_items(job) * scratch_bytes(job);
}

void rc_depthwise_project_u8_run(const rc_depthwise_project_u8_job *job, long first_item, long last_item) {
    const rc_depthwise_u8_job *d = &job->depthwise;
    const long blocks = (d->channels + BLOCK - 1) / BLOCK, width = d->output_width, line = width * d->channels;
    const long chunk = chunk_rows(job);
    for (long index = first_item; index < last_item; ++index) {
        const long b = index / job->bands, band = index % job->bands;
        const long y0 = band * d->output_height / job->bands, y1 = (band + 1) * d->output_height / job->bands;
        uint8_t *rows = job->scratch + index * scratch_bytes(job);
        for (long y = y0; y < y1; y += chunk) {
            const long count = y + chunk < y1 ? chunk : y1 - y;
            for (long block = 0; block < blocks; ++block) {
                item it = item_at(d, (b * d->output_height + y) * blocks + block);
                it.out = rows;
                run_rows(d, &it, count, line);
            }
            // The chunk's rows lie one after the other in the scratch and in the output: one
            // row of count · width pixels for the GEMM.
            rc_gemm_u8_job p = job->project;
            p.input = rows;
            p.rows = 1;
            p.columns = count * width;
            p.rows_per_image = 1;
            p.image_stride = count * line;
            p.row_stride = count * line;
            p.column_stride = d->channels;
            p.output = job->project.output + (b * d->output_height + y) * width * p.n;
            p.column_block = count * width;
            p.channel_major = 0;
            p.segments = 0;
            rc_gemm_u8_run(&p, 0, rc_gemm_u8_items(&p));
        }
    }
}
