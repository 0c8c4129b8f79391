#include "CShims.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
