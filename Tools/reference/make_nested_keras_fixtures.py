"""The MobileNetV2 Keras fixture as a fine-tuning script saves it: the Keras Applications
network without its top, nested as one layer of a Sequential model with a pooling layer and
the classifier, in both HDF5 layouts that nest.

Run by hand from the repository root after `pip install tensorflow-cpu tf-keras h5py numpy`,
once `make_model_fixtures.py` has written `mobilenet_v2_keras.h5` and the manifest:

    python3 Tools/reference/make_nested_keras_fixtures.py

- `mobilenet_v2_keras_nested.h5`: Keras 2 (tf-keras) `save_weights`. The root's `layer_names`
  lists the nested model as one layer whose `weight_names` are its inner layers' weights
  (`Conv1/kernel:0`, …), all trainable ones first, then the batch norms' moving statistics.
- `mobilenet_v2_keras_nested.weights.h5`: Keras 3 `save_weights`. The inner layers' groups sit
  under `/layers/functional/layers/<class>_<n>/vars`, the classifier under `/layers/dense/vars`.

Both get the legacy fixture's weights (and must reproduce the flat model's logits first), and
are compacted as the other fixtures are (hdf5_compact.py). The tests require the same tensors
as the flat file, bit for bit.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402  (Keras 3)
import numpy as np  # noqa: E402
import tf_keras  # noqa: E402  (Keras 2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hdf5_compact  # noqa: E402
from make_keras3_fixtures import FIXTURES  # noqa: E402

ENTRY = {"width": 0.1, "input_size": 64, "classes": 10, "h5": "mobilenet_v2_keras.h5"}


def nested(library):
    size, width, classes = ENTRY["input_size"], ENTRY["width"], ENTRY["classes"]
    flat = library.applications.MobileNetV2(input_shape=(size, size, 3), alpha=width, weights=None, classes=classes,
                                            classifier_activation=None)
    flat.load_weights(os.path.join(FIXTURES, ENTRY["h5"]))
    base = library.applications.MobileNetV2(input_shape=(size, size, 3), alpha=width, weights=None, include_top=False)
    for layer in base.layers:
        if layer.weights:
            layer.set_weights(flat.get_layer(layer.name).get_weights())
    model = library.Sequential([library.Input((size, size, 3)), base, library.layers.GlobalAveragePooling2D(),
                                library.layers.Dense(classes, name="predictions")])
    model.layers[-1].set_weights(flat.get_layer("predictions").get_weights())
    images = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    error = np.abs(model(images, training=False).numpy() - flat(images, training=False).numpy()).max()
    if error > 1e-5:
        sys.exit(f"{library.__name__}: the nested model is off the flat one by {error:.2e}")
    return model


def main():
    for library, name in [(tf_keras, "mobilenet_v2_keras_nested.h5"), (keras, "mobilenet_v2_keras_nested.weights.h5")]:
        path = os.path.join(FIXTURES, name)
        nested(library).save_weights(path)
        hdf5_compact.compact(path)
        print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
