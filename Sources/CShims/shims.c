#include "CShims.h"

#include <immintrin.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <png.h>
#include <jpeglib.h>
#define JPEG_INTERNALS
#include <jerror.h>

extern void omp_set_num_threads(int);
extern int omp_get_max_threads(void);
extern int omp_get_thread_num(void);
extern int omp_get_num_threads(void);
/* libgomp's entry point for `#pragma omp parallel`, called directly so that this file
   needs no -fopenmp flag. */
extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);

static int force_generic = 0;

void rc_force_generic(int generic) { force_generic = generic; }

int rc_use_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
              && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    }
    return cached && !force_generic;
}

int rc_use_vnni(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512vnni");
    }
    return cached && rc_use_avx512();
}

int rc_use_vbmi(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512vbmi");
    }
    return cached && rc_use_avx512();
}

struct rc_parallel_job {
    long count, chunks;
    void *context;
    void (*body)(void *, long, long);
};

static void rc_parallel_worker(void *data) {
    struct rc_parallel_job *job = (struct rc_parallel_job *)data;
    long thread = omp_get_thread_num(), threads = omp_get_num_threads();
    for (long chunk = thread; chunk < job->chunks; chunk += threads) {
        job->body(job->context, job->count * chunk / job->chunks, job->count * (chunk + 1) / job->chunks);
    }
}

void rc_parallel_for(long count, long chunks, int threads, void *context,
                     void (*body)(void *context, long begin, long end)) {
    struct rc_parallel_job job = { count, chunks, context, body };
    GOMP_parallel(rc_parallel_worker, &job, (unsigned)threads, 0);
}

// One counter per thread's share, each on its own cache line: a thread takes its own items
// in order, then the items left in the other shares, so a slow item, an uneven split or a
// thread descheduled by the host costs at most one item's time.
#define RC_MAX_SHARES 64
struct rc_balanced_share { _Atomic long next; long end; char pad[48]; };
struct rc_balanced_job {
    long shares;
    struct rc_balanced_share *share;
    void *context;
    void (*body)(void *, long, long);
};

static void rc_balanced_worker(void *data) {
    struct rc_balanced_job *job = (struct rc_balanced_job *)data;
    const long thread = omp_get_thread_num();
    for (long k = 0; k < job->shares; ++k) {
        struct rc_balanced_share *share = &job->share[(thread + k) % job->shares];
        for (;;) {
            const long item = atomic_fetch_add_explicit(&share->next, 1, memory_order_relaxed);
            if (item >= share->end) break;
            job->body(job->context, item, item + 1);
        }
    }
}

void rc_parallel_for_balanced(long count, int threads, void *context,
                              void (*body)(void *context, long begin, long end)) {
    const long shares = threads < RC_MAX_SHARES ? threads : RC_MAX_SHARES;
    struct rc_balanced_share share[RC_MAX_SHARES] __attribute__((aligned(64)));
    for (long t = 0; t < shares; ++t) {
        atomic_init(&share[t].next, count * t / shares);
        share[t].end = count * (t + 1) / shares;
    }
    struct rc_balanced_job job = { shares, share, context, body };
    GOMP_parallel(rc_balanced_worker, &job, (unsigned)threads, 0);
}

void rc_set_omp_threads(int threads) { omp_set_num_threads(threads); }
int rc_get_omp_max_threads(void) { return omp_get_max_threads(); }
void rc_free(void *pointer) { free(pointer); }

struct rc_jpeg_error {
    struct jpeg_error_mgr base;
    jmp_buf jump;
};

static void rc_jpeg_error_exit(j_common_ptr info) {
    struct rc_jpeg_error *error = (struct rc_jpeg_error *)info->err;
    longjmp(error->jump, 1);
}

/* Corrupt-but-decodable data produces warnings; a truncated file makes libjpeg
   pad with gray. We treat "premature end of data" as an error so that truncated
   files are reported, matching the project's "never silently misread" rule. */
static void rc_jpeg_emit_message(j_common_ptr info, int level) {
    if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) {
        rc_jpeg_error_exit(info);
    }
}

int rc_jpeg_decode_rgb(const uint8_t *data, size_t size,
                       uint8_t **pixels, int *width, int *height,
                       char *message, size_t message_capacity) {
    struct jpeg_decompress_struct info;
    struct rc_jpeg_error error;
    uint8_t *volatile output = NULL;
    uint8_t *volatile row = NULL;
    *pixels = NULL;
    info.err = jpeg_std_error(&error.base);
    error.base.error_exit = rc_jpeg_error_exit;
    error.base.emit_message = rc_jpeg_emit_message;
    if (setjmp(error.jump)) {
        if (message && message_capacity > 0) {
            char buffer[JMSG_LENGTH_MAX];
            (*info.err->format_message)((j_common_ptr)&info, buffer);
            strncpy(message, buffer, message_capacity - 1);
            message[message_capacity - 1] = 0;
        }
        jpeg_destroy_decompress(&info);
        free(output);
        free(row);
        return 1;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, data, (unsigned long)size);
    jpeg_read_header(&info, TRUE);
    int cmyk = info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK;
    info.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    if ((uint64_t)info.image_width * (uint64_t)info.image_height > (1ull << 28)) {
        if (message && message_capacity > 0) {
            strncpy(message, "image too large", message_capacity - 1);
            message[message_capacity - 1] = 0;
        }
        jpeg_destroy_decompress(&info);
        return 3;
    }
    jpeg_start_decompress(&info);
    int w = (int)info.output_width, h = (int)info.output_height;
    int components = info.output_components;
    output = malloc((size_t)w * (size_t)h * 3);
    row = malloc((size_t)w * (size_t)components);
    if (!output || !row) {
        if (message && message_capacity > 0) {
            strncpy(message, "out of memory", message_capacity - 1);
            message[message_capacity - 1] = 0;
        }
        jpeg_destroy_decompress(&info);
        free(output);
        free(row);
        return 2;
    }
    while (info.output_scanline < info.output_height) {
        size_t y = info.output_scanline;
        JSAMPROW rows[1] = { row };
        jpeg_read_scanlines(&info, rows, 1);
        uint8_t *dst = output + y * (size_t)w * 3;
        if (cmyk) {
            /* Adobe writes inverted CMYK; this is the conversion Pillow applies. */
            for (int x = 0; x < w; x++) {
                int k = row[4 * x + 3];
                dst[3 * x + 0] = (uint8_t)(row[4 * x + 0] * k / 255);
                dst[3 * x + 1] = (uint8_t)(row[4 * x + 1] * k / 255);
                dst[3 * x + 2] = (uint8_t)(row[4 * x + 2] * k / 255);
            }
        } else {
            memcpy(dst, row, (size_t)w * 3);
        }
    }
    jpeg_finish_decompress(&info);
    jpeg_destroy_decompress(&info);
    free(row);
    *pixels = output;
    *width = w;
    *height = h;
    return 0;
}

/* ---------------------------------------------------------------- PNG */

struct rc_png_source {
    const uint8_t *data;
    size_t size;
    size_t offset;
};

static void rc_png_read(png_structp png, png_bytep out, png_size_t length) {
    struct rc_png_source *source = (struct rc_png_source *)png_get_io_ptr(png);
    if (source->offset + length > source->size) {
        png_error(png, "unexpected end of file (truncated PNG)");
    }
    memcpy(out, source->data + source->offset, length);
    source->offset += length;
}

struct rc_png_error {
    char *message;
    size_t capacity;
};

static void rc_png_error_fn(png_structp png, png_const_charp text) {
    struct rc_png_error *error = (struct rc_png_error *)png_get_error_ptr(png);
    if (error->message && error->capacity > 0) {
        strncpy(error->message, text, error->capacity - 1);
        error->message[error->capacity - 1] = 0;
    }
    png_longjmp(png, 1);
}

static void rc_png_warning_fn(png_structp png, png_const_charp text) { (void)png; (void)text; }

int rc_png_decode_rgb(const uint8_t *data, size_t size,
                      uint8_t **pixels, int *width, int *height,
                      char *message, size_t message_capacity) {
    *pixels = NULL;
    if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        if (message && message_capacity > 0) {
            strncpy(message, "not a PNG file (bad signature)", message_capacity - 1);
            message[message_capacity - 1] = 0;
        }
        return 1;
    }
    struct rc_png_error error = { message, message_capacity };
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, rc_png_error_fn, rc_png_warning_fn);
    if (!png) return 2;
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); return 2; }
    uint8_t *volatile output = NULL;
    png_bytep *volatile rows = NULL;
    struct rc_png_source source = { data, size, 0 };
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(output);
        free(rows);
        return 1;
    }
    png_set_read_fn(png, &source, rc_png_read);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if ((uint64_t)w * (uint64_t)h > (1ull << 28)) png_error(png, "image too large");
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) png_error(png, "unexpected row layout after conversion to RGB");
    output = malloc((size_t)w * (size_t)h * 3);
    rows = malloc(sizeof(png_bytep) * h);
    if (!output || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = output + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    *pixels = output;
    *width = (int)w;
    *height = (int)h;
    return 0;
}

/* ---------------------------------------------------------------- FMA peak probe */

#define RC_FMA12(T, FMA)                                                               \
    a0 = FMA(a0, b, c); a1 = FMA(a1, b, c); a2 = FMA(a2, b, c); a3 = FMA(a3, b, c);    \
    a4 = FMA(a4, b, c); a5 = FMA(a5, b, c); a6 = FMA(a6, b, c); a7 = FMA(a7, b, c);    \
    a8 = FMA(a8, b, c); a9 = FMA(a9, b, c); a10 = FMA(a10, b, c); a11 = FMA(a11, b, c);\
    __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5),  \
                     "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));

static double rc_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

__attribute__((target("avx512f")))
static double rc_peak_avx512(long iterations, float *sink) {
    __m512 a0 = _mm512_set1_ps(0.1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    double start = rc_seconds();
    for (long k = 0; k < iterations; k++) { RC_FMA12(__m512, _mm512_fmadd_ps) }
    double elapsed = rc_seconds() - start;
    __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                               _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    sum = _mm512_add_ps(sum, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    *sink = _mm512_reduce_add_ps(sum);
    return (double)iterations * 12.0 * 32.0 / elapsed / 1e9;
}

__attribute__((target("avx2,fma")))
static double rc_peak_avx2(long iterations, float *sink) {
    __m256 a0 = _mm256_set1_ps(0.1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    double start = rc_seconds();
    for (long k = 0; k < iterations; k++) { RC_FMA12(__m256, _mm256_fmadd_ps) }
    double elapsed = rc_seconds() - start;
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(a0, a11), _mm256_add_ps(a5, a6)));
    *sink = lanes[0] + a1[0] + a2[0] + a3[0] + a4[0] + a7[0] + a8[0] + a9[0] + a10[0];
    return (double)iterations * 12.0 * 16.0 / elapsed / 1e9;
}

double rc_peak_fma_gflops(long iterations) {
    float sink = 0;
    double avx2 = 0, avx512 = 0;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) avx2 = rc_peak_avx2(iterations, &sink);
    if (__builtin_cpu_supports("avx512f")) avx512 = rc_peak_avx512(iterations, &sink);
    volatile float keep = sink;
    (void)keep;
    return avx512 > avx2 ? avx512 : avx2;
}

void rc_line_buffer_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }
