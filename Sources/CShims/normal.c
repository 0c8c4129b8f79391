// Standard normal samples by Marsaglia & Tsang's ziggurat (128 layers) on a counter-based
// generator: samples 2m and 2m + 1 of stream `key` take the low and high 32 bits of
// SplitMix64's output for counter m, so any stretch of a stream can be computed on its own
// and sixteen samples at once. ≈ 98.8 % of samples take the fast path (one table compare
// and one multiply), the rest the exact rejection steps, with further uniforms from a
// SplitMix64 sequence seeded by that sample's index. The AVX-512 kernel (tables held in
// registers, rejected samples collected and finished afterwards) and the portable C give
// the same bits (no FMA contraction, int → float conversion rounds to nearest in both);
// tests check it.
#pragma STDC FP_CONTRACT OFF
#include "include/CShims.h"
#include <immintrin.h>
#include <math.h>
#include <pthread.h>

#define GOLDEN 0x9E3779B97F4A7C15ull
#define AVX512 __attribute__((target("avx512f,avx512dq")))

static uint32_t table_k[128];
static float table_w[128], table_f[128];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void make_tables(void) {
    const double m1 = 2147483648.0, vn = 9.91256303526217e-3;
    double dn = 3.442619855899, tn = dn;
    double q = vn / exp(-0.5 * dn * dn);
    table_k[0] = (uint32_t)(dn / q * m1);
    table_k[1] = 0;
    table_w[0] = (float)(q / m1);
    table_w[127] = (float)(dn / m1);
    table_f[0] = 1;
    table_f[127] = (float)exp(-0.5 * dn * dn);
    for (int i = 126; i >= 1; i--) {
        dn = sqrt(-2 * log(vn / dn + exp(-0.5 * dn * dn)));
        table_k[i + 1] = (uint32_t)(dn / tn * m1);
        tn = dn;
        table_f[i] = (float)exp(-0.5 * dn * dn);
        table_w[i] = (float)(dn / m1);
    }
}

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline int32_t sample_bits(uint64_t key, uint64_t i) {
    return (int32_t)(mix64(key + (i >> 1) * GOLDEN) >> (32 * (i & 1)));
}

static inline uint64_t next_bits(uint64_t *state) { *state += GOLDEN; return mix64(*state); }

static inline float next_uniform(uint64_t *state) { return (float)(next_bits(state) >> 40) * (1.0f / 16777216.0f); }

static inline int fast(int32_t hz, float *value) {
    int iz = hz & 127;
    uint32_t magnitude = hz < 0 ? 0u - (uint32_t)hz : (uint32_t)hz;
    *value = (float)hz * table_w[iz];
    return magnitude < table_k[iz];
}

// The rejection steps for a sample whose first 32 bits `hz` missed the fast path.
static float slow(int32_t hz, uint64_t key, uint64_t i) {
    uint64_t state = mix64(key ^ (i * GOLDEN) ^ 0xD6E8FEB86659FD93ull);
    const float r = 3.442620f;
    for (;;) {
        int iz = hz & 127;
        float x = (float)hz * table_w[iz];
        if (iz == 0) {
            float tail, y;
            do {
                float u1 = next_uniform(&state), u2 = next_uniform(&state);
                tail = -logf(u1 > 0 ? u1 : 1.17549435e-38f) * 0.2904764f;
                y = -logf(u2 > 0 ? u2 : 1.17549435e-38f);
            } while (y + y < tail * tail);
            return hz > 0 ? r + tail : -r - tail;
        }
        if (table_f[iz] + next_uniform(&state) * (table_f[iz - 1] - table_f[iz]) < expf(-0.5f * x * x)) return x;
        hz = (int32_t)next_bits(&state);
        float value;
        if (fast(hz, &value)) return value;
    }
}

static void fill_generic(uint64_t key, uint64_t first, float *out, long n) {
    for (long j = 0; j < n; j++) {
        uint64_t i = first + (uint64_t)j;
        int32_t hz = sample_bits(key, i);
        float value;
        out[j] = fast(hz, &value) ? value : slow(hz, key, i);
    }
}

AVX512 static inline __m512i mix64_avx512(__m512i z) {
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ull));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), _mm512_set1_epi64((long long)0x94D049BB133111EBull));
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

// A 128-entry table lookup from eight registers: four two-register permutes on the low
// five bits of the index, then blends on bits 5 and 6 (faster than a gather here).
AVX512 static inline __m512 lookup_avx512(__m512i index, const __m512 table[8]) {
    __m512 a = _mm512_permutex2var_ps(table[0], index, table[1]), b = _mm512_permutex2var_ps(table[2], index, table[3]);
    __m512 c = _mm512_permutex2var_ps(table[4], index, table[5]), d = _mm512_permutex2var_ps(table[6], index, table[7]);
    __mmask16 bit5 = _mm512_test_epi32_mask(index, _mm512_set1_epi32(32));
    __mmask16 bit6 = _mm512_test_epi32_mask(index, _mm512_set1_epi32(64));
    return _mm512_mask_blend_ps(bit6, _mm512_mask_blend_ps(bit5, a, b), _mm512_mask_blend_ps(bit5, c, d));
}

AVX512 static void fill_avx512(uint64_t key, uint64_t first, float *out, long n) {
    long j = 0;
    if (first & 1) { fill_generic(key, first, out, n < 1 ? n : 1); j = 1; }
    __m512 k_table[8], w_table[8];
    for (int t = 0; t < 8; t++) {
        k_table[t] = _mm512_castsi512_ps(_mm512_loadu_si512(table_k + 16 * t));
        w_table[t] = _mm512_loadu_ps(table_w + 16 * t);
    }
    const __m512i low_bits = _mm512_set1_epi32(127), lane_index = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i step = _mm512_set1_epi64((long long)(8 * GOLDEN));
    // Counters (first + j) / 2 + 0 ..< 8, times GOLDEN, plus the key; each gives two samples.
    __m512i counters = _mm512_add_epi64(_mm512_set1_epi64((long long)(key + ((first + (uint64_t)j) >> 1) * GOLDEN)),
                                        _mm512_mullo_epi64(_mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi64((long long)GOLDEN)));
    // Rejected samples are collected (as offsets into out) in chunks and finished in scalar code.
    enum { CHUNK = 4096 };
    int32_t rejected[CHUNK + 16];
    long count = 0;
    for (; j + 16 <= n; j += 16) {
        __m512i hz = mix64_avx512(counters);
        counters = _mm512_add_epi64(counters, step);
        __m512i iz = _mm512_and_si512(hz, low_bits);
        __m512i k = _mm512_castps_si512(lookup_avx512(iz, k_table));
        __mmask16 refused = _mm512_cmpge_epu32_mask(_mm512_abs_epi32(hz), k);
        _mm512_storeu_ps(out + j, _mm512_mul_ps(_mm512_cvtepi32_ps(hz), lookup_avx512(iz, w_table)));
        // Compress in a register and store all sixteen (the slack is there): a compressing
        // store to memory is microcoded on Zen 4/5 and costs more than the whole sampler.
        _mm512_storeu_si512(rejected + count, _mm512_maskz_compress_epi32(refused, _mm512_add_epi32(lane_index, _mm512_set1_epi32((int)j))));
        count += __builtin_popcount(refused);
        if (count > CHUNK || j + 32 > n) {
            for (long r = 0; r < count; r++) {
                uint64_t i = first + (uint64_t)rejected[r];
                out[rejected[r]] = slow(sample_bits(key, i), key, i);
            }
            count = 0;
        }
    }
    fill_generic(key, first + (uint64_t)j, out + j, n - j);
}

void rc_fill_normal(uint64_t key, uint64_t first, float *out, long n) {
    pthread_once(&tables_once, make_tables);
    if (rc_use_avx512()) fill_avx512(key, first, out, n);
    else fill_generic(key, first, out, n);
}
