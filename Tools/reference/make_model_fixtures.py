"""Seeded reduced-size networks in every weight format, with reference logits.

Run by hand from the repository root after
`pip install torch torchvision tensorflow-cpu tf-keras safetensors h5py numpy`:

    python3 Tools/reference/make_model_fixtures.py

For each (architecture, flavour) it builds the reference framework's own model
(torchvision / Keras Applications) with reduced widths and input size, gives it
seeded random weights with non-trivial BatchNorm statistics, saves it in every format
the flavour supports, and writes `<name>.expected.safetensors` holding the input pixels
(`inputs`, NCHW RGB as uint8; the network sees value / 255) and the reference logits (`logits`). Reduced ResNet50 and
InceptionV3 scale every channel count by the width multiplier, as robustctl's builders do.
"""
import json
import os
import sys
import types

import numpy as np
import torch
import torchvision
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hdf5_compact  # noqa: E402  (next to this script)

OUT = os.path.join("Tests", "ModelZooTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
manifest = []


def smooth_images(count, size, seed):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(count, 3, 5, 5, generator=g)
    images = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    images = images + 0.05 * torch.randn(count, 3, size, size, generator=g)
    # On the 8-bit grid, so the fixture stores them exactly as uint8.
    return (images.clamp(0, 1) * 255).round().float() / 255


def quality(logits):
    """Distinct predictions and a clear top-1 margin, so the fixture can tell networks apart."""
    top2 = np.sort(logits, axis=1)[:, -2:]
    margin = (top2[:, 1] - top2[:, 0]).min() / (np.abs(logits).max() + 1e-12)
    return len(set(logits.argmax(1))), margin


# ---------------------------------------------------------------------------- torch
class ScaledNN(types.SimpleNamespace):
    """A stand-in for `torch.nn` inside torchvision modules: scales channel counts."""

    def __init__(self, scale):
        super().__init__(**{k: getattr(torch.nn, k) for k in dir(torch.nn) if not k.startswith("__")})
        s = lambda c: c if c == 3 else int(round(c * scale))

        class Conv2d(torch.nn.Conv2d):
            def __init__(self, i, o, *a, **k):
                super().__init__(s(i), s(o), *a, **k)

        class BatchNorm2d(torch.nn.BatchNorm2d):
            def __init__(self, c, *a, **k):
                super().__init__(s(c), *a, **k)

        class Linear(torch.nn.Linear):
            def __init__(self, i, o, *a, **k):
                super().__init__(s(i), o, *a, **k)

        self.Conv2d, self.BatchNorm2d, self.Linear = Conv2d, BatchNorm2d, Linear


def torch_model(arch, width, classes):
    if arch == "mobilenet_v2":
        return torchvision.models.mobilenet_v2(width_mult=width, num_classes=classes)
    module = torchvision.models.resnet if arch == "resnet50" else torchvision.models.inception
    original = module.nn
    module.nn = ScaledNN(width)
    try:
        if arch == "resnet50":
            return torchvision.models.resnet50(num_classes=classes)
        return torchvision.models.inception_v3(num_classes=classes, aux_logits=True, transform_input=True, init_weights=False)
    finally:
        module.nn = original


def randomize_torch(model, images, seed):
    torch.manual_seed(seed)
    for p in model.parameters():
        torch.nn.init.normal_(p, 0, 1) if p.dim() == 1 else None
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average: running stats = mean of the batches seen
            m.reset_running_stats()
    # Running statistics from real activations keep 50 layers well scaled ...
    normalized = (images - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    model.train()
    aux = getattr(model, "AuxLogits", None)
    if aux is not None:
        model.AuxLogits = None  # the auxiliary head needs 299-pixel inputs; it is unused at inference
    with torch.no_grad():
        model(normalized)
    if aux is not None:
        model.AuxLogits = aux
    model.eval()
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            # ... then perturb them, and give the affine part non-trivial values, so that a
            # mistake in folding or in the order of the four vectors shows in the logits.
            c = m.num_features
            # Channels of low variance (dead after ReLU6, or nearly so) get amplified by 1/std;
            # through 50 layers that makes a random network chaotic (float rounding changes the
            # logits by 20 %), so floor every variance at the layer's mean variance.
            m.running_var.clamp_(min=m.running_var.mean().item() + 1e-3)
            m.running_mean += 0.1 * torch.randn(c, generator=g) * m.running_var.sqrt()
            m.running_var *= torch.empty(c).uniform_(0.7, 1.4, generator=g)
            m.weight.data = torch.empty(c).uniform_(0.6, 1.4, generator=g)
            m.bias.data = 0.2 * torch.randn(c, generator=g)
            m.momentum = 0.1
        if isinstance(m, torch.nn.Linear):
            m.weight.data = torch.randn(m.weight.shape, generator=g) / m.weight.shape[1] ** 0.5 * 3
            m.bias.data = 0.1 * torch.randn(m.bias.shape, generator=g)


def make_torch(arch, width, size, classes, formats):
    images = smooth_images(4, size, seed=11)
    for seed in range(100):
        model = torch_model(arch, width, classes)
        randomize_torch(model, smooth_images(16, size, seed=1000 + seed), seed)
        normalized = (images - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
        with torch.no_grad():
            logits = model(normalized).numpy()
        distinct, margin = quality(logits)
        # Stability: tiny input noise must not flip any top-1.
        with torch.no_grad():
            noisy = model(normalized + 1e-3 * torch.randn_like(normalized)).numpy()
        # Well-conditioned: input noise of 1e-3 moves the logits by far less than their scale.
        drift = np.abs(noisy - logits).max() / np.abs(logits).max()
        if distinct >= 2 and margin > 0.02 and drift < 0.01 and (noisy.argmax(1) == logits.argmax(1)).all():
            break
    else:
        sys.exit(f"no well-conditioned seed for {arch}")
    name = f"{arch}_torch"
    state = model.state_dict()
    files = {}
    if "safetensors" in formats:
        files["safetensors"] = name + ".safetensors"
        save_torch({k: v.contiguous() for k, v in state.items()}, os.path.join(OUT, files["safetensors"]))
    if "pth" in formats:
        files["pth"] = name + ".pth"
        torch.save(state, os.path.join(OUT, files["pth"]))
    if "legacy_pth" in formats:
        files["legacy_pth"] = name + "_legacy.pth"
        torch.save(state, os.path.join(OUT, files["legacy_pth"]), _use_new_zipfile_serialization=False)
    save_numpy({"inputs": (images.numpy() * 255).round().astype(np.uint8), "logits": logits}, os.path.join(OUT, name + ".expected.safetensors"))
    manifest.append({"architecture": arch, "flavor": "torch", "width": width, "input_size": size, "classes": classes,
                     "files": files, "expected": name + ".expected.safetensors", "seed": seed,
                     "distinct_top1": int(distinct), "min_margin": float(margin), "noise_drift": float(drift)})
    print(name, "seed", seed, "distinct", distinct, "margin %.3f" % margin, "drift %.4f" % drift,
          "params", sum(v.numel() for v in state.values()))


# ---------------------------------------------------------------------------- keras

def make_keras_model(arch, width, size, classes):
    """The Keras Applications network, Conv2D filters scaled by `width` for ResNet50/InceptionV3."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras as keras
    from tf_keras.src.applications import inception_v3, resnet

    keras.backend.clear_session()  # fresh auto-names: conv2d, conv2d_1, ...
    if arch == "mobilenet_v2":
        return keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=width, weights=None,
                                              classes=classes, classifier_activation=None)
    module = resnet if arch == "resnet50" else inception_v3
    base = module.VersionAwareLayers() if arch == "resnet50" else module.layers

    class ScaledLayers:
        """Delegates to Keras's layers, with every Conv2D's filters scaled."""

        def __getattr__(self, name):
            return getattr(base, name)

        def Conv2D(self, filters, *a, **k):
            return base.Conv2D(int(round(filters * width)), *a, **k)

    if arch == "resnet50":
        # ResNet() replaces the module's `layers` unless one is passed in.
        return keras.applications.ResNet50(input_shape=(size, size, 3), weights=None, classes=classes,
                                           classifier_activation=None, layers=ScaledLayers())
    original = module.layers
    module.layers = ScaledLayers()
    try:
        return keras.applications.InceptionV3(input_shape=(size, size, 3), weights=None, classes=classes,
                                              classifier_activation=None)
    finally:
        module.layers = original

def make_keras(arch, width, size, classes):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras as keras
    from tf_keras.src.applications import inception_v3, mobilenet_v2, resnet

    images = smooth_images(4, size, seed=11).numpy()
    nhwc = np.transpose(images, (0, 2, 3, 1)) * 255.0
    preprocess = {"mobilenet_v2": mobilenet_v2.preprocess_input, "resnet50": resnet.preprocess_input,
                  "inception_v3": inception_v3.preprocess_input}[arch]

    def build():
        return make_keras_model(arch, width, size, classes)

    for seed in range(100):
        keras.utils.set_random_seed(seed)
        model = build()
        rng = np.random.default_rng(seed)
        calibration = np.transpose(smooth_images(16, size, seed=1000 + seed).numpy(), (0, 2, 3, 1)) * 255.0
        bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
        for l in bns:
            l.momentum = 0.0  # one training-mode call sets the moving statistics to the batch's
        model(preprocess(calibration.copy()), training=True)
        for l in bns:
            l.momentum = 0.99
            mean, var = l.moving_mean.numpy(), l.moving_variance.numpy()
            var = np.maximum(var, var.mean() + 1e-3)  # see the torch part: no low-variance blow-up
            c = mean.shape[0]
            l.moving_mean.assign(mean + 0.1 * rng.standard_normal(c).astype(np.float32) * np.sqrt(var))
            l.moving_variance.assign(var * rng.uniform(0.7, 1.4, c).astype(np.float32))
            if l.scale:
                l.gamma.assign(rng.uniform(0.6, 1.4, c).astype(np.float32))
            l.beta.assign((0.2 * rng.standard_normal(c)).astype(np.float32))
        dense = model.get_layer("predictions")
        kernel = dense.kernel.numpy()
        dense.kernel.assign((rng.standard_normal(kernel.shape) / np.sqrt(kernel.shape[0]) * 3).astype(np.float32))
        dense.bias.assign((0.1 * rng.standard_normal(kernel.shape[1])).astype(np.float32))
        logits = model(preprocess(nhwc.copy()), training=False).numpy()
        # The same input noise as the torch check: 1e-3 in ImageNet-normalised units.
        noisy = model(preprocess(nhwc.copy() + 1e-3 * 0.226 * 255 * rng.standard_normal(nhwc.shape)), training=False).numpy()
        distinct, margin = quality(logits)
        drift = np.abs(noisy - logits).max() / np.abs(logits).max()
        if distinct >= 2 and margin > 0.02 and drift < 0.01 and (noisy.argmax(1) == logits.argmax(1)).all():
            break
    else:
        sys.exit(f"no well-conditioned seed for keras {arch}")
    name = f"{arch}_keras"
    model.save_weights(os.path.join(OUT, name + ".h5"))  # legacy HDF5 layout: layer_names, weight_names
    hdf5_compact.compact(os.path.join(OUT, name + ".h5"))  # same layout, smaller B-tree nodes (fixture budget)
    save_numpy({"inputs": (images * 255).round().astype(np.uint8), "logits": logits.astype(np.float32)}, os.path.join(OUT, name + ".expected.safetensors"))
    weighted = [l.name for l in model.layers if l.weights]
    manifest.append({"architecture": arch, "flavor": "keras", "width": width, "input_size": size, "classes": classes,
                     "files": {"h5": name + ".h5"}, "expected": name + ".expected.safetensors", "seed": seed,
                     "distinct_top1": int(distinct), "min_margin": float(margin), "noise_drift": float(drift),
                     "keras_weighted_layers": weighted})
    print(name, "seed", seed, "distinct", distinct, "margin %.3f" % margin, "drift %.4f" % drift, "params", model.count_params())


if __name__ == "__main__":
    torch.set_num_threads(2)
    # Every torch format is exercised on ResNet50 (the smallest reduced model); the other
    # two torch networks come as safetensors only, to keep the fixtures small.
    make_torch("mobilenet_v2", 0.1, 64, 10, ["safetensors"])
    make_torch("resnet50", 0.0625, 64, 10, ["safetensors", "pth", "legacy_pth"])
    make_torch("inception_v3", 0.0625, 75, 10, ["safetensors"])
    make_keras("mobilenet_v2", 0.1, 64, 10)
    make_keras("resnet50", 0.0625, 64, 10)
    make_keras("inception_v3", 0.0625, 75, 10)
    # Malicious checkpoints: unpickling them with pickle would run a shell command.
    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch /tmp/robustctl-pickle-exploit-ran",))

    torch.save({"weight": torch.zeros(2), "payload": Exploit()}, os.path.join(OUT, "malicious.pth"))
    torch.save({"weight": torch.zeros(2), "payload": Exploit()}, os.path.join(OUT, "malicious_legacy.pth"),
               _use_new_zipfile_serialization=False)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
