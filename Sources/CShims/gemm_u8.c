// 1×1 int8 convolution (any stride) as a GEMM with the scheme's requantization fused into
// its epilogue: uint8 channels-last activations times int8 weights, int32 accumulators kept
// in registers and requantized to uint8 before they leave them. oneDNN's
// kernels would have to write the int32 accumulators out for the TFLite scheme's
// fixed-point epilogue (4 bytes per value written, read back, 1 written); here only the
// uint8 result is stored. AVX-512 VNNI microkernel (8 output pixels of a row × 48 channels, vpdpbusd) and a
// portable C definition of the same arithmetic; tests compare both with oneDNN + the
// separate epilogue. A network's stem (a large kernel on three channels) runs here too, its
// inputs read in place as one run per window row of a zero-point-padded image.
#include "include/CShims.h"
#include <string.h>

#include "epilogue.h"

#define VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))

enum { ROWS = 8, VECTORS = 3, BLOCK = 16 * VECTORS };
_Static_assert(ROWS == 8, "GEMM_TILES (epilogue.h) tiles 8 pixels");

long rc_gemm_u8_packed_size(long n, long k) { return (n + 15) / 16 * (k / 4) * 64; }

void rc_gemm_u8_pack(const int8_t *weights, long n, long k, int8_t *packed) {
    const long quads = k / 4;
    for (long block = 0; block < (n + 15) / 16; ++block)
        for (long q = 0; q < quads; ++q)
            for (long lane = 0; lane < 16; ++lane) {
                long channel = block * 16 + lane;
                for (long b = 0; b < 4; ++b)
                    packed[((block * quads + q) * 16 + lane) * 4 + b] = channel < n ? weights[channel * k + q * 4 + b] : 0;
            }
}

long rc_gemm_u8_items(const rc_gemm_u8_job *job) {
    return gemm_item_count(job->n, job->rows, job->columns, job->column_block, BLOCK);
}

// The input channels of output (row, column).
static inline const uint8_t *pixel_base(const rc_gemm_u8_job *j, long row, long column) {
    return j->input + row / j->rows_per_image * j->image_stride + row % j->rows_per_image * j->row_stride + column * j->column_stride;
}

// Input runs of a job: `segments` (at least 1) runs of run_quads quads each.
static inline long run_count(const rc_gemm_u8_job *j) { return j->segments > 1 ? j->segments : 1; }

static void gemm_generic(const rc_gemm_u8_job *j, long row, long x0, long x1, long c0, long c1) {
    const long quads = j->k / 4, run_quads = quads / run_count(j);
    for (long x = x0; x < x1; ++x) {
        const uint8_t *a = pixel_base(j, row, x);
        for (long c = c0; c < c1; ++c) {
            const int8_t *w = j->packed + ((c / 16) * quads * 16 + c % 16) * 4;
            int32_t acc = 0;
            for (long q = 0; q < quads; ++q) {
                const uint8_t *quad = a + q / run_quads * j->segment_stride + q % run_quads * 4;
                for (long b = 0; b < 4; ++b) acc += (int32_t)quad[b] * (int32_t)w[q * 64 + b];
            }
            j->output[(row * j->columns + x) * j->n + c] = requantize_value(&j->requantization, acc, c);
        }
    }
}

// One pixel's 48 channels (three vectors of requantized values before their clamp) stored as
// 48 bytes: the packs leave each 128-bit lane L holding a, b, c's dwords 4L … 4L + 3 in turn
// (and c's again), and one dword permutation restores channel order.
VNNI static inline void store_pixel48(uint8_t *out, __m512i a, __m512i b, __m512i c, int32_t lo, int32_t hi) {
    const __m512i bytes = pack64_clamped(a, b, c, c, lo, hi);
    const __m512i order = _mm512_set_epi32(0, 0, 0, 0, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    _mm512_mask_storeu_epi8(out, 0xFFFFFFFFFFFFull, _mm512_permutexvar_epi32(order, bytes));
}

// How a work item's tiles requantize in the TFLite scheme, fixed per item: the single floor
// without its sign test, with it in 64-bit lanes, or with it in 32-bit lanes (see
// single_floor16 and single_floor16_narrow) when every channel group of the item takes it,
// with its constants loaded once per item; requantization16's general case otherwise.
// (One core, against choosing per group and tile: 1×1 16 → 96 @ 112 and 24 → 144 @ 56 9 %
// faster, 64 → 256 @ 56 without ReLU 5 %; the narrow form a further 4.5 % on 64 → 256 @ 56
// with the sign test, 3 % on 128 → 512 @ 28.)
enum { TFLITE_GENERAL, TFLITE_SINGLE, TFLITE_SINGLE_SIGNED, TFLITE_SINGLE_NARROW };
typedef struct { single_floor16 groups[VECTORS]; __m512i narrow_even[VECTORS], narrow_odd[VECTORS], narrow_shift[VECTORS]; } tflite_item;

// The item's single-floor constants for channels c0 … c0 + 16·vectors, and its mode.
AVX512 static inline int tflite_item_load(const rc_requantization *q, long c0, int vectors, long n, tflite_item *item) {
    int mode = q->lo < q->zero_point ? TFLITE_SINGLE_NARROW : TFLITE_SINGLE;
    for (int v = 0; v < vectors; ++v) {
        const long c = c0 + 16 * v;
        const requantization16 p = requantization16_load(q, c, tail16(n - c));
        if (!p.single || p.shifts_left) mode = TFLITE_GENERAL;
        item->groups[v] = p.sf;
        // Whether the narrow form is exact for the group: rc_requantization_prepare's flag.
        const int64_t *g = q->prepared ? q->prepared + c / 16 * PREPARED_GROUP : NULL;
        if (mode == TFLITE_SINGLE_NARROW && !(g && g[0] && g[2])) mode = TFLITE_SINGLE_SIGNED;
        item->narrow_even[v] = _mm512_add_epi64(p.sf.constant_even, p.sf.constant_even);
        item->narrow_odd[v] = _mm512_add_epi64(p.sf.constant_odd, p.sf.constant_odd);
        item->narrow_shift[v] = _mm512_maskz_loadu_epi32(tail16(n - c), q->right_shift + c);
    }
    return mode;
}

// A tile's TFLite epilogue: its accumulators (bias included) requantized and stored. This one
// for items whose groups all take the single floor, `mode` its form (a constant). Inline, its
// constants read from the item after the tile's sums: one core, 1×1 16 → 96 @ 112 0.265 →
// 0.230 ms, 64 → 256 @ 56 without the sign test 0.344 → 0.321, with it 0.360 → 0.342,
// against the same out of line.
VNNI static inline __attribute__((always_inline)) void
store_single_floor(const rc_gemm_u8_job *j, long row, long x, long c, const int pixels, const int vectors,
                   const __m512i *scratch, const tflite_item *item, const int mode) {
    const __m512i limit = _mm512_set1_epi64(-(1LL << 30));
    const int32_t lo = j->requantization.lo, hi = j->requantization.hi;
    if (vectors == VECTORS && c + BLOCK <= j->n) {
        // A full block pixel by pixel, as the QNNPACK epilogue does (with the tile's sums in
        // the scratch, the three groups' constants fit the registers: thin layers 2–5 %
        // faster than four rows per group).
        const single_floor16 s0 = item->groups[0], s1 = item->groups[1], s2 = item->groups[2];
        uint8_t *out = j->output + (row * j->columns + x) * j->n + c;
        if (mode == TFLITE_SINGLE_NARROW) {
            const __m512i e0 = item->narrow_even[0], e1 = item->narrow_even[1], e2 = item->narrow_even[2];
            const __m512i o0 = item->narrow_odd[0], o1 = item->narrow_odd[1], o2 = item->narrow_odd[2];
            const __m512i r0 = item->narrow_shift[0], r1 = item->narrow_shift[1], r2 = item->narrow_shift[2];
            for (int r = 0; r < pixels; ++r)
                store_pixel48(out + r * j->n, single_floor16_narrow(_mm512_load_si512(&scratch[r * VECTORS]), &s0, e0, o0, r0),
                              single_floor16_narrow(_mm512_load_si512(&scratch[r * VECTORS + 1]), &s1, e1, o1, r1),
                              single_floor16_narrow(_mm512_load_si512(&scratch[r * VECTORS + 2]), &s2, e2, o2, r2), lo, hi);
        } else {
            const int sign = mode == TFLITE_SINGLE_SIGNED;
            for (int r = 0; r < pixels; ++r)
                store_pixel48(out + r * j->n, single_floor16_apply_limit(_mm512_load_si512(&scratch[r * VECTORS]), &s0, sign, limit),
                              single_floor16_apply_limit(_mm512_load_si512(&scratch[r * VECTORS + 1]), &s1, sign, limit),
                              single_floor16_apply_limit(_mm512_load_si512(&scratch[r * VECTORS + 2]), &s2, sign, limit), lo, hi);
        }
        return;
    }
    for (int v = 0; v < vectors; ++v) {
        const long channel = c + v * 16;
        const __mmask16 m = tail16(j->n - channel);
        uint8_t *out = j->output + (row * j->columns + x) * j->n + channel;
        // A copy: through a pointer, every store (uint8_t, which may alias anything) would
        // make the constants be read again.
        const single_floor16 sf = item->groups[v];
#define SIGNED_VALUE(r) single_floor16_apply_limit(_mm512_load_si512(&scratch[(r) * VECTORS + v]), &sf, 1, limit)
#define UNSIGNED_VALUE(r) single_floor16_apply_limit(_mm512_load_si512(&scratch[(r) * VECTORS + v]), &sf, 0, limit)
#define NARROW_VALUE(r) single_floor16_narrow(_mm512_load_si512(&scratch[(r) * VECTORS + v]), &sf, even, odd, shift)
        if (mode == TFLITE_SINGLE_NARROW) {
            const __m512i even = item->narrow_even[v], odd = item->narrow_odd[v], shift = item->narrow_shift[v];
            STORE_ROWS16(out, j->n, m, 0, pixels, NARROW_VALUE, lo, hi);
        } else if (mode == TFLITE_SINGLE_SIGNED) {
            STORE_ROWS16(out, j->n, m, 0, pixels, SIGNED_VALUE, lo, hi);
        } else {
            STORE_ROWS16(out, j->n, m, 0, pixels, UNSIGNED_VALUE, lo, hi);
        }
#undef NARROW_VALUE
#undef UNSIGNED_VALUE
#undef SIGNED_VALUE
    }
}

// The same for the other items: each group's parameters and form chosen per tile. Out of
// line, so that the compiler keeps the parameters it derives out of the tile's sums, where
// they took registers that the accumulators need (inlined, this form was 25–30 % slower on
// MobileNetV2's expansion layers).
VNNI static __attribute__((noinline)) void
store_tflite(const rc_gemm_u8_job *j, long row, long x, long c, int pixels, int vectors, const __m512i *scratch) {
    for (int v = 0; v < vectors; ++v) {
        const long channel = c + v * 16;
        const __mmask16 m = tail16(j->n - channel);
        const requantization16 q = requantization16_load(&j->requantization, channel, m);
        uint8_t *out = j->output + (row * j->columns + x) * j->n + channel;
#define TFLITE_VALUE(r) requantize16_unclamped(&q, _mm512_load_si512(&scratch[(r) * VECTORS + v]))
        STORE_ROWS16(out, j->n, m, 0, pixels, TFLITE_VALUE, q.lo, q.hi);
#undef TFLITE_VALUE
    }
}

// A tile's QNNPACK epilogue (`bounded`: see float_requantize16_unclamped).
VNNI static inline __attribute__((always_inline)) void
store_float(const rc_gemm_u8_job *j, long row, long x, long c, const int pixels, const int vectors, const __m512i *scratch,
            const int bounded) {
    const rc_requantization *rq = &j->requantization;
    if (vectors == VECTORS && c + BLOCK <= j->n) {
        const __m512 s0 = _mm512_loadu_ps(rq->scale + c), s1 = _mm512_loadu_ps(rq->scale + c + 16), s2 = _mm512_loadu_ps(rq->scale + c + 32);
        const __m512i zero_point = _mm512_set1_epi32(rq->zero_point);
        uint8_t *out = j->output + (row * j->columns + x) * j->n + c;
        for (int r = 0; r < pixels; ++r) {
            const __m512i a = float_requantize16_unclamped(_mm512_load_si512(&scratch[r * VECTORS]), s0, zero_point, bounded);
            const __m512i b = float_requantize16_unclamped(_mm512_load_si512(&scratch[r * VECTORS + 1]), s1, zero_point, bounded);
            const __m512i d = float_requantize16_unclamped(_mm512_load_si512(&scratch[r * VECTORS + 2]), s2, zero_point, bounded);
            store_pixel48(out + r * j->n, a, b, d, rq->lo, rq->hi);
        }
        return;
    }
    for (int v = 0; v < vectors; ++v) {
        const long channel = c + v * 16;
        const __mmask16 m = tail16(j->n - channel);
        const __m512 scale = _mm512_maskz_loadu_ps(m, rq->scale + channel);
        const __m512i zero_point = _mm512_set1_epi32(rq->zero_point);
        uint8_t *out = j->output + (row * j->columns + x) * j->n + channel;
#define FLOAT_VALUE(r) float_requantize16_unclamped(_mm512_load_si512(&scratch[(r) * VECTORS + v]), scale, zero_point, bounded)
        STORE_ROWS16(out, j->n, m, 0, pixels, FLOAT_VALUE, rq->lo, rq->hi);
#undef FLOAT_VALUE
    }
}

// Adds `count` quads of inputs from `a` (pixel r's at a + r·step) times the weight quads
// from `w` (vector v's at w + v·quads·64) to the tile's accumulators.
VNNI static inline __attribute__((always_inline)) void
accumulate_run(__m512i acc[ROWS][VECTORS], const uint8_t *a, const int8_t *w, long count, long quads, long step,
               const int pixels, const int vectors) {
    // Not unrolled: two steps' weights next to 24 accumulators spill to the stack.
#pragma clang loop unroll(disable)
    for (long q = 0; q < count; ++q) {
        __m512i b[VECTORS];
        for (int v = 0; v < vectors; ++v) b[v] = _mm512_loadu_si512(w + (v * quads + q) * 64);
        for (int r = 0; r < pixels; ++r) {
            int32_t four;
            memcpy(&four, a + r * step + q * 4, 4);
            __m512i input = _mm512_set1_epi32(four);
            for (int v = 0; v < vectors; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], input, b[v]);
        }
    }
}

// `pixels` consecutive outputs of one row from column x × `vectors` groups of 16 channels
// from c (the last group masked to the real channel count). Called with constant pixels /
// vectors so that the accumulators live in registers.
VNNI static inline __attribute__((always_inline)) void
tile(const rc_gemm_u8_job *j, long row, long x, long c, const int pixels, const int vectors, const tflite_item *item, int mode) {
    const long quads = j->k / 4, step = j->column_stride;
    const uint8_t *a = pixel_base(j, row, x);
    const int8_t *w = j->packed + (c / 16) * quads * 64;
    // The sums start at the bias (which holds the input zero point's share too).
    __m512i acc[ROWS][VECTORS];
    for (int v = 0; v < vectors; ++v) {
        const __m512i bias = _mm512_maskz_loadu_epi32(tail16(j->n - c - v * 16), j->requantization.bias + c + v * 16);
        for (int r = 0; r < pixels; ++r) acc[r][v] = bias;
    }
    // One loop over contiguous inputs (a pointwise layer), or one per window row (a stem).
    if (j->segments <= 1) {
        accumulate_run(acc, a, w, quads, quads, step, pixels, vectors);
    } else {
        const long runs = j->segments, run_quads = quads / runs;
        for (long run = 0; run < runs; ++run)
            accumulate_run(acc, a + run * j->segment_stride, w + run * run_quads * 64, run_quads, quads, step, pixels, vectors);
    }
    // Through an L1 scratch: with all accumulators still live, the epilogue's parameters and
    // temporaries would not fit the 32 vector registers (3–9 % faster, measured).
    __m512i scratch[ROWS * VECTORS];
    for (int r = 0; r < pixels; ++r)
        for (int v = 0; v < vectors; ++v) _mm512_store_si512(&scratch[r * VECTORS + v], acc[r][v]);
    const rc_requantization *rq = &j->requantization;
    if (rq->scheme == 0) {
        if (mode == TFLITE_SINGLE) store_single_floor(j, row, x, c, pixels, vectors, scratch, item, TFLITE_SINGLE);
        else if (mode == TFLITE_SINGLE_SIGNED) store_single_floor(j, row, x, c, pixels, vectors, scratch, item, TFLITE_SINGLE_SIGNED);
        else if (mode == TFLITE_SINGLE_NARROW) store_single_floor(j, row, x, c, pixels, vectors, scratch, item, TFLITE_SINGLE_NARROW);
        else store_tflite(j, row, x, c, pixels, vectors, scratch);
    } else if (rq->bounded) {
        store_float(j, row, x, c, pixels, vectors, scratch, 1);
    } else {
        store_float(j, row, x, c, pixels, vectors, scratch, 0);
    }
}

VNNI static void gemm_vnni(const rc_gemm_u8_job *j, long row, long x0, long x1, long c0, long c1) {
    const int vectors = (int)((c1 - c0 + 15) / 16);
    tflite_item item;
    const int mode = j->requantization.scheme == 0 ? tflite_item_load(&j->requantization, c0, vectors, j->n, &item) : TFLITE_GENERAL;
    GEMM_TILES(j, row, x0, x1, c0, vectors, &item, mode);
}

static inline gemm_item item_at(const rc_gemm_u8_job *job, long item) {
    return gemm_item_at(job->n, job->rows, job->columns, job->column_block, BLOCK, job->channel_major, item);
}

VNNI static void run_vnni(const rc_gemm_u8_job *job, long first_item, long last_item) {
    for (long item = first_item; item < last_item; ++item) {
        const gemm_item it = item_at(job, item);
        gemm_vnni(job, it.row, it.x0, it.x1, it.c0, it.c1);
    }
}

void rc_gemm_u8_run(const rc_gemm_u8_job *job, long first_item, long last_item) {
    if (rc_use_vnni()) {
        run_vnni(job, first_item, last_item);
        return;
    }
    for (long item = first_item; item < last_item; ++item) {
        const gemm_item it = item_at(job, item);
        gemm_generic(job, it.row, it.x0, it.x1, it.c0, it.c1);
    }
}
