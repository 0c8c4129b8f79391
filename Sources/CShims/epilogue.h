// Shared inline pieces of the CShims kernels: the int8 epilogues (quantized.c, gemm_u8.c) —
// gemmlowp's fixed-point rounding in portable C and on sixteen AVX-512 lanes — and the GEMM
// kernels' work items (gemm_u8.c, conv_f32.c). Private to CShims.
#ifndef ROBUSTCTL_EPILOGUE_H
#define ROBUSTCTL_EPILOGUE_H
#include <immintrin.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "include/CShims.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

// Sixteen lanes of tflite_multiply (below) for multipliers other than INT32_MIN (the only
// saturating case; callers check), with the shift-dependent constants precomputed:
// `mask` = 2^right − 1 and `threshold` = mask >> 1.
//
// The doubling high multiply's truncating division, trunc((ab + nudge) / 2^31) with
// nudge = ab ≥ 0 ? 2^30 : 1 − 2^30, equals floor((ab + 2^30) / 2^31) for every ab: for
// negative t, trunc(t / d) = floor((t + d − 1) / d), and 1 − 2^30 + 2^31 − 1 = 2^30.
// gemmlowp's RoundingDivideByPOT on sixteen lanes: divide by 2^right, ties away from zero.
AVX512 static inline __m512i rounding_divide16(__m512i high, __m512i right_shift, __m512i mask, __m512i threshold) {
    const __m512i zero = _mm512_setzero_si512(), one32 = _mm512_set1_epi32(1);
    __m512i remainder = _mm512_and_si512(high, mask);
    __m512i limit = _mm512_mask_add_epi32(threshold, _mm512_cmplt_epi32_mask(high, zero), threshold, one32);
    __m512i result = _mm512_srav_epi32(high, right_shift);
    return _mm512_mask_add_epi32(result, _mm512_cmpgt_epi32_mask(remainder, limit), result, one32);
}

AVX512 static inline __m512i tflite_multiply16(__m512i shifted, __m512i multiplier, __m512i multiplier_odd,
                                               __m512i right_shift, __m512i mask, __m512i threshold) {
    const __m512i half = _mm512_set1_epi64(1LL << 30);
    __m512i even = _mm512_add_epi64(_mm512_mul_epi32(shifted, multiplier), half);
    __m512i odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(shifted, 32), multiplier_odd), half);
    // Bits 31…62 of each sum: the low half of (sum >> 31) in even lanes, the high half of
    // (sum << 1) in odd lanes.
    __m512i high = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 31), _mm512_slli_epi64(odd, 1));
    return rounding_divide16(high, right_shift, mask, threshold);
}

/// Broadcast parameters of tflite_multiply16 for one multiplier and right shift.
typedef struct { __m512i multiplier, multiplier_odd, right_shift, mask, threshold; } tflite_params16;

AVX512 static inline tflite_params16 tflite_params_load(__mmask16 m, const int32_t *multiplier, const int32_t *right_shift) {
    tflite_params16 p;
    p.multiplier = _mm512_maskz_loadu_epi32(m, multiplier);
    p.multiplier_odd = _mm512_srli_epi64(p.multiplier, 32);
    p.right_shift = _mm512_maskz_loadu_epi32(m, right_shift);
    p.mask = _mm512_sub_epi32(_mm512_sllv_epi32(_mm512_set1_epi32(1), p.right_shift), _mm512_set1_epi32(1));
    p.threshold = _mm512_srai_epi32(p.mask, 1);
    return p;
}

AVX512 static inline __m512i clamp16(__m512i v, int32_t lo, int32_t hi) {
    return _mm512_min_epi32(_mm512_max_epi32(v, _mm512_set1_epi32(lo)), _mm512_set1_epi32(hi));
}

// A network's preprocessing (rc_preprocessing), as the float executor's affine op computes
// it: x·a, rounded, then + b, rounded — never one fused multiply-add.
static inline float preprocess(float x, const rc_preprocessing *p, long c) {
#pragma clang fp contract(off)
    if (!p) return x;
    float scaled = x * p->scale[c];
    return scaled + p->shift[c];
}

AVX512 static inline __m512 preprocess16(__m512 x, __m512 a, __m512 b) {
#pragma clang fp contract(off)
    return _mm512_add_ps(_mm512_mul_ps(x, a), b);
}

static inline long source_plane(const rc_preprocessing *p, long c) { return p ? p->source[c] : c; }

// An RGB image's three input planes in output-channel order, with each channel's
// preprocessing factors broadcast (1 and 0 without preprocessing).
typedef struct { const float *source[3]; __m512 scale[3], shift[3]; } rgb_planes;

AVX512 static inline rgb_planes rgb_planes_at(const float *planes, long plane, const rc_preprocessing *pre) {
    rgb_planes r;
    for (int c = 0; c < 3; ++c) {
        r.source[c] = planes + source_plane(pre, c) * plane;
        r.scale[c] = _mm512_set1_ps(pre ? pre->scale[c] : 1.0f);
        r.shift[c] = _mm512_set1_ps(pre ? pre->shift[c] : 0.0f);
    }
    return r;
}

AVX512 static inline __mmask16 tail16(long remaining) {
    return remaining >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << remaining) - 1);
}

// tflite_multiply + zero point as one floor. For right shift r ≥ 1 the doubling high
// multiply's rounding and the rounding shift fold (floor(floor(a/m)/n) = floor(a/(mn))):
//   tflite_multiply(x, M, 0, r) + zp = floor((x·M + C − s·2^31) / 2^(31+r)),
//   C = 2^30 + 2^(30+r) + zp·2^(31+r),  s = [x·M < −2^30]
// (s is the rounding shift's "negative" test on the high half; see rounding_divide16). In
// 64-bit lanes that is exact while |x·M + C| < 2^63: r ≤ 22 and zp ≤ 255 keep C < 2^61.
// Sixteen lanes: even and odd int32 lanes as two sets of 64-bit lanes.
// Where the result is then clamped below at lo ≥ zp (ReLU, ReLU6), s is not needed: s = 1
// means x·M + 2^30 < 0, so the quotient is below ½ and the result ≤ zp ≤ lo with or without
// the correction — the clamp returns lo either way.
typedef struct {
    __m512i multiplier, multiplier_odd, constant_even, constant_odd, shift_even, shift_odd;
    int sign_correction;
} single_floor16;

static inline int single_floor_applies(int32_t right_shift) { return right_shift >= 1 && right_shift <= 22; }

// Parameters for sixteen lanes from per-lane multipliers, right shifts (all single_floor_applies),
// one zero point and the lower clamp bound that the caller applies to the result.
AVX512 static inline single_floor16 single_floor_params(__m512i multiplier, __m512i right_shift, int32_t zero_point, int32_t lo) {
    const __m512i low = _mm512_set1_epi64(0xFFFFFFFF), zp = _mm512_set1_epi64(zero_point), one = _mm512_set1_epi64(1);
    __m512i r_even = _mm512_and_si512(right_shift, low), r_odd = _mm512_srli_epi64(right_shift, 32);
    single_floor16 p;
    p.multiplier = multiplier;
    p.multiplier_odd = _mm512_srli_epi64(multiplier, 32);
    const __m512i base = _mm512_set1_epi64(1LL << 30), thirty = _mm512_set1_epi64(30), thirty_one = _mm512_set1_epi64(31);
    p.constant_even = _mm512_add_epi64(_mm512_add_epi64(base, _mm512_sllv_epi64(one, _mm512_add_epi64(r_even, thirty))),
                                       _mm512_sllv_epi64(zp, _mm512_add_epi64(r_even, thirty_one)));
    p.constant_odd = _mm512_add_epi64(_mm512_add_epi64(base, _mm512_sllv_epi64(one, _mm512_add_epi64(r_odd, thirty))),
                                      _mm512_sllv_epi64(zp, _mm512_add_epi64(r_odd, thirty_one)));
    p.shift_even = _mm512_add_epi64(r_even, thirty_one);
    // The odd lanes' result belongs in the high half: shift by 31 + r − 32.
    p.shift_odd = _mm512_sub_epi64(r_odd, one);
    p.sign_correction = lo < zero_point;
    return p;
}

// Whether every lane of `m` has a right shift single_floor_applies to.
AVX512 static inline int single_floor_lanes(__m512i right_shift, __mmask16 m) {
    __mmask16 ok = _mm512_cmpge_epi32_mask(right_shift, _mm512_set1_epi32(1)) & _mm512_cmple_epi32_mask(right_shift, _mm512_set1_epi32(22));
    return (ok & m) == m;
}

// With the sign test against `limit` (−2^30 unless the caller folded a constant out of x) and
// applied when `sign_correction` (p->sign_correction, or a compile-time constant equal to it).
AVX512 static inline __m512i single_floor16_apply_limit(__m512i x, const single_floor16 *p, int sign_correction, __m512i limit) {
    const __m512i two31 = _mm512_set1_epi64(1LL << 31);
    __m512i even = _mm512_mul_epi32(x, p->multiplier), odd = _mm512_mul_epi32(_mm512_srli_epi64(x, 32), p->multiplier_odd);
    __m512i e = _mm512_add_epi64(even, p->constant_even), o = _mm512_add_epi64(odd, p->constant_odd);
    if (sign_correction) {
        e = _mm512_mask_sub_epi64(e, _mm512_cmplt_epi64_mask(even, limit), e, two31);
        o = _mm512_mask_sub_epi64(o, _mm512_cmplt_epi64_mask(odd, limit), o, two31);
    }
    return _mm512_mask_blend_epi32(0xAAAA, _mm512_srav_epi64(e, p->shift_even), _mm512_srav_epi64(o, p->shift_odd));
}

// The single floor with its sign test in 32-bit lanes, for |x| < 2^30 and h′ (below) and
// h′ − 1 within int32 (rc_requantization_prepare checks both against the layer's accumulator
// bound). h′ = floor((x·M + C) / 2^31) = h + 2^(r−1) + zp·2^r, h = floor((x·M + 2^30) / 2^31)
// being the doubling high multiply's result, is the high dword of 2x·M + 2C: the odd lanes'
// is in place and one dword shuffle moves the even lanes'. The sign test s = [h < 0] may be
// taken as [x < 0]: the two differ only where x < 0 and h = 0, and subtracting s changes
// floor(h′ / 2^r) only where h ≡ −2^(r−1) (mod 2^r). The result is floor((h′ − s) / 2^r).
// `constant_even`, `constant_odd`: 2C; `right_shift`: r, in 32-bit lanes. Against
// single_floor16_apply_limit with the sign test: one 32-bit compare and subtraction for two
// 64-bit ones each, one 32-bit variable shift for two 64-bit ones.
AVX512 static inline __m512i single_floor16_narrow(__m512i x, const single_floor16 *p, __m512i constant_even, __m512i constant_odd,
                                                   __m512i right_shift) {
    const __m512i twice = _mm512_add_epi32(x, x);
    const __m512i e = _mm512_add_epi64(_mm512_mul_epi32(twice, p->multiplier), constant_even);
    const __m512i o = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(twice, 32), p->multiplier_odd), constant_odd);
    __m512i h = _mm512_mask_shuffle_epi32(o, 0x5555, e, _MM_PERM_CDAB);
    h = _mm512_mask_sub_epi32(h, _mm512_movepi32_mask(x), h, _mm512_set1_epi32(1));
    return _mm512_srav_epi32(h, right_shift);
}

AVX512 static inline __m512i single_floor16_apply(__m512i x, const single_floor16 *p) {
    return single_floor16_apply_limit(x, p, p->sign_correction, _mm512_set1_epi64(-(1LL << 30)));
}

// gemmlowp's SaturatingRoundingDoublingHighMul followed by RoundingDivideByPOT, as TFLite's
// MultiplyByQuantizedMultiplier (non-single-rounding build).
static inline int32_t tflite_multiply(int32_t x, int32_t multiplier, int32_t left_shift, int32_t right_shift) {
    int64_t a = (int64_t)x * (int64_t)(1 << left_shift);
    int32_t shifted = (int32_t)a; // TFLite multiplies in int32; callers keep left shifts small
    int32_t high;
    if (shifted == INT32_MIN && multiplier == INT32_MIN) {
        high = INT32_MAX;
    } else {
        int64_t ab = (int64_t)shifted * (int64_t)multiplier;
        int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
        high = (int32_t)((ab + nudge) / (1LL << 31));
    }
    int32_t mask = (int32_t)((1LL << right_shift) - 1);
    int32_t remainder = high & mask;
    int32_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
    return (high >> right_shift) + (remainder > threshold ? 1 : 0);
}

static inline uint8_t clamp_u8(int32_t v, int32_t lo, int32_t hi) {
    return (uint8_t)(v < lo ? lo : (v > hi ? hi : v));
}

// QNNPACK's fp32 requantization of one value: nearest-even of float(x) × scale (x = acc + bias).
static inline uint8_t float_requantize(int32_t x, float scale, int32_t zero_point, int32_t lo, int32_t hi) {
    float limited = fminf(fmaxf((float)x * scale, -32768.0f), 32767.0f);
    return clamp_u8((int32_t)nearbyintf(limited) + zero_point, lo, hi);
}

// Only the upper limit is applied: below −32768 the scalar form's result is clamped to lo
// anyway, and so is this one's — the conversion gives the value itself or, past −2³¹,
// INT32_MIN, and either plus a zero point in [0, 255] stays below −32768, which every caller's
// clamp or saturating pack turns into lo. Above 2³¹ the conversion would give INT32_MIN too,
// hence the upper limit — unless `bounded` (rc_requantization.bounded, a compile-time constant
// here): with |x · scale| < 2^30 the conversion is exact, and a value past 32767 plus the zero
// point saturates in the caller's clamp or packs just as the limited one does. The limit is
// one of the epilogue's six vector operations (MobileNetV2's thin layers ≈ 8 % faster on one
// core without it).
AVX512 static inline __m512i float_requantize16_unclamped(__m512i x, __m512 scale, __m512i zero_point, const int bounded) {
    __m512 scaled = _mm512_mul_ps(_mm512_cvtepi32_ps(x), scale);
    if (!bounded) scaled = _mm512_min_ps(scaled, _mm512_set1_ps(32767.0f));
    return _mm512_add_epi32(_mm512_cvt_roundps_epi32(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zero_point);
}

AVX512 static inline __m512i float_requantize16(__m512i x, __m512 scale, __m512i zero_point, int32_t lo, int32_t hi) {
    return clamp16(float_requantize16_unclamped(x, scale, zero_point, 0), lo, hi);
}

// One value of an rc_requantization (acc without the bias).
static inline uint8_t requantize_value(const rc_requantization *q, int32_t acc, long c) {
    int32_t x = acc + q->bias[c];
    if (q->scheme == 0)
        return clamp_u8(tflite_multiply(x, q->multiplier[c], q->left_shift[c], q->right_shift[c]) + q->zero_point, q->lo, q->hi);
    return float_requantize(x, q->scale[c], q->zero_point, q->lo, q->hi);
}

// An rc_requantization's parameters for sixteen channels, loaded once and applied to many
// accumulator vectors.
typedef struct {
    int scheme, single, shifts_left;
    __m512i bias, left, zero_point;
    tflite_params16 t;
    single_floor16 sf;
    __m512 scale;
    int32_t lo, hi;
} requantization16;

// rc_requantization_prepare's table: per group of sixteen channels, PREPARED_GROUP int64s —
// [0] single_floor_lanes over the group's real channels, [1] whether any shifts left, [2]
// whether single_floor16_narrow is exact for the group, then single_floor16's multiplier_odd,
// constant_even, constant_odd, shift_even and shift_odd (8 lanes each), derived by
// single_floor_params from the group's parameters.
enum { PREPARED_GROUP = 48 };

AVX512 static inline requantization16 requantization16_load(const rc_requantization *q, long c, __mmask16 m) {
    requantization16 p;
    p.scheme = q->scheme;
    p.bias = _mm512_maskz_loadu_epi32(m, q->bias + c);
    p.zero_point = _mm512_set1_epi32(q->zero_point);
    p.lo = q->lo; p.hi = q->hi;
    if (q->scheme == 0 && q->prepared && c % 16 == 0 && q->prepared[c / 16 * PREPARED_GROUP]) {
        const int64_t *g = q->prepared + c / 16 * PREPARED_GROUP;
        p.shifts_left = (int)g[1];
        p.left = p.shifts_left ? _mm512_maskz_loadu_epi32(m, q->left_shift + c) : _mm512_setzero_si512();
        p.single = 1;
        p.sf.multiplier = _mm512_maskz_loadu_epi32(m, q->multiplier + c);
        p.sf.multiplier_odd = _mm512_loadu_si512(g + 8);
        p.sf.constant_even = _mm512_loadu_si512(g + 16);
        p.sf.constant_odd = _mm512_loadu_si512(g + 24);
        p.sf.shift_even = _mm512_loadu_si512(g + 32);
        p.sf.shift_odd = _mm512_loadu_si512(g + 40);
        p.sf.sign_correction = q->lo < q->zero_point;
        p.t = (tflite_params16){ p.left, p.left, p.left, p.left, p.left };
        p.scale = _mm512_setzero_ps();
        return p;
    }
    if (q->scheme == 0) {
        p.left = _mm512_maskz_loadu_epi32(m, q->left_shift + c);
        p.shifts_left = _mm512_test_epi32_mask(p.left, p.left) != 0;
        p.t = tflite_params_load(m, q->multiplier + c, q->right_shift + c);
        p.single = single_floor_lanes(p.t.right_shift, m);
        if (p.single) p.sf = single_floor_params(p.t.multiplier, p.t.right_shift, q->zero_point, q->lo);
        p.scale = _mm512_setzero_ps();
    } else {
        p.left = _mm512_setzero_si512();
        p.t = (tflite_params16){ p.left, p.left, p.left, p.left, p.left };
        p.single = 0;
        p.shifts_left = 0;
        p.scale = _mm512_maskz_loadu_ps(m, q->scale + c);
    }
    return p;
}

// Sixteen requantized values before the clamp, as int32 lanes, from accumulators that
// already include the bias (kernels that start their sums at it).
AVX512 static inline __m512i requantize16_unclamped(const requantization16 *p, __m512i x) {
    if (p->scheme == 0 && p->single) {
        if (p->shifts_left) x = _mm512_sllv_epi32(x, p->left);
        return single_floor16_apply(x, &p->sf);
    }
    if (p->scheme == 0) {
        __m512i y = tflite_multiply16(_mm512_sllv_epi32(x, p->left), p->t.multiplier, p->t.multiplier_odd, p->t.right_shift, p->t.mask, p->t.threshold);
        return _mm512_add_epi32(y, p->zero_point);
    }
    return float_requantize16_unclamped(x, p->scale, p->zero_point, 0);
}

// The same, clamped.
AVX512 static inline __m512i requantize16_biased(const requantization16 *p, __m512i x) {
    return clamp16(requantize16_unclamped(p, x), p->lo, p->hi);
}

// Four vectors of requantized values before their clamp, as 64 bytes clamped to [lo, hi]:
// the saturating packs are monotone and [lo, hi] lies within [0, 255], so saturating first
// and clamping the bytes equals clamping first. Within each 128-bit lane L the bytes are
// r0, r1, r2, r3's dwords 4L … 4L + 3 in turn (the packs work per lane).
AVX512 static inline __m512i pack64_clamped(__m512i r0, __m512i r1, __m512i r2, __m512i r3, int32_t lo, int32_t hi) {
    __m512i bytes = _mm512_packus_epi16(_mm512_packs_epi32(r0, r1), _mm512_packs_epi32(r2, r3));
    if (lo > 0) bytes = _mm512_max_epu8(bytes, _mm512_set1_epi8((char)lo));
    if (hi < 255) bytes = _mm512_min_epu8(bytes, _mm512_set1_epi8((char)hi));
    return bytes;
}

// The transpose of 4 × 4 dwords within 16 lanes, (lane, dword) ↔ (dword, lane): a vector of
// sixteen dwords in which dword 4a + b takes dword 4b + a (its own inverse).
AVX512 static inline __m512i dword_transpose4x4(__m512i v) {
    return _mm512_permutexvar_epi32(_mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0), v);
}

// Four pixels' sixteen channels (requantized values before their clamp, as int32 lanes)
// stored `stride` bytes apart, masked to `m`: one pack and four 16-byte stores instead of
// four narrowing stores (vpmovdb is the slower instruction here).
AVX512 static inline void store_pixels4x16(uint8_t *out, long stride, __mmask16 m, __m512i r0, __m512i r1, __m512i r2,
                                           __m512i r3, int32_t lo, int32_t hi) {
    const __m512i bytes = dword_transpose4x4(pack64_clamped(r0, r1, r2, r3, lo, hi));
    _mm_mask_storeu_epi8(out, m, _mm512_castsi512_si128(bytes));
    _mm_mask_storeu_epi8(out + stride, m, _mm512_extracti32x4_epi32(bytes, 1));
    _mm_mask_storeu_epi8(out + 2 * stride, m, _mm512_extracti32x4_epi32(bytes, 2));
    _mm_mask_storeu_epi8(out + 3 * stride, m, _mm512_extracti32x4_epi32(bytes, 3));
}

// Rows [first, last) of one 16-channel column at out + r·stride, row r's requantized lanes
// before the clamp being VALUE(r) (a function-like macro of the caller's): four rows per
// store_pixels4x16, the rest one narrowing store each.
#define STORE_ROWS16(out, stride, m, first, last, VALUE, lo, hi)                                             \
    do {                                                                                                    \
        long row_ = (first);                                                                                \
        for (; row_ + 4 <= (last); row_ += 4)                                                               \
            store_pixels4x16((out) + row_ * (stride), (stride), (m), VALUE(row_), VALUE(row_ + 1),          \
                             VALUE(row_ + 2), VALUE(row_ + 3), (lo), (hi));                                 \
        for (; row_ < (last); ++row_)                                                                       \
            _mm512_mask_cvtepi32_storeu_epi8((out) + row_ * (stride), (m), clamp16(VALUE(row_), (lo), (hi))); \
    } while (0)

// Sixteen requantized values, clamped, as int32 lanes.
AVX512 static inline __m512i requantize16(const requantization16 *p, __m512i acc) {
    return requantize16_biased(p, _mm512_add_epi32(acc, p->bias));
}

// TFLite's rescaling of an add input, tflite_multiply(d·2^L, M, 0, r) for d = q − zp
// (|d| ≤ 255), in 32-bit lanes. Folding the two roundings into one floor (see single_floor16)
// and dividing out 2^L: with D = 2^(31−L+r), h = 2^(r−1) (0 for r = 0) and s = [d < 0]
// (d·M < −2^(30−L) exactly when d < 0, for M > 2^(30−L); only for r ≥ 1),
//   result = floor((d·M + 2^(30−L) + (h − s)·2^(31−L)) / D)
//          = d·M_high + floor((d·M_low + 2^(30−L) + (h − s)·2^(31−L)) / D)
// with M = M_high·D + M_low, every term within int32 for D ≤ 2^23 (r ≤ L − 8). TFLite uses L = 20.
// The lanes hold q, not d: −zp·M_high is left to the caller (`constant`), −zp·M_low goes into
// the offset (the int32 sums wrap, but their totals are the in-range values above).
// An input whose multiplier is 2^k with no right shift and L + k ≥ 31 (the larger-scale
// input, whose TFLite multiplier is ½) rescales to the exact shift d·2^(L+k−31):
// floor((d·2^(L+k) + 2^30) / 2^31) = d·2^(L+k−31) + floor(½).
typedef struct {
    __m512i high, low, offset, correction, zero_point;
    __m128i shift, plain_shift;
    int shift_only;
    int32_t constant;
} input_rescale16;

static inline int input_rescale_exact(int32_t left_shift, int32_t multiplier, int32_t right_shift) {
    return left_shift >= 8 && left_shift <= 22 && multiplier > (1 << (30 - left_shift)) && right_shift >= 0
        && right_shift <= left_shift - 8;
}

AVX512 static inline input_rescale16 input_rescale_params(int32_t zero_point, int32_t left_shift, int32_t multiplier, int32_t right_shift) {
    const int split = 31 - left_shift + right_shift;
    const int32_t high = multiplier >> split, low = multiplier & ((1 << split) - 1);
    input_rescale16 p;
    p.shift_only = right_shift == 0 && (multiplier & (multiplier - 1)) == 0 && left_shift + __builtin_ctz(multiplier) >= 31;
    p.high = _mm512_set1_epi32(high);
    p.low = _mm512_set1_epi32(low);
    p.offset = _mm512_set1_epi32((int32_t)((uint32_t)(1 << (30 - left_shift)) + (right_shift > 0 ? (uint32_t)(1 << (right_shift - 1)) << (31 - left_shift) : 0)
                                           - (uint32_t)zero_point * (uint32_t)low));
    p.correction = _mm512_set1_epi32(right_shift > 0 ? 1 << (31 - left_shift) : 0);
    p.zero_point = _mm512_set1_epi32(zero_point);
    p.shift = _mm_cvtsi32_si128(split);
    const int plain = p.shift_only ? left_shift + __builtin_ctz(multiplier) - 31 : 0;
    p.plain_shift = _mm_cvtsi32_si128(plain);
    p.constant = p.shift_only ? -zero_point * (1 << plain) : -zero_point * high;
    return p;
}

// The rescaled inputs q (uint8 values in int32 lanes), less p->constant. `shift_only` is
// p->shift_only, passed separately so that callers can make it a compile-time constant.
AVX512 static inline __m512i input_rescale(__m512i q, const input_rescale16 *p, int shift_only) {
    if (shift_only) return _mm512_sll_epi32(q, p->plain_shift);
    __m512i low = _mm512_add_epi32(_mm512_mullo_epi32(q, p->low), p->offset);
    low = _mm512_mask_sub_epi32(low, _mm512_cmplt_epi32_mask(q, p->zero_point), low, p->correction);
    return _mm512_add_epi32(_mm512_mullo_epi32(q, p->high), _mm512_sra_epi32(low, p->shift));
}

// TFLite's int8 ADD of two uint8 operands (reference_ops::AddElementwise with gemmlowp
// rounding): one value, and sixteen with parameters prepared once (`tflite_add16`, valid when
// tflite_add_vectorizes in quantized.c).
typedef struct {
    int32_t a_zero_point, b_zero_point, left_shift, a_multiplier, a_right_shift, b_multiplier, b_right_shift;
    int32_t out_multiplier, out_right_shift, out_zero_point, lo, hi;
} tflite_add_parameters;

static inline uint8_t tflite_add_value(int32_t a, int32_t b, const tflite_add_parameters *p) {
    int32_t x = (a - p->a_zero_point) * (1 << p->left_shift), y = (b - p->b_zero_point) * (1 << p->left_shift);
    int32_t sum = tflite_multiply(x, p->a_multiplier, 0, p->a_right_shift) + tflite_multiply(y, p->b_multiplier, 0, p->b_right_shift);
    return clamp_u8(tflite_multiply(sum, p->out_multiplier, 0, p->out_right_shift) + p->out_zero_point, p->lo, p->hi);
}

// The output stage sees the sum less K = the inputs' constants; K·M_out moves into the
// single floor's constant and its sign test's limit (both 64-bit: |K·M_out| < 2^60).
typedef struct { input_rescale16 a, b; single_floor16 out; __m512i limit; int32_t lo, hi; } tflite_add16;

AVX512 static inline tflite_add16 tflite_add16_params(const tflite_add_parameters *p) {
    tflite_add16 v;
    v.a = input_rescale_params(p->a_zero_point, p->left_shift, p->a_multiplier, p->a_right_shift);
    v.b = input_rescale_params(p->b_zero_point, p->left_shift, p->b_multiplier, p->b_right_shift);
    v.out = single_floor_params(_mm512_set1_epi32(p->out_multiplier), _mm512_set1_epi32(p->out_right_shift), p->out_zero_point, p->lo);
    const int64_t folded = ((int64_t)v.a.constant + v.b.constant) * p->out_multiplier;
    v.out.constant_even = _mm512_add_epi64(v.out.constant_even, _mm512_set1_epi64(folded));
    v.out.constant_odd = _mm512_add_epi64(v.out.constant_odd, _mm512_set1_epi64(folded));
    v.limit = _mm512_set1_epi64(-(1LL << 30) - folded);
    v.lo = p->lo; v.hi = p->hi;
    return v;
}

// Sixteen sums of uint8 operands held in int32 lanes, before the output clamp; `a_shift` and
// `sign_correction` are p->a.shift_only and p->out.sign_correction (see input_rescale).
AVX512 static inline __m512i tflite_add16_unclamped(__m512i a, __m512i b, const tflite_add16 *p, int a_shift, int sign_correction) {
    __m512i sum = _mm512_add_epi32(input_rescale(a, &p->a, a_shift), input_rescale(b, &p->b, 0));
    return single_floor16_apply_limit(sum, &p->out, sign_correction, p->limit);
}

// Rows per chunk of a fused depthwise + projection work item (depthwise_u8.c, conv_f32.c):
// as many `row_bytes`-byte depthwise rows as fit in `budget` bytes, at least one and at most
// a band's (the longest of `bands` bands of `height` rows).
static inline long band_chunk_rows(long row_bytes, long budget, long height, long bands) {
    const long rows = budget / row_bytes, band = (height + bands - 1) / bands;
    return rows < 1 ? 1 : (rows < band ? rows : band);
}

// The GEMM kernels' tile loop: `tile(j, row, x, c0, pixels, vectors, ...)` over columns
// [x0, x1) of `row` in tiles of up to 8 pixels, with the pixel and vector counts as constants
// (so that each instance keeps its accumulators in registers) and any further arguments
// passed on. `tile` is the including file's microkernel.
#define GEMM_TILE_CASE(j, row, x, c0, vectors, pixels, ...)                         \
    case pixels:                                                                    \
        if (vectors == 3) tile(j, row, x, c0, pixels, 3, ##__VA_ARGS__);            \
        else if (vectors == 2) tile(j, row, x, c0, pixels, 2, ##__VA_ARGS__);       \
        else tile(j, row, x, c0, pixels, 1, ##__VA_ARGS__);                         \
        break;

#define GEMM_TILES(j, row, x0, x1, c0, vectors, ...)                                                              \
    for (long x = (x0); x < (x1); x += 8) {                                                                       \
        switch ((x1) - x < 8 ? (x1) - x : 8) {                                                                    \
            GEMM_TILE_CASE(j, row, x, c0, vectors, 1, ##__VA_ARGS__) GEMM_TILE_CASE(j, row, x, c0, vectors, 2, ##__VA_ARGS__) \
            GEMM_TILE_CASE(j, row, x, c0, vectors, 3, ##__VA_ARGS__) GEMM_TILE_CASE(j, row, x, c0, vectors, 4, ##__VA_ARGS__) \
            GEMM_TILE_CASE(j, row, x, c0, vectors, 5, ##__VA_ARGS__) GEMM_TILE_CASE(j, row, x, c0, vectors, 6, ##__VA_ARGS__) \
            GEMM_TILE_CASE(j, row, x, c0, vectors, 7, ##__VA_ARGS__) GEMM_TILE_CASE(j, row, x, c0, vectors, 8, ##__VA_ARGS__) \
        }                                                                                                         \
    }

// A GEMM kernel's work item: output row, columns [x0, x1), channels [c0, c1). Items are
// (row, column block, channel block of `block`) triples, channel blocks outermost when
// `channel_major` and innermost otherwise.
typedef struct { long row, x0, x1, c0, c1; } gemm_item;

static inline long gemm_item_count(long n, long rows, long columns, long column_block, long block) {
    return (n + block - 1) / block * rows * ((columns + column_block - 1) / column_block);
}

static inline gemm_item gemm_item_at(long n, long rows, long columns, long column_block, long block, int channel_major, long item) {
    const long column_blocks = (columns + column_block - 1) / column_block;
    const long pixel_blocks = rows * column_blocks, channel_blocks = (n + block - 1) / block;
    const long channel_block = channel_major ? item / pixel_blocks : item % channel_blocks;
    const long pixel_block = channel_major ? item % pixel_blocks : item / channel_blocks;
    gemm_item it;
    it.c0 = channel_block * block;
    it.row = pixel_block / column_blocks;
    it.x0 = pixel_block % column_blocks * column_block;
    it.c1 = it.c0 + block < n ? it.c0 + block : n;
    it.x1 = it.x0 + column_block < columns ? it.x0 + column_block : columns;
    return it;
}

#endif
