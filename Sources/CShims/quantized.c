// Integer epilogues of the int8 mobile engine. Each kernel exists as portable C (the
// definition of the arithmetic) and as AVX-512 intrinsics, chosen at run time when the CPU
// has AVX-512; tests check that both give the same bytes. The arithmetic is exact integer
// (or, for the qnnpack scheme, IEEE float32 rounded to nearest even).
#include "include/CShims.h"
#include <string.h>
#include <immintrin.h>
#include <limits.h>
#include <math.h>

#include "epilogue.h"

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
            if (single_floor_lanes(q.right_shift, m)) {
                const single_floor16 sf = single_floor_params(q.multiplier, q.right_shift, zero_point, lo);
                const int shifts_left = _mm512_test_epi32_mask(left, left) != 0;
#define TFLITE_SINGLE_FLOOR(p) \
    single_floor16_apply(shifts_left ? _mm512_sllv_epi32(_mm512_add_epi32(_mm512_maskz_loadu_epi32(m, accumulators + (p) * channels + c), b), left) \
                                     : _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, accumulators + (p) * channels + c), b), &sf)
                STORE_ROWS16(output + c, channels, m, p0, p1, TFLITE_SINGLE_FLOOR, lo, hi);
#undef TFLITE_SINGLE_FLOOR
                continue;
            }
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
    if (rc_use_avx512() && !saturating) requantize_tflite_avx512(accumulators, pixels, channels, bias, multiplier, left_shift, right_shift, zero_point, lo, hi, output);
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
            o[c] = float_requantize(a[c] + bias[c], scale[c], zero_point, lo, hi);                  \
        }                                                                                           \
    }

AVX512 static void requantize_float_avx512(const int32_t *accumulators, long pixels, long channels, const int32_t *bias,
                                           const float *scale, int32_t zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    const __m512i zp = _mm512_set1_epi32(zero_point);
    for (long p = 0; p < pixels; ++p) {
        const int32_t *a = accumulators + p * channels;
        uint8_t *o = output + p * channels;
        long c = 0;
#define FLOAT_REQUANTIZED(c) \
    float_requantize16_unclamped(_mm512_add_epi32(_mm512_loadu_si512(a + (c)), _mm512_loadu_si512(bias + (c))), _mm512_loadu_ps(scale + (c)), zp, 0)
        // 64 channels at a time: one packed store.
        for (; c + 64 <= channels; c += 64)
            _mm512_storeu_si512(o + c, dword_transpose4x4(pack64_clamped(FLOAT_REQUANTIZED(c), FLOAT_REQUANTIZED(c + 16),
                                                                         FLOAT_REQUANTIZED(c + 32), FLOAT_REQUANTIZED(c + 48), lo, hi)));
#undef FLOAT_REQUANTIZED
        for (; c < channels; c += 16) {
            __mmask16 m = tail16(channels - c);
            __m512i x = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, a + c), _mm512_maskz_loadu_epi32(m, bias + c));
            _mm512_mask_cvtepi32_storeu_epi8(o + c, m, float_requantize16(x, _mm512_maskz_loadu_ps(m, scale + c), zp, lo, hi));
        }
    }
}
static void requantize_float_generic(const int32_t *accumulators, long pixels, long channels, const int32_t *bias,
                                     const float *scale, int32_t zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    REQUANTIZE_FLOAT_BODY
}

void rc_requantize_float(const int32_t *accumulators, long pixels, long channels, const int32_t *bias,
                         const float *scale, int32_t zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    if (rc_use_avx512()) requantize_float_avx512(accumulators, pixels, channels, bias, scale, zero_point, lo, hi, output);
    else requantize_float_generic(accumulators, pixels, channels, bias, scale, zero_point, lo, hi, output);
}

// One add input's rescaling alone (a test hook for input_rescale, epilogue.h).
AVX512 static void rescale_input_avx512(const uint8_t *q, long count, int32_t zero_point, int32_t left_shift,
                                        int32_t multiplier, int32_t right_shift, int32_t *output) {
    const input_rescale16 r = input_rescale_params(zero_point, left_shift, multiplier, right_shift);
    const __m512i constant = _mm512_set1_epi32(r.constant);
    for (long i = 0; i < count; i += 16) {
        __mmask16 m = tail16(count - i);
        __m512i x = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, q + i));
        __m512i v = r.shift_only ? input_rescale(x, &r, 1) : input_rescale(x, &r, 0);
        _mm512_mask_storeu_epi32(output + i, m, _mm512_add_epi32(v, constant));
    }
}

void rc_tflite_rescale_input(const uint8_t *q, long count, int32_t zero_point, int32_t left_shift, int32_t multiplier,
                             int32_t right_shift, int32_t *output) {
    if (rc_use_avx512() && input_rescale_exact(left_shift, multiplier, right_shift)) {
        rescale_input_avx512(q, count, zero_point, left_shift, multiplier, right_shift, output);
    } else {
        for (long i = 0; i < count; ++i)
            output[i] = tflite_multiply(((int32_t)q[i] - zero_point) * (1 << left_shift), multiplier, 0, right_shift);
    }
}

// TFLite's int8 ADD (reference_ops::AddElementwise): both inputs rescaled to a common
// fixed-point scale with a 20-bit left shift, summed, rescaled to the output.
static int tflite_add_vectorizes(const tflite_add_parameters *p) {
    return rc_use_avx512() && input_rescale_exact(p->left_shift, p->a_multiplier, p->a_right_shift)
        && input_rescale_exact(p->left_shift, p->b_multiplier, p->b_right_shift)
        && p->out_multiplier != INT32_MIN && single_floor_applies(p->out_right_shift);
}

// One copy of the loop per value of the constant flags (see tflite_add16_unclamped).
AVX512 static inline __attribute__((always_inline)) void add_tflite_loop(const uint8_t *a, const uint8_t *b, long count, const tflite_add16 *v,
                                                                          int a_shift, int sign_correction, uint8_t *output) {
    long i = 0;
    // 64 values at a time: plain loads, and one packed, byte-clamped store.
    for (; i + 64 <= count; i += 64) {
        __m512i r[4];
        for (int k = 0; k < 4; ++k) {
            __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(a + i + 16 * k)));
            __m512i y = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + i + 16 * k)));
            r[k] = tflite_add16_unclamped(x, y, v, a_shift, sign_correction);
        }
        _mm512_storeu_si512(output + i, dword_transpose4x4(pack64_clamped(r[0], r[1], r[2], r[3], v->lo, v->hi)));
    }
    for (; i < count; i += 16) {
        __mmask16 m = tail16(count - i);
        __m512i x = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, a + i)), y = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, b + i));
        _mm512_mask_cvtepi32_storeu_epi8(output + i, m, clamp16(tflite_add16_unclamped(x, y, v, a_shift, sign_correction), v->lo, v->hi));
    }
}

AVX512 static void add_tflite_avx512(const uint8_t *a, const uint8_t *b, long count, const tflite_add_parameters *p, uint8_t *output) {
    tflite_add_parameters q = *p;
    // The sum is symmetric: the shift-only input (if any) goes first.
    if (!input_rescale_params(p->a_zero_point, p->left_shift, p->a_multiplier, p->a_right_shift).shift_only) {
        q.a_zero_point = p->b_zero_point; q.a_multiplier = p->b_multiplier; q.a_right_shift = p->b_right_shift;
        q.b_zero_point = p->a_zero_point; q.b_multiplier = p->a_multiplier; q.b_right_shift = p->a_right_shift;
        const uint8_t *t = a; a = b; b = t;
    }
    const tflite_add16 v = tflite_add16_params(&q);
    if (v.a.shift_only) {
        if (v.out.sign_correction) add_tflite_loop(a, b, count, &v, 1, 1, output);
        else add_tflite_loop(a, b, count, &v, 1, 0, output);
    } else {
        if (v.out.sign_correction) add_tflite_loop(a, b, count, &v, 0, 1, output);
        else add_tflite_loop(a, b, count, &v, 0, 0, output);
    }
}

void rc_add_tflite(const uint8_t *a, const uint8_t *b, long count, int32_t a_zero_point, int32_t b_zero_point,
                   int32_t left_shift, int32_t a_multiplier, int32_t a_right_shift, int32_t b_multiplier,
                   int32_t b_right_shift, int32_t out_multiplier, int32_t out_right_shift,
                   int32_t out_zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    const tflite_add_parameters p = { a_zero_point, b_zero_point, left_shift, a_multiplier, a_right_shift, b_multiplier,
                              b_right_shift, out_multiplier, out_right_shift, out_zero_point, lo, hi };
    if (tflite_add_vectorizes(&p)) add_tflite_avx512(a, b, count, &p, output);
    else for (long i = 0; i < count; ++i) output[i] = tflite_add_value(a[i], b[i], &p);
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

// Sixteen QNNPACK sums before the output clamp.
AVX512 static inline __m512i add_qnnpack16(__m512i a, __m512i b, __m512i zpp, __m512i am, __m512i bm, __m512i mask,
                                           __m512i threshold, __m512i ozp, __m128i count_shift) {
    const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi32(1);
    __m512i acc = _mm512_add_epi32(_mm512_add_epi32(zpp, _mm512_mullo_epi32(a, am)), _mm512_mullo_epi32(b, bm));
    __m512i remainder = _mm512_and_si512(acc, mask);
    remainder = _mm512_mask_sub_epi32(remainder, _mm512_cmplt_epi32_mask(acc, zero), remainder, one);
    __m512i v = _mm512_sra_epi32(acc, count_shift);
    v = _mm512_mask_add_epi32(v, _mm512_cmpgt_epi32_mask(remainder, threshold), v, one);
    return _mm512_add_epi32(v, ozp);
}

AVX512 static void add_qnnpack_avx512(const uint8_t *a, const uint8_t *b, long count, int32_t zero_point_product,
                                      uint32_t a_multiplier, uint32_t b_multiplier, int32_t shift, int32_t remainder_mask,
                                      int32_t remainder_threshold, int32_t out_zero_point, int32_t lo, int32_t hi, uint8_t *output) {
    const __m512i zpp = _mm512_set1_epi32(zero_point_product), am = _mm512_set1_epi32((int32_t)a_multiplier), bm = _mm512_set1_epi32((int32_t)b_multiplier);
    const __m512i mask = _mm512_set1_epi32(remainder_mask), threshold = _mm512_set1_epi32(remainder_threshold);
    const __m512i ozp = _mm512_set1_epi32(out_zero_point);
    const __m128i count_shift = _mm_cvtsi32_si128(shift);
    long i = 0;
    // 64 values at a time: plain loads, and one packed, byte-clamped store.
    for (; i + 64 <= count; i += 64) {
        __m512i r[4];
        for (int k = 0; k < 4; ++k)
            r[k] = add_qnnpack16(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(a + i + 16 * k))),
                                 _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + i + 16 * k))),
                                 zpp, am, bm, mask, threshold, ozp, count_shift);
        _mm512_storeu_si512(output + i, dword_transpose4x4(pack64_clamped(r[0], r[1], r[2], r[3], lo, hi)));
    }
    for (; i < count; i += 16) {
        __mmask16 m = tail16(count - i);
        __m512i v = add_qnnpack16(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, a + i)), _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, b + i)),
                                  zpp, am, bm, mask, threshold, ozp, count_shift);
        _mm512_mask_cvtepi32_storeu_epi8(output + i, m, clamp16(v, lo, hi));
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
    if (rc_use_avx512()) add_qnnpack_avx512(a, b, count, zero_point_product, a_multiplier, b_multiplier, shift, remainder_mask, remainder_threshold, out_zero_point, lo, hi, output);
    else add_qnnpack_generic(a, b, count, zero_point_product, a_multiplier, b_multiplier, shift, remainder_mask, remainder_threshold, out_zero_point, lo, hi, output);
}

// Average pooling of uint8 channels-last maps with each scheme's rounding: TFLite's
// reference_integer_ops::AveragePool (int8 values = uint8 − 128, padded cells counted as
// the zero point, divide rounding half away from zero) or QNNPACK's q8avgpool
// (float(acc − zp·k) × (s / (s·k)), nearest even). Output rows first_row ..< last_row of
// batch × output_height; window spans per output row / column with their divisor shares.
typedef struct {
    const uint8_t *input;
    long height, width, channels;
    uint8_t *output;
    long output_height, output_width, first_row, last_row;
    const int32_t *row_start, *row_end, *row_count, *col_start, *col_end, *col_count;
    int scheme;
    int32_t zero_point;
    float scale;
} average_pool_job;

// One output cell: its image, window rows [row_start[y], row_end[y]) and columns
// [col_start[x], col_end[x]), the `valid` input cells in it, the scheme's divisor, and where
// its channels go.
typedef struct { long b, y, x; int32_t valid, divisor; uint8_t *output; } average_pool_cell;

static inline average_pool_cell average_pool_cell_at(const average_pool_job *j, long r, long x) {
    average_pool_cell cell = { r / j->output_height, r % j->output_height, x, 0, 0, j->output + (r * j->output_width + x) * j->channels };
    cell.valid = (j->row_end[cell.y] - j->row_start[cell.y]) * (j->col_end[x] - j->col_start[x]);
    cell.divisor = j->row_count[cell.y] * j->col_count[x];
    return cell;
}

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

static void average_pool_generic(const average_pool_job *j) {
    for (long r = j->first_row; r < j->last_row; ++r)
        for (long x = 0; x < j->output_width; ++x) {
            average_pool_cell cell = average_pool_cell_at(j, r, x);
            for (long c = 0; c < j->channels; ++c) {
                int32_t sum = 0;
                for (long iy = j->row_start[cell.y]; iy < j->row_end[cell.y]; ++iy)
                    for (long ix = j->col_start[x]; ix < j->col_end[x]; ++ix)
                        sum += j->input[((cell.b * j->height + iy) * j->width + ix) * j->channels + c];
                cell.output[c] = (uint8_t)rc_average_pool_value(sum, cell.valid, cell.divisor, j->scheme, j->zero_point, j->scale);
            }
        }
}

// TFLite's truncating division is done in float: for integers |n| < 2^24 and d ≥ 1, the float
// quotient of n / d truncates to the integer quotient (n / d is at least 1/d from any integer
// it is not, more than half an ulp). Windows are summed in 16-bit lanes, 32 channels at a
// time, so windows of at most 257 cells (sums ≤ 65535) take this code; larger ones the
// portable C.
AVX512 static void average_pool_avx512(const average_pool_job *j) {
    const long channels = j->channels;
    const int32_t zero_point = j->zero_point;
    for (long r = j->first_row; r < j->last_row; ++r)
        for (long x = 0; x < j->output_width; ++x) {
            average_pool_cell cell = average_pool_cell_at(j, r, x);
            int32_t valid = cell.valid, divisor = cell.divisor;
            // acc = sum + offset; TFLite then divides with rounding, QNNPACK scales.
            int32_t offset = j->scheme == 0 ? -128 * valid + (divisor - valid) * (zero_point - 128)
                                            : (divisor - valid) * zero_point - zero_point * divisor;
            __m512i half = _mm512_set1_epi32(divisor / 2), shift = _mm512_set1_epi32(offset);
            __m512 d = _mm512_set1_ps((float)divisor), k = _mm512_set1_ps(j->scale / (j->scale * (float)divisor));
            // Window sums of 32 channels in 16-bit lanes (the caller guarantees at most 257
            // cells, so they cannot wrap), then each half through the scheme's rounding.
            for (long c = 0; c < channels; c += 32) {
                const long remaining = channels - c;
                const __mmask32 m = remaining >= 32 ? ~(__mmask32)0 : (((__mmask32)1 << remaining) - 1);
                __m512i sum16 = _mm512_setzero_si512();
                for (long iy = j->row_start[cell.y]; iy < j->row_end[cell.y]; ++iy) {
                    const uint8_t *line = j->input + ((cell.b * j->height + iy) * j->width) * channels + c;
                    for (long ix = j->col_start[x]; ix < j->col_end[x]; ++ix)
                        sum16 = _mm512_add_epi16(sum16, _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, line + ix * channels)));
                }
                for (int half_index = 0; half_index < 2 && 16 * half_index < remaining; ++half_index) {
                    const __mmask16 m16 = tail16(remaining - 16 * half_index);
                    __m512i sum = _mm512_cvtepu16_epi32(half_index == 0 ? _mm512_castsi512_si256(sum16) : _mm512_extracti64x4_epi64(sum16, 1));
                    __m512i acc = _mm512_add_epi32(sum, shift), result;
                    if (j->scheme == 0) {
                        __mmask16 positive = _mm512_cmpgt_epi32_mask(acc, _mm512_setzero_si512());
                        __m512i n = _mm512_mask_add_epi32(_mm512_sub_epi32(acc, half), positive, acc, half);
                        result = _mm512_add_epi32(_mm512_cvttps_epi32(_mm512_div_ps(_mm512_cvtepi32_ps(n), d)), _mm512_set1_epi32(128));
                    } else {
                        __m512i v = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), k), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                        result = _mm512_add_epi32(v, _mm512_set1_epi32(zero_point));
                    }
                    _mm512_mask_cvtepi32_storeu_epi8(cell.output + c + 16 * half_index, m16, clamp16(result, 0, 255));
                }
            }
        }
}

void rc_average_pool_u8(const uint8_t *input, long height, long width, long channels, uint8_t *output,
                        long output_height, long output_width, long first_row, long last_row,
                        const int32_t *row_start, const int32_t *row_end, const int32_t *row_count,
                        const int32_t *col_start, const int32_t *col_end, const int32_t *col_count,
                        int scheme, int32_t zero_point, float scale) {
    const average_pool_job job = { input, height, width, channels, output, output_height, output_width, first_row, last_row,
                                   row_start, row_end, row_count, col_start, col_end, col_count, scheme, zero_point, scale };
    int32_t largest = 0, widest = 0;
    for (long y = 0; y < output_height; ++y) if (row_count[y] > largest) largest = row_count[y];
    for (long x = 0; x < output_width; ++x) if (col_count[x] > widest) widest = col_count[x];
    // The vector code sums in 16-bit lanes: at most 257 cells of 255.
    if (rc_use_avx512() && (long)largest * widest <= 257) average_pool_avx512(&job);
    else average_pool_generic(&job);
}

// Quantization of float NCHW planes into uint8 channels-last values, per the scheme:
// TFLite round(x / s) half away from zero, PyTorch nearest-even of x · (1 / s) (the caller
// passes 1 / s in `scale` then), plus the zero point, saturated to [0, 255]. Pixels
// first_pixel ..< last_pixel of one image of `channels` planes of `plane` values. The
// preprocessing, when given, comes first: output channel c reads plane source[c] and maps
// x to x·a[c] + b[c], two float roundings as the float executor's affine op (no FMA).
#pragma clang fp contract(off)

static inline uint8_t quantize_value(float value, int scheme, float scale, float zero_point) {
    float q = scheme == 0 ? roundf(value / scale) : nearbyintf(value * scale);
    float shifted = fminf(fmaxf(q + zero_point, 0.0f), 255.0f);
    return (uint8_t)shifted;
}


// Sixteen floats of one plane, preprocessed and quantized per the scheme, as int32.
AVX512 static inline __m512i quantize16(__m512 v, int scheme, __m512 s, __m512 zp, int preprocess, __m512 a, __m512 b) {
    const __m512 magnitude = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
    __m512 q;
    if (preprocess) v = preprocess16(v, a, b);
    if (scheme == 0) {
        // roundf: truncate, then step away from zero when the dropped part is ≥ ½
        // (the fraction v − trunc(v) is exact in float).
        __m512 x = _mm512_div_ps(v, s);
        __m512 t = _mm512_roundscale_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __mmask16 up = _mm512_cmp_ps_mask(_mm512_and_ps(_mm512_sub_ps(x, t), magnitude), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
        __m512 step = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_andnot_ps(magnitude, x));
        q = _mm512_mask_add_ps(t, up, t, step);
    } else {
        q = _mm512_roundscale_ps(_mm512_mul_ps(v, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
    __m512 shifted = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(q, zp), _mm512_setzero_ps()), _mm512_set1_ps(255.0f));
    return _mm512_cvttps_epi32(shifted);
}

AVX512 static void quantize_planes_avx512(const float *planes, long channels, long plane, long first_pixel, long last_pixel,
                                          const rc_preprocessing *pre, int scheme, float scale, float zero_point, uint8_t *output) {
    enum { BLOCK = 64 };
    uint8_t staged[BLOCK * 16];
    const __m512 s = _mm512_set1_ps(scale), zp = _mm512_set1_ps(zero_point);
    for (long p0 = first_pixel; p0 < last_pixel; p0 += BLOCK) {
        long count = last_pixel - p0 < BLOCK ? last_pixel - p0 : BLOCK;
        for (long c = 0; c < channels; ++c) {
            const float *source = planes + source_plane(pre, c) * plane;
            const __m512 a = _mm512_set1_ps(pre ? pre->scale[c] : 1.0f), b = _mm512_set1_ps(pre ? pre->shift[c] : 0.0f);
            for (long i = 0; i < count; i += 16) {
                __mmask16 m = tail16(count - i);
                __m512 v = _mm512_maskz_loadu_ps(m, source + p0 + i);
                _mm512_mask_cvtepi32_storeu_epi8(staged + c * BLOCK + i, m, quantize16(v, scheme, s, zp, pre != 0, a, b));
            }
        }
        for (long i = 0; i < count; ++i)
            for (long c = 0; c < channels; ++c) output[(p0 + i) * channels + c] = staged[c * BLOCK + i];
    }
}

// Three channels (an RGB image), 64 pixels at a time: each channel's 64 bytes in one vector,
// interleaved into the 192 output bytes by two byte permutes per output vector (AVX-512
// VBMI) instead of 192 scalar moves — the moves were most of the step's time.
#define VBMI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi")))

// Output vector k, byte j holds pixel (64k + j) / 3 of channel (64k + j) % 3: the first
// permute picks channels 0 and 1 (pixel, or 64 + pixel), the second channel 2's bytes.
// Built per call (a few hundred scalar steps against a thread's share of the image).
typedef struct { uint8_t first[3][64], second[3][64]; __mmask64 third_channel[3]; } interleave3_tables;

static void make_interleave3_tables(interleave3_tables *t) {
    for (int k = 0; k < 3; ++k) {
        t->third_channel[k] = 0;
        for (int j = 0; j < 64; ++j) {
            const int g = 64 * k + j, pixel = g / 3, channel = g % 3;
            t->first[k][j] = (uint8_t)(channel == 1 ? 64 + pixel : pixel);
            t->second[k][j] = (uint8_t)pixel;
            if (channel == 2) t->third_channel[k] |= (__mmask64)1 << j;
        }
    }
}

VBMI static void quantize_rgb_vbmi(const float *planes, long plane, long first_pixel, long last_pixel, const rc_preprocessing *pre,
                                   int scheme, float scale, float zero_point, uint8_t *output) {
    interleave3_tables tables;
    make_interleave3_tables(&tables);
    const __m512 s = _mm512_set1_ps(scale), zp = _mm512_set1_ps(zero_point);
    const rgb_planes in = rgb_planes_at(planes, plane, pre);
    for (long p0 = first_pixel; p0 < last_pixel; p0 += 64) {
        const long count = last_pixel - p0 < 64 ? last_pixel - p0 : 64;
        __m512i bytes[3];
        for (int c = 0; c < 3; ++c) {
            __m128i part[4];
            for (int i = 0; i < 4; ++i) {
                const __mmask16 m = count > 16 * i ? tail16(count - 16 * i) : 0;
                const __m512 v = _mm512_maskz_loadu_ps(m, in.source[c] + p0 + 16 * i);
                part[i] = _mm512_cvtepi32_epi8(quantize16(v, scheme, s, zp, pre != 0, in.scale[c], in.shift[c]));
            }
            const __m256i low = _mm256_inserti128_si256(_mm256_castsi128_si256(part[0]), part[1], 1);
            const __m256i high = _mm256_inserti128_si256(_mm256_castsi128_si256(part[2]), part[3], 1);
            bytes[c] = _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
        }
        uint8_t *out = output + p0 * 3;
        for (int k = 0; k < 3; ++k) {
            const long left = 3 * count - 64 * k;
            if (left <= 0) break;
            const __mmask64 m = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
            __m512i v = _mm512_permutex2var_epi8(bytes[0], _mm512_loadu_si512(tables.first[k]), bytes[1]);
            v = _mm512_mask_permutexvar_epi8(v, tables.third_channel[k], _mm512_loadu_si512(tables.second[k]), bytes[2]);
            _mm512_mask_storeu_epi8(out + 64 * k, m, v);
        }
    }
}

void rc_quantize_planes(const float *planes, long channels, long plane, long first_pixel, long last_pixel,
                        const rc_preprocessing *preprocessing, int scheme, float scale, float zero_point, uint8_t *output) {
    if (channels == 3 && rc_use_vbmi()) {
        quantize_rgb_vbmi(planes, plane, first_pixel, last_pixel, preprocessing, scheme, scale, zero_point, output);
        return;
    }
    if (rc_use_avx512() && channels <= 16) {
        quantize_planes_avx512(planes, channels, plane, first_pixel, last_pixel, preprocessing, scheme, scale, zero_point, output);
        return;
    }
    for (long p = first_pixel; p < last_pixel; ++p)
        for (long c = 0; c < channels; ++c)
            output[p * channels + c] = quantize_value(preprocess(planes[source_plane(preprocessing, c) * plane + p], preprocessing, c),
                                                      scheme, scale, zero_point);
}

// Concatenation: whole 64-byte vectors per pixel and input, a masked one for the tail; table
// lookups with two 128-entry byte permutes (AVX-512 VBMI) chosen by each value's top bit.

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi")))
static void concat_avx512(const uint8_t *const *sources, const long *channels, const uint8_t *const *tables, long inputs,
                          long total, long first_pixel, long last_pixel, uint8_t *output) {
    for (long p = first_pixel; p < last_pixel; ++p) {
        uint8_t *row = output + p * total;
        for (long i = 0; i < inputs; ++i) {
            const long c = channels[i];
            const uint8_t *source = sources[i] + p * c;
            const uint8_t *table = tables[i];
            __m512i t0, t1, t2, t3;
            if (table) {
                t0 = _mm512_loadu_si512(table); t1 = _mm512_loadu_si512(table + 64);
                t2 = _mm512_loadu_si512(table + 128); t3 = _mm512_loadu_si512(table + 192);
            }
            for (long k = 0; k < c; k += 64) {
                const __mmask64 m = c - k >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (c - k)) - 1);
                __m512i v = _mm512_maskz_loadu_epi8(m, source + k);
                if (table) {
                    const __m512i low = _mm512_permutex2var_epi8(t0, v, t1), high = _mm512_permutex2var_epi8(t2, v, t3);
                    v = _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), low, high);
                }
                _mm512_mask_storeu_epi8(row + k, m, v);
            }
            row += c;
        }
    }
}

void rc_concat_u8(const uint8_t *const *sources, const long *channels, const uint8_t *const *tables, long inputs,
                  long total, long first_pixel, long last_pixel, uint8_t *output) {
    if (rc_use_vbmi()) {
        concat_avx512(sources, channels, tables, inputs, total, first_pixel, last_pixel, output);
        return;
    }
    for (long p = first_pixel; p < last_pixel; ++p) {
        uint8_t *row = output + p * total;
        for (long i = 0; i < inputs; ++i) {
            const long c = channels[i];
            const uint8_t *source = sources[i] + p * c;
            if (tables[i]) for (long k = 0; k < c; ++k) row[k] = tables[i][source[k]];
            else memcpy(row, source, (size_t)c);
            row += c;
        }
    }
}


long rc_requantization_prepared_count(long n) { return (n + 15) / 16 * PREPARED_GROUP; }

// Whether single_floor16_narrow is exact for channel c when |acc + bias| ≤ bound: 2x must fit
// in int32, and h′ (which lies within (−|x| − 1, |x| + 1 + 2^(r−1) + zp·2^r]) and h′ − 1 too.
static int narrow_applies(const rc_requantization *q, long c, long bound) {
    const int32_t r = q->right_shift[c];
    if (!single_floor_applies(r) || q->left_shift[c] != 0 || bound < 0 || bound >= (1L << 30) || q->zero_point < 0) return 0;
    return (int64_t)bound + 2 + (1LL << (r - 1)) + ((int64_t)q->zero_point << r) < (1LL << 31);
}

AVX512 static void prepare_avx512(const rc_requantization *q, long n, long accumulator_bound, int64_t *prepared) {
    for (long c = 0; c < n; c += 16) {
        const __mmask16 m = tail16(n - c);
        int64_t *g = prepared + c / 16 * PREPARED_GROUP;
        const __m512i multiplier = _mm512_maskz_loadu_epi32(m, q->multiplier + c), shift = _mm512_maskz_loadu_epi32(m, q->right_shift + c);
        const __m512i left = _mm512_maskz_loadu_epi32(m, q->left_shift + c);
        g[0] = single_floor_lanes(shift, m);
        g[1] = _mm512_test_epi32_mask(left, left) != 0;
        const single_floor16 sf = single_floor_params(multiplier, shift, q->zero_point, q->lo);
        _mm512_storeu_si512(g + 8, sf.multiplier_odd);
        _mm512_storeu_si512(g + 16, sf.constant_even);
        _mm512_storeu_si512(g + 24, sf.constant_odd);
        _mm512_storeu_si512(g + 32, sf.shift_even);
        _mm512_storeu_si512(g + 40, sf.shift_odd);
        int narrow = 1;
        for (long lane = c; lane < c + 16 && lane < n; ++lane) narrow = narrow && narrow_applies(q, lane, accumulator_bound);
        g[2] = narrow;
    }
}

void rc_requantization_prepare(const rc_requantization *q, long n, long accumulator_bound, int64_t *prepared) {
    memset(prepared, 0, (size_t)rc_requantization_prepared_count(n) * sizeof(int64_t));
    // Only the AVX-512 kernels read the table; elsewhere every group stays "derive it".
    if (q->scheme == 0 && rc_use_avx512()) prepare_avx512(q, n, accumulator_bound, prepared);
}

// The window of output (y, x) clipped to the image: rows [*y0, *y1), columns [*x0, *x1).
static inline void max_pool_window(long y, long x, long height, long width, long kernel_h, long kernel_w, long stride_h,
                                   long stride_w, long pad_top, long pad_left, long *y0, long *y1, long *x0, long *x1) {
    const long top = y * stride_h - pad_top, left = x * stride_w - pad_left;
    *y0 = top < 0 ? 0 : top;
    *y1 = top + kernel_h < height ? top + kernel_h : height;
    *x0 = left < 0 ? 0 : left;
    *x1 = left + kernel_w < width ? left + kernel_w : width;
}

// 64 channels per vector, the last block masked; the maximum is exact, so any order gives
// the portable loop's bytes.
AVX512 static void max_pool_u8_avx512(const uint8_t *input, long height, long width, long channels, long kernel_h,
                                      long kernel_w, long stride_h, long stride_w, long pad_top, long pad_left,
                                      long output_height, long output_width, long first_row, long last_row, uint8_t *output) {
    for (long r = first_row; r < last_row; ++r) {
        const long b = r / output_height, y = r % output_height;
        const uint8_t *image = input + b * height * width * channels;
        for (long x = 0; x < output_width; ++x) {
            long y0, y1, x0, x1;
            max_pool_window(y, x, height, width, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, &y0, &y1, &x0, &x1);
            uint8_t *out = output + (r * output_width + x) * channels;
            for (long c = 0; c < channels; c += 64) {
                const __mmask64 m = channels - c >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (channels - c)) - 1);
                __m512i best = _mm512_setzero_si512();
                for (long iy = y0; iy < y1; ++iy)
                    for (long ix = x0; ix < x1; ++ix)
                        best = _mm512_max_epu8(best, _mm512_maskz_loadu_epi8(m, image + (iy * width + ix) * channels + c));
                _mm512_mask_storeu_epi8(out + c, m, best);
            }
        }
    }
}

void rc_max_pool_u8(const uint8_t *input, long height, long width, long channels, long kernel_h, long kernel_w,
                    long stride_h, long stride_w, long pad_top, long pad_left, long output_height, long output_width,
                    long first_row, long last_row, uint8_t *output) {
    if (rc_use_avx512()) {
        max_pool_u8_avx512(input, height, width, channels, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left,
                           output_height, output_width, first_row, last_row, output);
        return;
    }
    for (long r = first_row; r < last_row; ++r) {
        const long b = r / output_height, y = r % output_height;
        const uint8_t *image = input + b * height * width * channels;
        for (long x = 0; x < output_width; ++x) {
            long y0, y1, x0, x1;
            max_pool_window(y, x, height, width, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, &y0, &y1, &x0, &x1);
            uint8_t *out = output + (r * output_width + x) * channels;
            for (long c = 0; c < channels; ++c) {
                uint8_t best = 0;
                for (long iy = y0; iy < y1; ++iy)
                    for (long ix = x0; ix < x1; ++ix) {
                        const uint8_t v = image[(iy * width + ix) * channels + c];
                        best = v > best ? v : best;
                    }
                out[c] = best;
            }
        }
    }
}
