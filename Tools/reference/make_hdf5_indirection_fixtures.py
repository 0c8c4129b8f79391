"""Writes Keras weight files whose first dataset keeps its values outside the file.

HDF5 lets a dataset live elsewhere: an external link to another HDF5 file, external raw
storage (the values in a plain file beside it) or a virtual dataset drawing on other files.
A weight file is data that must be complete in itself, so robustctl refuses all three; the
`local.h5` control has the same layout with the values inside the file (its read gets past
the first dataset and reports the other layers as missing). `huge.h5` declares a kernel of 2^40
elements stored in no space, which must be named without allocating it.

Each file names one layer, `Conv1`, as the legacy `save_weights` layout does, with the
(3, 3, 3, 8) kernel of the MobileNetV2 fixture at width 0.1. Run by hand (needs h5py):

    python3 Tools/reference/make_hdf5_indirection_fixtures.py
"""
import os

import h5py
import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "ModelZooTests", "Fixtures", "hdf5_indirection")
DATASET = "Conv1/kernel:0"
SHAPE = (3, 3, 3, 8)


def keras_file(name, make_dataset):
    with h5py.File(os.path.join(OUT, name), "w") as f:
        f.attrs["layer_names"] = np.array([b"Conv1"])
        group = f.create_group("Conv1")
        group.attrs["weight_names"] = np.array([DATASET.encode()])
        make_dataset(f, group.create_group("Conv1"))


def main():
    os.makedirs(OUT, exist_ok=True)
    values = np.random.default_rng(0).standard_normal(SHAPE).astype("<f4")
    with h5py.File(os.path.join(OUT, "target.h5"), "w") as f:
        f["kernel"] = values
    values.tofile(os.path.join(OUT, "kernel.raw"))
    keras_file("local.h5", lambda f, g: g.create_dataset("kernel:0", data=values))
    # Relative names: HDF5 looks for them beside the file that refers to them.
    keras_file("external_link.h5", lambda f, g: g.__setitem__("kernel:0", h5py.ExternalLink("target.h5", "/kernel")))
    keras_file("external_storage.h5",
               lambda f, g: g.create_dataset("kernel:0", shape=SHAPE, dtype="<f4", external=[("kernel.raw", 0, values.nbytes)]))

    def virtual(f, g):
        layout = h5py.VirtualLayout(shape=SHAPE, dtype="<f4")
        layout[...] = h5py.VirtualSource("target.h5", "kernel", shape=SHAPE)
        g.create_virtual_dataset("kernel:0", layout)
    keras_file("virtual.h5", virtual)
    # A kernel of 2^40 elements that takes no space: chunked, no chunk ever written.
    keras_file("huge.h5", lambda f, g: g.create_dataset("kernel:0", shape=(3, 3, 3, 1 << 40), dtype="<f4", chunks=(3, 3, 3, 8)))


if __name__ == "__main__":
    main()
