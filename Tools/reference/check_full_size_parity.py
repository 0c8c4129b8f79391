"""Full-size parity: robustctl against torchvision and Keras on full-size networks.

    swift build -c release
    python3 Tools/reference/check_full_size_parity.py [--robustctl .build/release/robustctl] [--keep DIR]

Builds each full-size network (MobileNetV2, ResNet50, InceptionV3; torch and keras flavours)
in its reference framework with seeded random weights (real ImageNet weights cannot be
downloaded here; pass --torch-weights-dir / --keras-weights-dir to use files you have), saves
it in every weight format of its flavour, runs `robustctl predict --json` on two images and
prints the largest logit difference relative to the largest logit, and whether the top-1
classes agree. Also prints how long robustctl took to load each file.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--robustctl", default=".build/release/robustctl")
parser.add_argument("--keep", default=None, help="directory to keep the generated files in")
args = parser.parse_args()
work = args.keep or tempfile.mkdtemp(prefix="robustctl-parity-")
os.makedirs(work, exist_ok=True)

rng = np.random.default_rng(0)
images = []
for index, size in enumerate([224, 299]):
    pixels = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    from PIL import Image
    path = os.path.join(work, f"image{size}.png")
    Image.fromarray(pixels).save(path)
    images.append((size, path, pixels))


def robustctl(arch, flavor, weights, image):
    start = time.perf_counter()
    out = subprocess.run([args.robustctl, "predict", "--model", arch, "--flavor", flavor, "--weights", weights,
                          "--json", "--top", "1", image], capture_output=True, text=True, check=True)
    return np.array(json.loads(out.stdout)[0]["logits"]), time.perf_counter() - start


def report(name, ours, reference, seconds):
    error = np.abs(ours - reference).max() / np.abs(reference).max()
    print(f"{name:48s} max|dlogit|/max|logit| = {error:.2e}  top-1 {'same' if ours.argmax() == reference.argmax() else 'DIFFERENT'}"
          f"  ({seconds:.2f} s load + predict)")


import torch
import torchvision

torch.manual_seed(0)
for arch in ["mobilenet_v2", "resnet50", "inception_v3"]:
    size = 299 if arch == "inception_v3" else 224
    kwargs = {"init_weights": True} if arch == "inception_v3" else {}
    model = getattr(torchvision.models, arch)(**kwargs).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    image = next(p for s, p, _ in images if s == size)
    pixels = next(x for s, _, x in images if s == size)
    x = torch.tensor(pixels).permute(2, 0, 1)[None].float() / 255
    if arch == "inception_v3":
        model.transform_input = True
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        reference = model(x)[0].numpy()
    state = model.state_dict()
    files = {"pth": os.path.join(work, f"{arch}.pth"), "legacy": os.path.join(work, f"{arch}_legacy.pth"),
             "safetensors": os.path.join(work, f"{arch}.safetensors")}
    torch.save(state, files["pth"])
    torch.save(state, files["legacy"], _use_new_zipfile_serialization=False)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in state.items()}, files["safetensors"])
    for format, path in files.items():
        ours, seconds = robustctl(arch, "torch", path, image)
        report(f"{arch} torch ({format})", ours, reference, seconds)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tf_keras as keras
from tf_keras.src.applications import inception_v3, mobilenet_v2, resnet

for arch, build, preprocess in [("mobilenet_v2", keras.applications.MobileNetV2, mobilenet_v2.preprocess_input),
                                ("resnet50", keras.applications.ResNet50, resnet.preprocess_input),
                                ("inception_v3", keras.applications.InceptionV3, inception_v3.preprocess_input)]:
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    size = 299 if arch == "inception_v3" else 224
    model = build(weights=None, classifier_activation=None)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.uniform(-0.1, 0.1, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
    image = next(p for s, p, _ in images if s == size)
    pixels = next(x for s, _, x in images if s == size).astype(np.float32)
    reference = model(preprocess(pixels[None].copy()), training=False).numpy()[0]
    path = os.path.join(work, f"{arch}_keras.h5")
    model.save_weights(path)
    ours, seconds = robustctl(arch, "keras", path, image)
    report(f"{arch} keras (h5)", ours, reference, seconds)
print("files in", work)
