"""The Keras fixture networks saved by Keras 3 in its two other HDF5 layouts.

Run by hand from the repository root after `pip install tensorflow-cpu h5py numpy`
(TensorFlow ≥ 2.16 brings Keras 3), once `make_model_fixtures.py` has written the legacy
`<name>_keras.h5` files and the manifest:

    python3 Tools/reference/make_keras3_fixtures.py

For each network it builds the same reduced Keras Applications model with Keras 3, loads the
legacy fixture's weights into it, checks that Keras 3 then reproduces the fixture's reference
logits, and saves

- `<name>_keras.keras` with `model.save` (Keras 3's default: a zip of config.json,
  metadata.json and model.weights.h5 in Keras 3's own weights layout: /layers/<class in snake
  case, numbered in model order>/vars/0, 1, …), for MobileNetV2 (Conv2D, DepthwiseConv2D,
  four-vector BatchNorm, Dense);
- `<name>_keras.weights.h5` with `model.save_weights` (the same weights layout on its own), for
  InceptionV3 (BatchNorm without scale);
- `<name>_keras_model.h5` with `model.save` (a whole model as HDF5: the legacy layout under
  /model_weights, beside the model's configuration), for ResNet50 (Conv2D with biases).

Each HDF5 file (inside the .keras zip too, whose entries stay stored as Keras writes them) is
then compacted as the legacy files are (hdf5_compact.py). The tests load each next to the
legacy file and require the same tensors, bit for bit.
"""
import json
import os
import sys
import tempfile
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402  (Keras 3)
import numpy as np  # noqa: E402
from keras.src.applications import inception_v3, mobilenet_v2, resnet  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hdf5_compact  # noqa: E402  (next to this script)

FIXTURES = os.path.join("Tests", "ModelZooTests", "Fixtures")
LAYOUTS = {"mobilenet_v2": "archive", "inception_v3": "weights", "resnet50": "model"}


def read_safetensors(path):
    """A safetensors file's arrays (numpy only: 8-byte header length, JSON header, raw data)."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
        data = f.read()
    kinds = {"F32": np.float32, "U8": np.uint8}
    arrays = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        arrays[name] = np.frombuffer(data[begin:end], dtype=kinds[entry["dtype"]]).reshape(entry["shape"])
    return arrays


def build(arch, width, size, classes):
    """The Keras Applications network with every Conv2D's filters scaled by `width` (ResNet50,
    InceptionV3), as make_model_fixtures.py builds it with Keras 2."""
    keras.backend.clear_session()
    if arch == "mobilenet_v2":
        return keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=width, weights=None,
                                              classes=classes, classifier_activation=None)
    module = resnet if arch == "resnet50" else inception_v3
    base = module.layers

    class ScaledLayers:
        def __getattr__(self, name):
            return getattr(base, name)

        def Conv2D(self, filters, *a, **k):
            return base.Conv2D(int(round(filters * width)), *a, **k)

    module.layers = ScaledLayers()
    try:
        application = keras.applications.ResNet50 if arch == "resnet50" else keras.applications.InceptionV3
        return application(input_shape=(size, size, 3), weights=None, classes=classes, classifier_activation=None)
    finally:
        module.layers = base


def compact_archive(path):
    """Rewrites a .keras zip with its model.weights.h5 compacted, entries and order unchanged."""
    with zipfile.ZipFile(path) as source, tempfile.TemporaryDirectory() as scratch:
        entries = [(info, source.read(info.filename)) for info in source.infolist()]
        weights = os.path.join(scratch, "model.weights.h5")
        for info, data in entries:
            if info.filename == "model.weights.h5":
                with open(weights, "wb") as f:
                    f.write(data)
                hdf5_compact.compact(weights)
        with zipfile.ZipFile(path + ".tmp", "w") as target:
            for info, data in entries:
                if info.filename == "model.weights.h5":
                    with open(weights, "rb") as f:
                        data = f.read()
                target.writestr(info, data, compress_type=info.compress_type)
    os.replace(path + ".tmp", path)


def main():
    with open(os.path.join(FIXTURES, "manifest.json")) as f:
        manifest = json.load(f)
    preprocess = {"mobilenet_v2": mobilenet_v2.preprocess_input, "resnet50": resnet.preprocess_input,
                  "inception_v3": inception_v3.preprocess_input}
    for entry in manifest:
        arch = entry["architecture"]
        if entry["flavor"] != "keras" or arch not in LAYOUTS:
            continue
        name = f"{arch}_keras"
        model = build(arch, entry["width"], entry["input_size"], entry["classes"])
        model.load_weights(os.path.join(FIXTURES, entry["files"]["h5"]))
        expected = read_safetensors(os.path.join(FIXTURES, entry["expected"]))
        nhwc = np.transpose(expected["inputs"].astype(np.float32), (0, 2, 3, 1))
        logits = model(preprocess[arch](nhwc.copy()), training=False).numpy()
        error = np.abs(logits - expected["logits"]).max() / np.abs(expected["logits"]).max()
        if error > 1e-4:
            sys.exit(f"{name}: Keras 3 with the legacy fixture's weights is off by {error:.2e} of max |logit|")
        if LAYOUTS[arch] == "archive":
            path = os.path.join(FIXTURES, name + ".keras")
            model.save(path)
            compact_archive(path)
        elif LAYOUTS[arch] == "weights":
            path = os.path.join(FIXTURES, name + ".weights.h5")
            model.save_weights(path)
            hdf5_compact.compact(path)  # same layout and values, smaller B-tree nodes (fixture budget)
        else:
            path = os.path.join(FIXTURES, name + "_model.h5")
            model.save(path)
            hdf5_compact.compact(path)
        print(path, os.path.getsize(path), "bytes; logits within %.1e" % error)


if __name__ == "__main__":
    main()
