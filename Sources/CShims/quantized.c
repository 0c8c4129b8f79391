// Integer epilogues of the int8 mobile engine. Each kernel is compiled twice — once for
// AVX-512 and once for the baseline — from the same source, and the AVX-512 build is
// chosen at run time when the CPU has it. The arithmetic is exact integer (or, for the
// qnnpack scheme, IEEE float32) and identical in both builds.
#include "include/CShims.h"
#include <limits.h>
#include <math.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

static int has_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
              && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    }
    return cached;
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
    REQUANTIZE_TFLITE_BODY
}
static void requantize_tflite_generic(const int32_t *accumulators, long pixels, long channels, const int32_t *bias,
                                      const int32_t *multiplier, const int32_t *left_shift, const int32_t *right_shift,
                                      int32_t zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    REQUANTIZE_TFLITE_BODY
}

void rc_requantize_tflite(const int32_t *accumulators, long pixels, long channels, const int32_t *bias,
                          const int32_t *multiplier, const int32_t *left_shift, const int32_t *right_shift,
                          int32_t zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    if (has_avx512()) requantize_tflite_avx512(accumulators, pixels, channels, bias, multiplier, left_shift, right_shift, zero_point, lo, hi, output);
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
    REQUANTIZE_FLOAT_BODY
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
    ADD_TFLITE_BODY
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
    if (has_avx512()) add_tflite_avx512(a, b, count, a_zero_point, b_zero_point, left_shift, a_multiplier, a_right_shift, b_multiplier, b_right_shift, out_multiplier, out_right_shift, out_zero_point, lo, hi, output);
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
    ADD_QNNPACK_BODY
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
