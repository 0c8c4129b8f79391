// Integer epilogues of the int8 mobile engine. Each kernel exists as portable C (the
// definition of the arithmetic) and as AVX-512 intrinsics, chosen at run time when the CPU
// has AVX-512; tests check that both give the same bytes. The arithmetic is exact integer
// (or, for the qnnpack scheme, IEEE float32 rounded to nearest even).
#include "include/CShims.h"
#include <immintrin.h>
#include <limits.h>
#include <math.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

static int force_generic = 0;

void rc_quantized_force_generic(int generic) { force_generic = generic; }

static int has_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
              && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    }
    return cached && !force_generic;
}

// Sixteen lanes of tflite_multiply (below) for multipliers other than INT32_MIN (the only
// saturating case; callers check), with the shift-dependent constants precomputed:
// `mask` = 2^right − 1 and `threshold` = mask >> 1.
//
// The doubling high multiply's truncating division, trunc((ab + nudge) / 2^31) with
// nudge = ab ≥ 0 ? 2^30 : 1 − 2^30, equals floor((ab + 2^30) / 2^31) for every ab: for
// negative t, trunc(t / d) = floor((t + d − 1) / d), and 1 − 2^30 + 2^31 − 1 = 2^30.
AVX512 static inline __m512i tflite_multiply16(__m512i shifted, __m512i multiplier, __m512i multiplier_odd,
                                               __m512i right_shift, __m512i mask, __m512i threshold) {
    const __m512i zero = _mm512_setzero_si512(), one32 = _mm512_set1_epi32(1), half = _mm512_set1_epi64(1LL << 30);
    __m512i even = _mm512_add_epi64(_mm512_mul_epi32(shifted, multiplier), half);
    __m512i odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(shifted, 32), multiplier_odd), half);
    // Bits 31…62 of each sum: the low half of (sum >> 31) in even lanes, the high half of
    // (sum << 1) in odd lanes.
    __m512i high = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 31), _mm512_slli_epi64(odd, 1));
    // Rounding divide by 2^right, ties away from zero.
    __m512i remainder = _mm512_and_si512(high, mask);
    __m512i limit = _mm512_mask_add_epi32(threshold, _mm512_cmplt_epi32_mask(high, zero), threshold, one32);
    __m512i result = _mm512_srav_epi32(high, right_shift);
    return _mm512_mask_add_epi32(result, _mm512_cmpgt_epi32_mask(remainder, limit), result, one32);
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

AVX512 static inline tflite_params16 tflite_params_broadcast(int32_t multiplier, int32_t right_shift) {
    int32_t m[16], r[16];
    for (int i = 0; i < 16; ++i) { m[i] = multiplier; r[i] = right_shift; }
    return tflite_params_load(0xFFFF, m, r);
}

AVX512 static inline __m512i clamp16(__m512i v, int32_t lo, int32_t hi) {
    return _mm512_min_epi32(_mm512_max_epi32(v, _mm512_set1_epi32(lo)), _mm512_set1_epi32(hi));
}

AVX512 static inline __mmask16 tail16(long remaining) {
    return remaining >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << remaining) - 1);
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

#define REQUANTIZE_TFLITE_BODY                                                                      \
    for (long p = 0; p < pixels; ++p) {                                                             \
        const int32_t *a = accumulators + p * channels;                                             \
        uint8_t *o = output + p * channels;                                                         \
        for (long c = 0; c < channels; ++c) {                                                       \
            int32_t v = tflite_multiply(a[c] + bias[c], multiplier[c], left_shift[c], right_shift[c]); \
            o[c] = clamp_u8(v + zero_point, lo, hi);                                                \
        }                                                                                           \
    }

AVX512 static void requantize_tflite_avx512(const int32_t *accumulators, long pixels, long channels, const int32_t *bias,
                                            const int32_t *multiplier, const int32_t *left_shift, const int32_t *right_shift,
                                            int32_t zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    const __m512i zp = _mm512_set1_epi32(zero_point);
    // Tiles of pixels small enough to stay in L1 while each block of 16 channels, with its
    // parameters held in registers, walks over them.
    const long tile = channels >= 256 ? 8 : 2048 / channels + 1;
    for (long p0 = 0; p0 < pixels; p0 += tile) {
        long p1 = p0 + tile < pixels ? p0 + tile : pixels;
        for (long c = 0; c < channels; c += 16) {
            __mmask16 m = tail16(channels - c);
            __m512i b = _mm512_maskz_loadu_epi32(m, bias + c), left = _mm512_maskz_loadu_epi32(m, left_shift + c);
            tflite_params16 q = tflite_params_load(m, multiplier + c, right_shift + c);
            for (long p = p0; p < p1; ++p) {
                __m512i x = _mm512_sllv_epi32(_mm512_add_epi32(_mm512_maskz_loadu_epi32(m, accumulators + p * channels + c), b), left);
                __m512i v = tflite_multiply16(x, q.multiplier, q.multiplier_odd, q.right_shift, q.mask, q.threshold);
                _mm512_mask_cvtepi32_storeu_epi8(output + p * channels + c, m, clamp16(_mm512_add_epi32(v, zp), lo, hi));
            }
        }
    }
}
static void requantize_tflite_generic(const int32_t *accumulators, long pixels, long channels, const int32_t *bias,
                                      const int32_t *multiplier, const int32_t *left_shift, const int32_t *right_shift,
                                      int32_t zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    REQUANTIZE_TFLITE_BODY
}

void rc_requantize_tflite(const int32_t *accumulators, long pixels, long channels, const int32_t *bias,
                          const int32_t *multiplier, const int32_t *left_shift, const int32_t *right_shift,
                          int32_t zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    int saturating = 0;
    for (long c = 0; c < channels; ++c) saturating |= multiplier[c] == INT32_MIN;
    if (has_avx512() && !saturating) requantize_tflite_avx512(accumulators, pixels, channels, bias, multiplier, left_shift, right_shift, zero_point, lo, hi, output);
    else requantize_tflite_generic(accumulators, pixels, channels, bias, multiplier, left_shift, right_shift, zero_point, lo, hi, output);
}

int32_t rc_tflite_multiply(int32_t x, int32_t multiplier, int32_t left_shift, int32_t right_shift) {
    return tflite_multiply(x, multiplier, left_shift, right_shift);
}

// QNNPACK's fp32 requantization: float(acc) * scale in float32, rounded to nearest even
// (cvtps2dq under the default rounding mode), plus the zero point, clamped.
#define REQUANTIZE_FLOAT_BODY                                                                       \
    for (long p = 0; p < pixels; ++p) {                                                             \
        const int32_t *a = accumulators + p * channels;                                             \
        uint8_t *o = output + p * channels;                                                         \
        for (long c = 0; c < channels; ++c) {                                                       \
            float scaled = (float)(a[c] + bias[c]) * scale[c];                                      \
            float limited = fminf(fmaxf(scaled, -32768.0f), 32767.0f);                              \
            int32_t v = (int32_t)nearbyintf(limited);                                               \
            o[c] = clamp_u8(v + zero_point, lo, hi);                                                \
        }                                                                                           \
    }

AVX512 static void requantize_float_avx512(const int32_t *accumulators, long pixels, long channels, const int32_t *bias,
                                           const float *scale, int32_t zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    const __m512i zp = _mm512_set1_epi32(zero_point);
    const __m512 low = _mm512_set1_ps(-32768.0f), high = _mm512_set1_ps(32767.0f);
    for (long p = 0; p < pixels; ++p) {
        const int32_t *a = accumulators + p * channels;
        uint8_t *o = output + p * channels;
        for (long c = 0; c < channels; c += 16) {
            __mmask16 m = tail16(channels - c);
            __m512i x = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, a + c), _mm512_maskz_loadu_epi32(m, bias + c));
            __m512 scaled = _mm512_mul_ps(_mm512_cvtepi32_ps(x), _mm512_maskz_loadu_ps(m, scale + c));
            __m512 limited = _mm512_min_ps(_mm512_max_ps(scaled, low), high);
            __m512i v = _mm512_cvt_roundps_epi32(limited, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm512_mask_cvtepi32_storeu_epi8(o + c, m, clamp16(_mm512_add_epi32(v, zp), lo, hi));
        }
    }
}
static void requantize_float_generic(const int32_t *accumulators, long pixels, long channels, const int32_t *bias,
                                     const float *scale, int32_t zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    REQUANTIZE_FLOAT_BODY
}

void rc_requantize_float(const int32_t *accumulators, long pixels, long channels, const int32_t *bias,
                         const float *scale, int32_t zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    if (has_avx512()) requantize_float_avx512(accumulators, pixels, channels, bias, scale, zero_point, lo, hi, output);
    else requantize_float_generic(accumulators, pixels, channels, bias, scale, zero_point, lo, hi, output);
}

// TFLite's int8 ADD (reference_ops::AddElementwise): both inputs rescaled to a common
// fixed-point scale with a 20-bit left shift, summed, rescaled to the output.
#define ADD_TFLITE_BODY                                                                             \
    for (long i = 0; i < count; ++i) {                                                              \
        int32_t x = ((int32_t)a[i] - a_zero_point) * (1 << left_shift);                             \
        int32_t y = ((int32_t)b[i] - b_zero_point) * (1 << left_shift);                             \
        int32_t sx = tflite_multiply(x, a_multiplier, 0, a_right_shift);                            \
        int32_t sy = tflite_multiply(y, b_multiplier, 0, b_right_shift);                            \
        int32_t v = tflite_multiply(sx + sy, out_multiplier, 0, out_right_shift);                   \
        output[i] = clamp_u8(v + out_zero_point, lo, hi);                                           \
    }

AVX512 static void add_tflite_avx512(const uint8_t *a, const uint8_t *b, long count, int32_t a_zero_point, int32_t b_zero_point,
                                     int32_t left_shift, int32_t a_multiplier, int32_t a_right_shift, int32_t b_multiplier,
                                     int32_t b_right_shift, int32_t out_multiplier, int32_t out_right_shift,
                                     int32_t out_zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    const __m512i azp = _mm512_set1_epi32(a_zero_point), bzp = _mm512_set1_epi32(b_zero_point), ozp = _mm512_set1_epi32(out_zero_point);
    const __m512i left = _mm512_set1_epi32(left_shift);
    const tflite_params16 pa = tflite_params_broadcast(a_multiplier, a_right_shift), pb = tflite_params_broadcast(b_multiplier, b_right_shift);
    const tflite_params16 po = tflite_params_broadcast(out_multiplier, out_right_shift);
    for (long i = 0; i < count; i += 16) {
        __mmask16 m = tail16(count - i);
        __m512i x = _mm512_sllv_epi32(_mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, a + i)), azp), left);
        __m512i y = _mm512_sllv_epi32(_mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, b + i)), bzp), left);
        __m512i sum = _mm512_add_epi32(tflite_multiply16(x, pa.multiplier, pa.multiplier_odd, pa.right_shift, pa.mask, pa.threshold),
                                       tflite_multiply16(y, pb.multiplier, pb.multiplier_odd, pb.right_shift, pb.mask, pb.threshold));
        __m512i v = _mm512_add_epi32(tflite_multiply16(sum, po.multiplier, po.multiplier_odd, po.right_shift, po.mask, po.threshold), ozp);
        _mm512_mask_cvtepi32_storeu_epi8(output + i, m, clamp16(v, lo, hi));
    }
}
static void add_tflite_generic(const uint8_t *a, const uint8_t *b, long count, int32_t a_zero_point, int32_t b_zero_point,
                               int32_t left_shift, int32_t a_multiplier, int32_t a_right_shift, int32_t b_multiplier,
                               int32_t b_right_shift, int32_t out_multiplier, int32_t out_right_shift,
                               int32_t out_zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    ADD_TFLITE_BODY
}

void rc_add_tflite(const uint8_t *a, const uint8_t *b, long count, int32_t a_zero_point, int32_t b_zero_point,
                   int32_t left_shift, int32_t a_multiplier, int32_t a_right_shift, int32_t b_multiplier,
                   int32_t b_right_shift, int32_t out_multiplier, int32_t out_right_shift,
                   int32_t out_zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    if (has_avx512() && a_multiplier != INT32_MIN && b_multiplier != INT32_MIN && out_multiplier != INT32_MIN) add_tflite_avx512(a, b, count, a_zero_point, b_zero_point, left_shift, a_multiplier, a_right_shift, b_multiplier, b_right_shift, out_multiplier, out_right_shift, out_zero_point, lo, hi, output);
    else add_tflite_generic(a, b, count, a_zero_point, b_zero_point, left_shift, a_multiplier, a_right_shift, b_multiplier, b_right_shift, out_multiplier, out_right_shift, out_zero_point, lo, hi, output);
}

// QNNPACK's q8vadd: one fixed-point accumulation with 22-bit multipliers and a rounding
// right shift (ties away from zero), as pytorch_qnnp_compute_add_quantization_params sets up.
#define ADD_QNNPACK_BODY                                                                            \
    for (long i = 0; i < count; ++i) {                                                              \
        int32_t acc = zero_point_product + (int32_t)((uint32_t)a[i] * a_multiplier)                 \
                    + (int32_t)((uint32_t)b[i] * b_multiplier);                                     \
        int32_t remainder = (acc & remainder_mask) - (int32_t)(acc < 0);                            \
        int32_t v = (acc >> shift) + (int32_t)(remainder > remainder_threshold);                    \
        output[i] = clamp_u8(v + out_zero_point, lo, hi);                                           \
    }

AVX512 static void add_qnnpack_avx512(const uint8_t *a, const uint8_t *b, long count, int32_t zero_point_product,
                                      uint32_t a_multiplier, uint32_t b_multiplier, int32_t shift, int32_t remainder_mask,
                                      int32_t remainder_threshold, int32_t out_zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    const __m512i zpp = _mm512_set1_epi32(zero_point_product), am = _mm512_set1_epi32((int32_t)a_multiplier), bm = _mm512_set1_epi32((int32_t)b_multiplier);
    const __m512i mask = _mm512_set1_epi32(remainder_mask), threshold = _mm512_set1_epi32(remainder_threshold);
    const __m512i ozp = _mm512_set1_epi32(out_zero_point), zero = _mm512_setzero_si512(), one = _mm512_set1_epi32(1);
    const __m128i count_shift = _mm_cvtsi32_si128(shift);
    for (long i = 0; i < count; i += 16) {
        __mmask16 m = tail16(count - i);
        __m512i acc = _mm512_add_epi32(zpp, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, a + i)), am));
        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, b + i)), bm));
        __m512i remainder = _mm512_and_si512(acc, mask);
        remainder = _mm512_mask_sub_epi32(remainder, _mm512_cmplt_epi32_mask(acc, zero), remainder, one);
        __m512i v = _mm512_sra_epi32(acc, count_shift);
        v = _mm512_mask_add_epi32(v, _mm512_cmpgt_epi32_mask(remainder, threshold), v, one);
        _mm512_mask_cvtepi32_storeu_epi8(output + i, m, clamp16(_mm512_add_epi32(v, ozp), lo, hi));
    }
}
static void add_qnnpack_generic(const uint8_t *a, const uint8_t *b, long count, int32_t zero_point_product,
                                uint32_t a_multiplier, uint32_t b_multiplier, int32_t shift, int32_t remainder_mask,
                                int32_t remainder_threshold, int32_t out_zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    ADD_QNNPACK_BODY
}

void rc_add_qnnpack(const uint8_t *a, const uint8_t *b, long count, int32_t zero_point_product,
                    uint32_t a_multiplier, uint32_t b_multiplier, int32_t shift, int32_t remainder_mask,
                    int32_t remainder_threshold, int32_t out_zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    if (has_avx512()) add_qnnpack_avx512(a, b, count, zero_point_product, a_multiplier, b_multiplier, shift, remainder_mask, remainder_threshold, out_zero_point, lo, hi, output);
    else add_qnnpack_generic(a, b, count, zero_point_product, a_multiplier, b_multiplier, shift, remainder_mask, remainder_threshold, out_zero_point, lo, hi, output);
}

// Average pooling of uint8 channels-last maps with each scheme's rounding: TFLite's
// reference_integer_ops::AveragePool (int8 values = uint8 − 128, padded cells counted as
// the zero point, divide rounding half away from zero) or QNNPACK's q8avgpool
// (float(acc − zp·k) × (s / (s·k)), nearest even). Output rows first_row ..< last_row of
// batch × output_height; window spans per output row / column with their divisor shares.
#define AVERAGE_POOL_SETUP                                                                          \
    long b = r / output_height, y = r % output_height;                                              \
    int32_t valid_rows = row_end[y] - row_start[y];

int32_t rc_average_pool_value(int32_t sum, int32_t valid, int32_t divisor, int scheme, int32_t zero_point, float scale) {
    int32_t result;
    if (scheme == 0) {
        int32_t acc = (sum - 128 * valid) + (divisor - valid) * (zero_point - 128);
        result = (acc > 0 ? (acc + divisor / 2) / divisor : (acc - divisor / 2) / divisor) + 128;
    } else {
        int32_t acc = sum + (divisor - valid) * zero_point - zero_point * divisor;
        float k = scale / (scale * (float)divisor);
        result = (int32_t)nearbyintf((float)acc * k) + zero_point;
    }
    return result < 0 ? 0 : (result > 255 ? 255 : result);
}

static void average_pool_generic(const uint8_t *input, long height, long width, long channels, uint8_t *output,
                                 long output_height, long output_width, long first_row, long last_row,
                                 const int32_t *row_start, const int32_t *row_end, const int32_t *row_count,
                                 const int32_t *col_start, const int32_t *col_end, const int32_t *col_count,
                                 int scheme, int32_t zero_point, float scale) {
    for (long r = first_row; r < last_row; ++r) {
        AVERAGE_POOL_SETUP
        for (long x = 0; x < output_width; ++x) {
            int32_t valid = valid_rows * (col_end[x] - col_start[x]), divisor = row_count[y] * col_count[x];
            uint8_t *o = output + (r * output_width + x) * channels;
            for (long c = 0; c < channels; ++c) {
                int32_t sum = 0;
                for (long iy = row_start[y]; iy < row_end[y]; ++iy)
                    for (long ix = col_start[x]; ix < col_end[x]; ++ix) sum += input[((b * height + iy) * width + ix) * channels + c];
                o[c] = (uint8_t)rc_average_pool_value(sum, valid, divisor, scheme, zero_point, scale);
            }
        }
    }
}

// Sixteen channels at a time. TFLite's truncating division is done in float: for integers
// |n| < 2^24 and d ≥ 1, the float quotient of n / d truncates to the integer quotient
// (n / d is at least 1/d from any integer it is not, more than half an ulp), so windows of
// at most 65536 cells (|acc| ≤ 255·65536) are exact; larger ones take the portable C.
AVX512 static void average_pool_avx512(const uint8_t *input, long height, long width, long channels, uint8_t *output,
                                       long output_height, long output_width, long first_row, long last_row,
                                       const int32_t *row_start, const int32_t *row_end, const int32_t *row_count,
                                       const int32_t *col_start, const int32_t *col_end, const int32_t *col_count,
                                       int scheme, int32_t zero_point, float scale) {
    for (long r = first_row; r < last_row; ++r) {
        AVERAGE_POOL_SETUP
        for (long x = 0; x < output_width; ++x) {
            int32_t valid = valid_rows * (col_end[x] - col_start[x]), divisor = row_count[y] * col_count[x];
            uint8_t *o = output + (r * output_width + x) * channels;
            // acc = sum + offset; TFLite then divides with rounding, QNNPACK scales.
            int32_t offset = scheme == 0 ? -128 * valid + (divisor - valid) * (zero_point - 128)
                                         : (divisor - valid) * zero_point - zero_point * divisor;
            __m512i half = _mm512_set1_epi32(divisor / 2), shift = _mm512_set1_epi32(offset);
            __m512 d = _mm512_set1_ps((float)divisor), k = _mm512_set1_ps(scale / (scale * (float)divisor));
            for (long c = 0; c < channels; c += 16) {
                __mmask16 m = tail16(channels - c);
                __m512i sum = _mm512_setzero_si512();
                for (long iy = row_start[y]; iy < row_end[y]; ++iy) {
                    const uint8_t *line = input + ((b * height + iy) * width) * channels + c;
                    for (long ix = col_start[x]; ix < col_end[x]; ++ix)
                        sum = _mm512_add_epi32(sum, _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, line + ix * channels)));
                }
                __m512i acc = _mm512_add_epi32(sum, shift), result;
                if (scheme == 0) {
                    __mmask16 positive = _mm512_cmpgt_epi32_mask(acc, _mm512_setzero_si512());
                    __m512i n = _mm512_mask_add_epi32(_mm512_sub_epi32(acc, half), positive, acc, half);
                    result = _mm512_add_epi32(_mm512_cvttps_epi32(_mm512_div_ps(_mm512_cvtepi32_ps(n), d)), _mm512_set1_epi32(128));
                } else {
                    __m512i v = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), k), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                    result = _mm512_add_epi32(v, _mm512_set1_epi32(zero_point));
                }
                _mm512_mask_cvtepi32_storeu_epi8(o + c, m, clamp16(result, 0, 255));
            }
        }
    }
}

void rc_average_pool_u8(const uint8_t *input, long height, long width, long channels, uint8_t *output,
                        long output_height, long output_width, long first_row, long last_row,
                        const int32_t *row_start, const int32_t *row_end, const int32_t *row_count,
                        const int32_t *col_start, const int32_t *col_end, const int32_t *col_count,
                        int scheme, int32_t zero_point, float scale) {
    int32_t largest = 0;
    for (long y = 0; y < output_height; ++y) if (row_count[y] > largest) largest = row_count[y];
    int32_t widest = 0;
    for (long x = 0; x < output_width; ++x) if (col_count[x] > widest) widest = col_count[x];
    if (has_avx512() && (long)largest * widest <= 65536)
        average_pool_avx512(input, height, width, channels, output, output_height, output_width, first_row, last_row,
                            row_start, row_end, row_count, col_start, col_end, col_count, scheme, zero_point, scale);
    else
        average_pool_generic(input, height, width, channels, output, output_height, output_width, first_row, last_row,
                             row_start, row_end, row_count, col_start, col_end, col_count, scheme, zero_point, scale);
}
