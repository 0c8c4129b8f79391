#include "CShims.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <png.h>
#include <jpeglib.h>
#define JPEG_INTERNALS
#include <jerror.h>

extern void omp_set_num_threads(int);
extern int omp_get_max_threads(void);

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
