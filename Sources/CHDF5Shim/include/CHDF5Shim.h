#ifndef ROBUSTCTL_CHDF5SHIM_H
#define ROBUSTCTL_CHDF5SHIM_H

#include <stddef.h>
#include <stdint.h>

/// Opens an HDF5 file read-only with HDF5's error printing silenced.
/// Returns a handle > 0, or a negative value if the file is not readable HDF5.
int64_t rc_h5_open(const char *path);
void rc_h5_close(int64_t file);

/// Reads a string-array attribute (variable- or fixed-length strings; a zero-sized
/// numeric array counts as an empty list) of the object at `object_path`.
/// On success returns the number of strings and sets `*buffer` to a malloc'ed block of
/// NUL-terminated strings one after another (free with `rc_h5_free`), or NULL if empty.
/// Returns -1 if the attribute is missing or not a string list.
int64_t rc_h5_string_list_attribute(int64_t file, const char *object_path, const char *attribute, char **buffer);

/// The names of the members of group `path` in name order, as NUL-terminated strings one after
/// another (free with `rc_h5_free`); -1 when `path` is not a group.
int64_t rc_h5_group_members(int64_t file, const char *path, char **buffer);

/// The rank of a dataset (its first `capacity` dimensions written to `dims`; the rank may be
/// larger), -1 if missing, or -2 if its data is not inside this file: reached through an
/// external link, kept in external raw files, or a virtual dataset drawing on other datasets.
int rc_h5_dataset_shape(int64_t file, const char *path, int64_t *dims, int capacity);

/// Reads a numeric dataset converted to native float32 into `out` (`count` elements).
/// Returns 0 on success.
int rc_h5_read_floats(int64_t file, const char *path, float *out, int64_t count);

void rc_h5_free(void *pointer);

/// Creates (truncates) an HDF5 file for writing; a handle > 0 or negative on failure.
int64_t rc_h5_create(const char *path);
/// Creates a group; 0 on success.
int rc_h5_create_group(int64_t file, const char *path);
/// Creates a group unless it exists; 0 on success.
int rc_h5_ensure_group(int64_t file, const char *path);
/// Writes a fixed-length string-array attribute on an object; 0 on success.
int rc_h5_write_string_list_attribute(int64_t file, const char *object_path, const char *attribute,
                                      const char **strings, int64_t count);
/// Writes a float32 dataset of the given shape; 0 on success.
int rc_h5_write_floats(int64_t file, const char *path, const int64_t *dims, int rank, const float *data);

#endif
