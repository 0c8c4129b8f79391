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

/// Makes standard output line-buffered (progress lines reach pipes and log files as they happen).
void rc_line_buffer_stdout(void);

/// Runs `body(context, begin, end)` over `count` items split into `chunks` contiguous
/// ranges on OpenMP's thread pool (`threads` threads) — the pool oneDNN and the OpenMP
/// build of OpenBLAS use, so robustctl's own loops never compete with them for cores.
void rc_parallel_for(long count, long chunks, int threads, void *context,
                     void (*body)(void *context, long begin, long end));

/// Runs `body(context, i, i + 1)` for each of `count` items on OpenMP's pool: each thread
/// starts on its contiguous share, in order, and then takes the items left in the others'.
void rc_parallel_for_balanced(long count, int threads, void *context,
                              void (*body)(void *context, long begin, long end));

/// Measures this core's float32 FMA throughput in GFLOP/s with a register-resident
/// loop of independent 512-bit (or, without AVX-512, 256-bit) fused multiply-adds:
/// the peak against which kernel efficiency is judged. Runs about `iterations` × 12 FMAs.
double rc_peak_fma_gflops(long iterations);

// Int8 engine epilogues (quantized.c). Activations are uint8, channels-last; `pixels`
// rows of `channels` values. Each kernel clamps to [lo, hi] (the fused activation's range).

/// TFLite requantization per output channel: (acc + bias) × multiplier·2^(left−31)
/// rounded as gemmlowp does (doubling high multiply, then rounding right shift).
void rc_requantize_tflite(const int32_t *accumulators, long pixels, long channels, const int32_t *bias,
                          const int32_t *multiplier, const int32_t *left_shift, const int32_t *right_shift,
                          int32_t zero_point, int32_t lo, int32_t hi, uint8_t *output);
/// TFLite's MultiplyByQuantizedMultiplier for one value.
int32_t rc_tflite_multiply(int32_t x, int32_t multiplier, int32_t left_shift, int32_t right_shift);
/// QNNPACK fp32 requantization per output channel: nearest-even of float(acc + bias) × scale.
void rc_requantize_float(const int32_t *accumulators, long pixels, long channels, const int32_t *bias,
                         const float *scale, int32_t zero_point, int32_t lo, int32_t hi, uint8_t *output);
/// TFLite int8 ADD, on uint8 storage (zero points shifted by 128 for int8 tensors).
void rc_add_tflite(const uint8_t *a, const uint8_t *b, long count, int32_t a_zero_point, int32_t b_zero_point,
                   int32_t left_shift, int32_t a_multiplier, int32_t a_right_shift, int32_t b_multiplier,
                   int32_t b_right_shift, int32_t out_multiplier, int32_t out_right_shift,
                   int32_t out_zero_point, int32_t lo, int32_t hi, uint8_t *output);
/// Tests only: the rescaling of one TFLite add input, tflite_multiply((q − zp)·2^L, m, 0, r),
/// by the add kernel's 32-bit path where it applies.
void rc_tflite_rescale_input(const uint8_t *q, long count, int32_t zero_point, int32_t left_shift, int32_t multiplier,
                             int32_t right_shift, int32_t *output);
/// QNNPACK q8vadd.
void rc_add_qnnpack(const uint8_t *a, const uint8_t *b, long count, int32_t zero_point_product,
                    uint32_t a_multiplier, uint32_t b_multiplier, int32_t shift, int32_t remainder_mask,
                    int32_t remainder_threshold, int32_t out_zero_point, int32_t lo, int32_t hi, uint8_t *output);

/// Average pooling of uint8 channels-last maps, output rows first_row ..< last_row of
/// batch × output_height, with the TFLite (scheme 0) or QNNPACK (scheme 1) rounding; window
/// spans [start, end) and divisor shares per output row and column.
/// A network's float preprocessing folded into its input quantization: output channel c is
/// x·scale[c] + shift[c] of input plane source[c].
typedef struct { const int32_t *source; const float *scale, *shift; } rc_preprocessing;
/// Float NCHW planes of one image → uint8 channels-last, pixels first_pixel ..< last_pixel:
/// the preprocessing (NULL: none) first, then scheme 0 (TFLite) round(x / scale) half away
/// from zero, scheme 1 (PyTorch) nearest-even of x · scale (pass 1 / s), plus the zero
/// point, saturated to [0, 255].
void rc_quantize_planes(const float *planes, long channels, long plane, long first_pixel, long last_pixel,
                        const rc_preprocessing *preprocessing, int scheme, float scale, float zero_point, uint8_t *output);
/// A fully connected layer on one input vector, y = W·x + bias (bias may be NULL), for the
/// rows of work items [first_item, last_item) of rc_linear_f32_items(outputs) (16 rows each).
long rc_linear_f32_items(long outputs);
void rc_linear_f32_run(const float *x, long inputs, const float *weights, const float *bias, long outputs, float *output,
                       long first_item, long last_item);
/// Float NCHW planes of one image → channels-last, pixels first_pixel ..< last_pixel, with
/// the preprocessing (NULL: none) applied on the way.
void rc_channels_last_f32(const float *planes, long channels, long plane, long first_pixel, long last_pixel,
                          const rc_preprocessing *preprocessing, float *output);
/// A requantization of int32 accumulators to uint8, per output channel c:
/// acc + bias[c], then scheme 0 (TFLite: multiplier, left_shift, right_shift per channel,
/// none INT32_MIN) or scheme 1 (QNNPACK float: scale per channel), plus the zero point,
/// clamped to [lo, hi]. `prepared`: NULL, or scheme 0's per-channel constants from
/// rc_requantization_prepare for these multipliers, shifts, zero point and lo (the vector
/// kernels then load them instead of deriving them for every tile). `bounded`: scheme 1,
/// nonzero when the caller has shown |acc + bias[c]| · scale[c] < 2^30 for every reachable
/// accumulator (the vector kernels then skip a limit that only guards the float → int32
/// conversion against overflow).
typedef struct {
    int scheme;
    const int32_t *bias, *multiplier, *left_shift, *right_shift;
    const float *scale;
    int32_t zero_point, lo, hi;
    const int64_t *prepared;
    int bounded;
} rc_requantization;
/// Elements of rc_requantization_prepare's table for n channels.
long rc_requantization_prepared_count(long n);
/// Fills `prepared` (rc_requantization_prepared_count(n) elements) for a scheme-0
/// requantization of n channels (its bias and `prepared` are not read). `accumulator_bound`:
/// the largest |acc + bias| the layer can reach, or −1 if unknown (below 2^30, the GEMM may
/// requantize in 32-bit lanes where the sign test runs). Complexity O(n).
void rc_requantization_prepare(const rc_requantization *q, long n, long accumulator_bound, int64_t *prepared);

/// 1×1 int8 convolution (any stride) with the requantization fused into its GEMM
/// (gemm_u8.c): output[r, x, c] = requantize(Σ_i input[base(r, x) + offset(i)] · w[c, i])
/// with base(r, x) = (r / rows_per_image)·image_stride + (r % rows_per_image)·row_stride
/// + x·column_stride, for uint8 channels-last input, `k` input channels (a multiple of 4)
/// and int8 weights [n][k] packed by rc_gemm_u8_pack; the requantization's bias already
/// holds bias − input zero point · Σ w[c]. offset(i) = i, or with `segments` > 1 the k
/// values are that many equal runs `segment_stride` bytes apart (offset(i) = (i / run)·
/// segment_stride + i % run, run = k / segments, a multiple of 4): a k×k convolution's
/// window rows read in place from a padded image. Output rows × columns × n, channels-last.
typedef struct {
    const uint8_t *input;
    long k;
    long rows, columns, rows_per_image, image_stride, row_stride, column_stride;
    long n;
    const int8_t *packed;
    rc_requantization requantization;
    uint8_t *output;
    /// Output columns per work item; items are (48-channel block, row, column block) triples.
    long column_block;
    /// Item order: channel blocks outermost (each weight panel read once per thread, for
    /// weights too large to stay in cache) or pixels outermost (equal work per chunk of items).
    int channel_major;
    /// 0 or 1: the k inputs are contiguous; more: k / segments contiguous bytes per run.
    long segments, segment_stride;
} rc_gemm_u8_job;
/// Bytes of packed weights for n output channels of k inputs.
long rc_gemm_u8_packed_size(long n, long k);
/// Packs [n][k] int8 weights: blocks of 16 channels, groups of 4 inputs, zero padded.
void rc_gemm_u8_pack(const int8_t *weights, long n, long k, int8_t *packed);
/// Work items of a job (split them between threads freely).
long rc_gemm_u8_items(const rc_gemm_u8_job *job);
void rc_gemm_u8_run(const rc_gemm_u8_job *job, long first_item, long last_item);

/// Float32 1×1 convolution (any stride) as a GEMM with bias, residual add and clamp fused
/// (conv_f32.c): output[r, x, c] = clamp(bias[c] + Σ_i input[base(r, x) + i] · w[c, i]
/// (+ residual[r, x, c]), lower, upper), addressed as rc_gemm_u8_job's input, weights [n][k]
/// packed by rc_conv1x1_f32_pack. Output (and residual) rows × columns × n, channels-last.
typedef struct {
    const float *input;
    long k;
    long rows, columns, rows_per_image, image_stride, row_stride, column_stride;
    long n;
    const float *packed, *bias;
    /// NULL, or a value of the output's shape added before the clamp.
    const float *residual;
    float lower, upper;
    float *output;
    /// Output columns per work item; items are (row, column block, 48-channel block) triples.
    long column_block;
} rc_conv1x1_f32_job;
/// Floats of packed weights for n output channels of k inputs.
long rc_conv1x1_f32_packed_size(long n, long k);
/// Packs [n][k] float weights: blocks of 16 channels, input-major within a block, zero padded.
void rc_conv1x1_f32_pack(const float *weights, long n, long k, float *packed);
/// Work items of a job (split them between threads freely).
long rc_conv1x1_f32_items(const rc_conv1x1_f32_job *job);
void rc_conv1x1_f32_run(const rc_conv1x1_f32_job *job, long first_item, long last_item);

/// Float32 depthwise convolution with bias and clamp fused (conv_f32.c):
/// output[b, y, x, c] = clamp(bias[c] + Σ_taps input[b, iy, ix, c] · w[tap, c], lower, upper)
/// over the taps inside the image (zero padding), channels-last input and output, weights
/// [kernel_h · kernel_w][channels].
typedef struct {
    const float *input;
    long batch, height, width, channels;
    long kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
    long output_height, output_width;
    const float *weights, *bias;
    float lower, upper;
    float *output;
} rc_depthwise_f32_job;
/// Work items of a job: (output row, 64-channel block) pairs; split them between threads freely.
long rc_depthwise_f32_items(const rc_depthwise_f32_job *job);
void rc_depthwise_f32_run(const rc_depthwise_f32_job *job, long first_item, long last_item);

/// Float32 k×k convolution of an input with few channels (a first layer), direct, with bias
/// and clamp fused (conv_f32.c): output[b, y, x, o] = clamp(Σ_taps input[b, iy, ix, c]
/// · w[o, c, ky, kx] + bias[o], lower, upper) over the taps inside the image (zero padding),
/// summed in (ky, kx, c) order, the bias last; channels-last input and output, weights packed
/// by rc_conv_direct_f32_pack. Meant for few input channels: every tap is one broadcast.
typedef struct {
    const float *input;
    long batch, height, width, channels;
    long kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
    long output_height, output_width;
    long n;
    const float *packed, *bias;
    float lower, upper;
    float *output;
} rc_conv_direct_f32_job;
/// Floats of packed weights for n output channels of `taps` = channels · kernel_h · kernel_w.
long rc_conv_direct_f32_packed_size(long n, long taps);
/// Packs OIHW float weights [n][channels][kernel_h][kernel_w]: blocks of 16 output channels,
/// tap-major ((ky, kx, c) order) within a block, zero padded.
void rc_conv_direct_f32_pack(const float *weights, long n, long channels, long kernel_h, long kernel_w, float *packed);
/// Work items of a job: (output row, 64-channel block) pairs; split them between threads freely.
long rc_conv_direct_f32_items(const rc_conv_direct_f32_job *job);
void rc_conv_direct_f32_run(const rc_conv_direct_f32_job *job, long first_item, long last_item);

/// A stride-1 1×1 convolution feeding a 3×3 depthwise convolution, fused (conv_f32.c): the
/// expanded map exists only as three rows per work item in `scratch`. With `expands`,
/// `expand` describes the 1×1 layer on the whole input (its output, residual, rows and
/// columns fields are unused) and `depthwise` the 3×3 layer (its input field is unused;
/// height, width and channels are the expanded map's); without, the depthwise layer reads
/// its input field. With `projects`, a stride-1 1×1 convolution `project` reads the
/// depthwise output rows from `scratch` too, a chunk of rows at a time (its input, rows and
/// columns fields are unused; its output and residual, when set, are the whole map's,
/// channels-last) and the depthwise output field is unused: a MobileNetV2 inverted residual
/// block in one kernel. Results equal the kernels run one after the other, bit for bit.
typedef struct {
    int expands;
    rc_conv1x1_f32_job expand;
    /// NULL, or (with `expands`) the k×k convolution whose output rows the depthwise layer
    /// reads instead of `expand`'s (a first layer: MobileNetV2's stem).
    const rc_conv_direct_f32_job *direct;
    rc_depthwise_f32_job depthwise;
    int projects;
    rc_conv1x1_f32_job project;
    /// Output-row bands per image: work items are (image, band) pairs.
    long bands;
    /// rc_expand_depthwise_f32_scratch_size floats.
    float *scratch;
} rc_expand_depthwise_f32_job;
long rc_expand_depthwise_f32_items(const rc_expand_depthwise_f32_job *job);
long rc_expand_depthwise_f32_scratch_size(const rc_expand_depthwise_f32_job *job);
void rc_expand_depthwise_f32_run(const rc_expand_depthwise_f32_job *job, long first_item, long last_item);

/// Depthwise int8 convolution with the requantization fused (depthwise_u8.c):
/// output[b, y, x, c] = requantize(Σ_taps (input[b, iy, ix, c] − input_zero_point) · w[tap, c])
/// over the taps inside the image (padding counts as the zero point), uint8 channels-last
/// input and output, int32 weights [kernel_h · kernel_w][channels].
typedef struct {
    const uint8_t *input;
    long batch, height, width, channels;
    long output_height, output_width, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
    const int32_t *weights;
    int32_t input_zero_point;
    /// 3×3 kernels with VNNI only (else unused): the weights packed by rc_depthwise_u8_pack3x3
    /// and −input_zero_point · Σ_taps w per channel.
    const int8_t *packed3x3;
    const int32_t *zero_point_offset;
    rc_requantization requantization;
    uint8_t *output;
} rc_depthwise_u8_job;
/// Bytes of 3×3 weights packed for the VNNI kernel.
long rc_depthwise_u8_packed3x3_size(long channels);
/// Packs int32 [9][channels] weights (values within int8) for the VNNI kernel.
void rc_depthwise_u8_pack3x3(const int32_t *weights, long channels, int8_t *packed);
/// Work items of a job: (output row, 64-channel block) pairs; split them between threads freely.
long rc_depthwise_u8_items(const rc_depthwise_u8_job *job);
void rc_depthwise_u8_run(const rc_depthwise_u8_job *job, long first_item, long last_item);

/// A depthwise int8 convolution and the stride-1 1×1 convolution reading its output, fused
/// (depthwise_u8.c): each chunk of depthwise output rows (several when rows are narrow) goes
/// through `project` (an rc_gemm_u8_job whose input, rows, columns, strides, column_block,
/// channel_major and segments fields are unused; its output is the whole map's) from
/// `scratch` while in cache; `depthwise`'s output field is unused. Results equal the two
/// kernels run one after the other, byte for byte.
typedef struct {
    rc_depthwise_u8_job depthwise;
    rc_gemm_u8_job project;
    /// Output-row bands per image: work items are (image, band) pairs.
    long bands;
    /// rc_depthwise_project_u8_scratch_size bytes.
    uint8_t *scratch;
} rc_depthwise_project_u8_job;
long rc_depthwise_project_u8_items(const rc_depthwise_project_u8_job *job);
long rc_depthwise_project_u8_scratch_size(const rc_depthwise_project_u8_job *job);
void rc_depthwise_project_u8_run(const rc_depthwise_project_u8_job *job, long first_item, long last_item);

/// Concatenation of uint8 channels-last maps along channels, pixels first_pixel ..< last_pixel
/// of `total` output channels: input i has channels[i] channels, and tables[i] (NULL: a plain
/// copy) maps its values to the output's quantization (256 entries).
void rc_concat_u8(const uint8_t *const *sources, const long *channels, const uint8_t *const *tables, long inputs,
                  long total, long first_pixel, long last_pixel, uint8_t *output);
/// Max pooling of a uint8 channels-last map, output rows first_row ..< last_row of
/// batch × output_height: each output the largest of its window's cells inside the image
/// (0 when none), padded cells skipped.
void rc_max_pool_u8(const uint8_t *input, long height, long width, long channels, long kernel_h, long kernel_w,
                    long stride_h, long stride_w, long pad_top, long pad_left, long output_height, long output_width,
                    long first_row, long last_row, uint8_t *output);
/// One output of rc_average_pool_u8: a window's sum of `valid` uint8 cells and its divisor.
int32_t rc_average_pool_value(int32_t sum, int32_t valid, int32_t divisor, int scheme, int32_t zero_point, float scale);
void rc_average_pool_u8(const uint8_t *input, long height, long width, long channels, uint8_t *output,
                        long output_height, long output_width, long first_row, long last_row,
                        const int32_t *row_start, const int32_t *row_end, const int32_t *row_count,
                        const int32_t *col_start, const int32_t *col_end, const int32_t *col_count,
                        int scheme, int32_t zero_point, float scale);

// The Boundary attack's proposal for one image of d values (Foolbox's draw_proposals):
// in: the original x0, the current adversarial x, eta = N(0, 1) draws; out: eta = the
// spherical candidate, direction = the candidate, |x0 - x| and |x0 - candidate|.
void rc_boundary_propose(const float *x0, const float *x, float *eta, float *direction, long d,
                         float spherical_step, float source_step, float *source_norm, float *distance);

// Standard normal samples first ..< first + n of the counter-based stream `key` (ziggurat
// on SplitMix64), into out[0 ..< n]; the same bits with and without AVX-512.
void rc_fill_normal(uint64_t key, uint64_t first, float *out, long n);

// Whether the AVX-512 kernels (F, BW, DQ, VL) run: the CPU has them and no test asked for
// the portable C. Every such kernel has a portable twin giving the same bits.
int rc_use_avx512(void);
/// The same, with AVX-512 VNNI (the int8 dot-product kernels).
int rc_use_vnni(void);
/// The same, with AVX-512 VBMI (byte permutes: the int8 concat's table lookups).
int rc_use_vbmi(void);
/// Tests only: 1 runs the portable C kernels even where AVX-512 is available, 0 restores
/// the run-time choice.
void rc_force_generic(int generic);
#endif
