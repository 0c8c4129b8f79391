#ifndef ROBUSTCTL_CSHIMS_H
#define ROBUSTCTL_CSHIMS_H

#include <stddef.h>
#include <stdint.h>

/// Sets the OpenMP thread count used by oneDNN (and the OpenMP build of OpenBLAS)
/// for parallel regions started from the calling thread and all threads created later.
void rc_set_omp_threads(int threads);
int rc_get_omp_max_threads(void);

/// Decodes a JPEG held in memory to 8-bit interleaved RGB.
/// libjpeg reports errors by longjmp, which Swift cannot catch; this shim turns
/// them into a return code. On success returns 0 and `*pixels` is a malloc'ed buffer
/// of width*height*3 bytes that the caller frees with `rc_free`. On failure returns
/// non-zero and writes a message into `message` (NUL-terminated, at most `message_capacity`).
int rc_jpeg_decode_rgb(const uint8_t *data, size_t size,
                       uint8_t **pixels, int *width, int *height,
                       char *message, size_t message_capacity);

/// Decodes a PNG held in memory (any bit depth, gray, RGB, RGBA, palette, interlaced)
/// to 8-bit interleaved RGB: 16-bit samples keep their high byte, alpha is dropped,
/// gray is replicated (OpenCV's IMREAD_COLOR conventions). Same contract as
/// `rc_jpeg_decode_rgb`; libpng's longjmp errors become a return code.
int rc_png_decode_rgb(const uint8_t *data, size_t size,
                      uint8_t **pixels, int *width, int *height,
                      char *message, size_t message_capacity);

void rc_free(void *pointer);

/// Runs `body(context, begin, end)` over `count` items split into `chunks` contiguous
/// ranges on OpenMP's thread pool (`threads` threads) — the pool oneDNN and the OpenMP
/// build of OpenBLAS use, so robustctl's own loops never compete with them for cores.
void rc_parallel_for(long count, long chunks, int threads, void *context,
                     void (*body)(void *context, long begin, long end));

/// Measures this core's float32 FMA throughput in GFLOP/s with a register-resident
/// loop of independent 512-bit (or, without AVX-512, 256-bit) fused multiply-adds:
/// the peak against which kernel efficiency is judged. Runs about `iterations` × 12 FMAs.
double rc_peak_fma_gflops(long iterations);

#endif
