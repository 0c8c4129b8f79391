"""Rewrites a Keras HDF5 weight file with smaller symbol-table B-tree nodes.

Keras (through h5py) writes old-style HDF5 groups — superblock version 0, symbol tables,
version-1 B-trees — with HDF5's default node sizes (internal K 16, leaf K 4), which spend
about 1 KB per group: two thirds of a reduced fixture network's file. The copy keeps the
same old-style format, groups, datasets, attribute types and values (what the official
Keras Applications downloads look like to a reader), with K = 2 / 1, and is about 30 %
smaller. Used by make_model_fixtures.py; run directly to compact existing files:

    python3 Tools/reference/hdf5_compact.py FILE.h5 ...
"""
import ctypes
import glob
import os
import sys

import h5py
import numpy as np


def _hdf5_library():
    # h5py's own libhdf5 (the wheel bundles one): H5Pset_sym_k is not in h5py's API.
    candidates = [path for path in glob.glob(os.path.join(os.path.dirname(h5py.__file__), "..", "h5py.libs", "libhdf5-*.so*"))
                  if "hl" not in os.path.basename(path)]
    library = ctypes.CDLL(candidates[0]) if candidates else ctypes.CDLL(None)
    library.H5Pset_sym_k.argtypes = [ctypes.c_int64, ctypes.c_uint, ctypes.c_uint]
    return library


def compact(path, internal_k=2, leaf_k=1):
    """Rewrites `path` in place; raises if the copy differs from the original."""
    temporary = path + ".compact"
    creation = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    if _hdf5_library().H5Pset_sym_k(creation.id, internal_k, leaf_k) < 0:
        raise RuntimeError("H5Pset_sym_k failed")
    with h5py.File(path, "r") as source, h5py.File(h5py.h5f.create(temporary.encode(), h5py.h5f.ACC_TRUNC, fcpl=creation)) as target:
        for name, value in source.attrs.items():
            target.attrs.create(name, value, dtype=source.attrs.get_id(name).dtype)
        for name in source:
            source.copy(source[name], target, name=name)
    with h5py.File(path, "r") as source, h5py.File(temporary, "r") as copy:
        def same(a, b):
            assert set(a.attrs) == set(b.attrs), a.name
            for key in a.attrs:
                assert a.attrs.get_id(key).dtype == b.attrs.get_id(key).dtype and np.array_equal(a.attrs[key], b.attrs[key]), (a.name, key)
            if isinstance(a, h5py.Dataset):
                assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a[()], b[()]), a.name
            else:
                assert list(a) == list(b), a.name
                for child in a:
                    same(a[child], b[child])
        same(source, copy)
    os.replace(temporary, path)


if __name__ == "__main__":
    for file in sys.argv[1:]:
        before = os.path.getsize(file)
        compact(file)
        print(f"{file}: {before} -> {os.path.getsize(file)} bytes")
