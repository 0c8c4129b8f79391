#include "CHDF5Shim.h"

#include <stdlib.h>
#include <string.h>
#include <hdf5/serial/hdf5.h>

void rc_h5_free(void *pointer) { free(pointer); }

int64_t rc_h5_open(const char *path) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (H5Fis_hdf5(path) <= 0) return -1;
    return (int64_t)H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
}

void rc_h5_close(int64_t file) { H5Fclose((hid_t)file); }

int64_t rc_h5_string_list_attribute(int64_t file, const char *object_path, const char *attribute, char **buffer) {
    *buffer = NULL;
    if (H5Aexists_by_name((hid_t)file, object_path, attribute, H5P_DEFAULT) <= 0) return -1;
    hid_t attr = H5Aopen_by_name((hid_t)file, object_path, attribute, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0) return -1;
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    hssize_t count = H5Sget_simple_extent_npoints(space);
    int64_t result = -1;
    if (count == 0) {
        result = 0; /* Keras writes an empty float64 array for layers without weights */
    } else if (H5Tget_class(type) == H5T_STRING && count > 0) {
        if (H5Tis_variable_str(type) > 0) {
            char **strings = calloc((size_t)count, sizeof(char *));
            hid_t memtype = H5Tcopy(H5T_C_S1);
            H5Tset_size(memtype, H5T_VARIABLE);
            if (strings && H5Aread(attr, memtype, strings) >= 0) {
                size_t total = 0;
                for (hssize_t i = 0; i < count; i++) total += (strings[i] ? strlen(strings[i]) : 0) + 1;
                char *out = malloc(total), *cursor = out;
                for (hssize_t i = 0; out && i < count; i++) {
                    size_t length = strings[i] ? strlen(strings[i]) : 0;
                    memcpy(cursor, strings[i] ? strings[i] : "", length);
                    cursor[length] = 0;
                    cursor += length + 1;
                }
                H5Dvlen_reclaim(memtype, space, H5P_DEFAULT, strings);
                if (out) { *buffer = out; result = (int64_t)count; }
            }
            H5Tclose(memtype);
            free(strings);
        } else {
            size_t width = H5Tget_size(type);
            char *raw = calloc((size_t)count, width);
            char *out = malloc((size_t)count * (width + 1));
            if (raw && out && H5Aread(attr, type, raw) >= 0) {
                char *cursor = out;
                for (hssize_t i = 0; i < count; i++) {
                    size_t length = strnlen(raw + (size_t)i * width, width);
                    memcpy(cursor, raw + (size_t)i * width, length);
                    cursor[length] = 0;
                    cursor += length + 1;
                }
                *buffer = out;
                out = NULL;
                result = (int64_t)count;
            }
            free(raw);
            free(out);
        }
    }
    H5Sclose(space);
    H5Tclose(type);
    H5Aclose(attr);
    return result;
}

int64_t rc_h5_group_members(int64_t file, const char *path, char **buffer) {
    *buffer = NULL;
    if (strcmp(path, "/") != 0 && H5Lexists((hid_t)file, path, H5P_DEFAULT) <= 0) return -1;
    hid_t group = H5Gopen2((hid_t)file, path, H5P_DEFAULT); /* fails unless `path` is a group */
    if (group < 0) return -1;
    H5G_info_t info;
    int64_t result = -1;
    if (H5Gget_info(group, &info) >= 0) {
        size_t total = 1;
        int ok = 1;
        for (hsize_t i = 0; ok && i < info.nlinks; i++) {
            ssize_t length = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
            if (length < 0) ok = 0; else total += (size_t)length + 1;
        }
        char *out = ok ? malloc(total) : NULL, *cursor = out;
        for (hsize_t i = 0; out && i < info.nlinks; i++) {
            ssize_t length = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, cursor, (size_t)(out + total - cursor), H5P_DEFAULT);
            if (length < 0) { free(out); out = NULL; } else cursor += length + 1;
        }
        if (out) { *buffer = out; result = (int64_t)info.nlinks; }
    }
    H5Gclose(group);
    return result;
}

/* Whether `dataset`'s values are stored in `file` itself: an external link lands in another
 * file (another file number), external storage and virtual datasets read other files. */
static int dataset_is_local(hid_t file, hid_t dataset) {
    H5O_info_t root, object;
    if (H5Oget_info2(file, &root, H5O_INFO_BASIC) < 0 || H5Oget_info2(dataset, &object, H5O_INFO_BASIC) < 0) return 0;
    if (root.fileno != object.fileno) return 0;
    hid_t creation = H5Dget_create_plist(dataset);
    if (creation < 0) return 0;
    int local = H5Pget_external_count(creation) == 0 && H5Pget_layout(creation) != H5D_VIRTUAL;
    H5Pclose(creation);
    return local;
}

int rc_h5_dataset_shape(int64_t file, const char *path, int64_t *dims, int capacity) {
    if (H5Lexists((hid_t)file, path, H5P_DEFAULT) <= 0) return -1;
    hid_t dataset = H5Dopen2((hid_t)file, path, H5P_DEFAULT);
    if (dataset < 0) return -1;
    if (!dataset_is_local((hid_t)file, dataset)) { H5Dclose(dataset); return -2; }
    hid_t space = H5Dget_space(dataset);
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank >= 0) {
        hsize_t extents[H5S_MAX_RANK];
        H5Sget_simple_extent_dims(space, extents, NULL);
        for (int i = 0; i < rank && i < capacity; i++) dims[i] = (int64_t)extents[i];
    }
    H5Sclose(space);
    H5Dclose(dataset);
    return rank;
}

int rc_h5_read_floats(int64_t file, const char *path, float *out, int64_t count) {
    hid_t dataset = H5Dopen2((hid_t)file, path, H5P_DEFAULT);
    if (dataset < 0) return -1;
    hid_t space = H5Dget_space(dataset);
    int status = -1;
    hid_t type = H5Dget_type(dataset);
    H5T_class_t kind = H5Tget_class(type);
    if ((kind == H5T_FLOAT || kind == H5T_INTEGER) && H5Sget_simple_extent_npoints(space) == count) {
        status = H5Dread(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0 ? 0 : -1;
    }
    H5Tclose(type);
    H5Sclose(space);
    H5Dclose(dataset);
    return status;
}

/* ---- writing (Keras save_weights layout) ---- */

int64_t rc_h5_create(const char *path) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return (int64_t)H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
}

int rc_h5_create_group(int64_t file, const char *path) {
    hid_t group = H5Gcreate2((hid_t)file, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (group < 0) return -1;
    H5Gclose(group);
    return 0;
}

int rc_h5_ensure_group(int64_t file, const char *path) {
    if (H5Lexists((hid_t)file, path, H5P_DEFAULT) > 0) return 0;
    return rc_h5_create_group(file, path);
}

int rc_h5_write_string_list_attribute(int64_t file, const char *object_path, const char *attribute,
                                      const char **strings, int64_t count) {
    /* Fixed-length strings, as h5py writes Keras's name lists (an empty list is an empty float64 array). */
    size_t longest = 1;
    for (int64_t i = 0; i < count; i++) { size_t n = strlen(strings[i]); if (n > longest) longest = n; }
    hid_t object = H5Oopen((hid_t)file, object_path, H5P_DEFAULT);
    if (object < 0) return -1;
    hsize_t dims[1] = {(hsize_t)count};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t type = count > 0 ? H5Tcopy(H5T_C_S1) : H5Tcopy(H5T_NATIVE_DOUBLE);
    if (count > 0) { H5Tset_size(type, longest); H5Tset_strpad(type, H5T_STR_NULLPAD); }
    int status = -1;
    hid_t attr = H5Acreate2(object, attribute, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr >= 0) {
        char *packed = calloc((size_t)(count > 0 ? count : 1), longest);
        for (int64_t i = 0; packed && i < count; i++) memcpy(packed + i * longest, strings[i], strlen(strings[i]));
        status = (packed && H5Awrite(attr, type, packed) >= 0) ? 0 : -1;
        free(packed);
        H5Aclose(attr);
    }
    H5Tclose(type);
    H5Sclose(space);
    H5Oclose(object);
    return status;
}

int rc_h5_write_floats(int64_t file, const char *path, const int64_t *dims, int rank, const float *data) {
    hsize_t shape[16];
    if (rank < 0 || rank > 16) return -1;
    for (int i = 0; i < rank; i++) shape[i] = (hsize_t)dims[i];
    hid_t space = H5Screate_simple(rank, shape, NULL);
    hid_t dataset = H5Dcreate2((hid_t)file, path, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int status = -1;
    if (dataset >= 0) {
        status = H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0 ? 0 : -1;
        H5Dclose(dataset);
    }
    H5Sclose(space);
    return status;
}
