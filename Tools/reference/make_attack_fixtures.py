"""Foolbox 3.3.x reference results for the Attacks tests.

Run by hand from the repository root, after make_model_fixtures.py, with
`pip install foolbox==3.3.4 torch torchvision safetensors numpy`:

    python3 Tools/reference/make_attack_fixtures.py [--flavors torch keras]

For each torch-flavour fixture network (Tests/ModelZooTests/Fixtures) it runs, on the fixture
inputs with their reference top-1 labels shifted by one (so that some samples start
misclassified and some do not), Foolbox's FGSM (LinfFastGradientAttack), BIM
(LinfBasicIterativeAttack), PGD with its random start disabled (LinfPGD(random_start=False, steps=10)),
and the L2 fast gradient method; and saves the adversarials rounded to 8 bits, the success
flags and the input gradient of the summed cross-entropy (what Foolbox differentiates) to
Tests/AttacksTests/Fixtures/<arch>_torch.attacks.safetensors plus a manifest.
"""
import argparse
import json
import os
import sys

import foolbox as fb
import numpy as np
import torch
from safetensors.numpy import save_file
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import MEAN, STD, torch_model  # noqa: E402

MODELS = os.path.join("Tests", "ModelZooTests", "Fixtures")
OUT = os.path.join("Tests", "AttacksTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)
torch.set_num_threads(2)

ATTACKS = {
    "fgsm": fb.attacks.LinfFastGradientAttack(),
    "bim": fb.attacks.LinfBasicIterativeAttack(),
    # 10 instead of 40 steps: over many steps, pixels whose gradient is ~0 take float-noise
    # signs and the two trajectories drift apart; 10 steps test the same update rule.
    "pgd": fb.attacks.LinfPGD(random_start=False, steps=10),
    "fgm_l2": fb.attacks.L2FastGradientAttack(),
}
BOUNDARY_STEPS = 1000
EPSILONS = {"fgsm": [0.005], "bim": [0.005], "pgd": [0.03], "fgm_l2": [0.5]}

parser = argparse.ArgumentParser()
parser.add_argument("--flavors", nargs="+", default=["torch", "keras"],
                    help="flavours to regenerate; the others' manifest entries are kept")
FLAVORS = parser.parse_args().flavors
manifest = []
if os.path.exists(os.path.join(OUT, "manifest.json")):
    manifest = [m for m in json.load(open(os.path.join(OUT, "manifest.json"))) if m["flavor"] not in FLAVORS]
for entry in json.load(open(os.path.join(MODELS, "manifest.json"))):
    if entry["flavor"] != "torch" or "torch" not in FLAVORS:
        continue
    arch = entry["architecture"]
    model = torch_model(arch, entry["width"], entry["classes"])
    model.load_state_dict(load_file(os.path.join(MODELS, entry["files"]["safetensors"])))
    model.eval()
    expected = load_file(os.path.join(MODELS, entry["expected"]))
    images = expected["inputs"].float() / 255
    labels = expected["logits"].argmax(1)
    labels = torch.where(torch.arange(len(labels)) % 2 == 0, labels, (labels + 1) % entry["classes"])
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), preprocessing=dict(mean=MEAN.tolist(), std=STD.tolist(), axis=-3))

    x = images.clone().requires_grad_(True)
    normalized = (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    loss = torch.nn.functional.cross_entropy(model(normalized), labels, reduction="sum")
    (gradient,) = torch.autograd.grad(loss, x)
    tensors = {"inputs": expected["inputs"].numpy(), "labels": labels.numpy().astype(np.int64), "gradient": gradient.numpy()}
    runs = []
    for name, attack in ATTACKS.items():
        for epsilon in EPSILONS[name]:
            _, clipped, success = attack(fmodel, images, labels, epsilons=epsilon)
            key = f"{name}@{epsilon}"
            # Stored on the 8-bit grid (round half to even), as the study stores adversarials.
            tensors[key] = np.round(clipped.numpy() * 255).clip(0, 255).astype(np.uint8)
            tensors[key + "/success"] = success.numpy().astype(np.uint8)
            runs.append({"attack": name, "epsilon": epsilon, "key": key})
    # Boundary attack: a stochastic search, compared by its statistics (success rate and
    # median L2 distance over the samples, for several seeds), with labels = the clean top-1.
    clean_labels = expected["logits"].argmax(1)
    boundary = []
    for seed in range(3):
        torch.manual_seed(seed)
        _, boundary_advs, boundary_success = fb.attacks.BoundaryAttack(steps=BOUNDARY_STEPS)(
            fmodel, images, clean_labels, epsilons=None)
        distances = (boundary_advs - images).flatten(1).norm(dim=1)
        boundary.append({"seed": seed, "success": boundary_success.float().mean().item(),
                         "median_l2": distances.median().item(), "l2": distances.tolist()})
    file = f"{arch}_torch.attacks.safetensors"
    save_file(tensors, os.path.join(OUT, file))
    manifest.append({"architecture": arch, "flavor": "torch", "width": entry["width"], "input_size": entry["input_size"],
                     "classes": entry["classes"], "weights": entry["files"]["safetensors"], "file": file, "runs": runs,
                     "boundary": {"steps": BOUNDARY_STEPS, "runs": boundary}})
    print(arch, [(r["key"], tensors[r["key"] + "/success"].tolist()) for r in runs],
          "boundary median L2", [round(b["median_l2"], 4) for b in boundary])

# Keras flavour: Foolbox's TensorFlowModel around the Keras fixture network, with the pixels
# in [0, 1] NHWC scaled to [0, 255] and the Keras preprocessing inside the wrapped model.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from tf_keras.src.applications import inception_v3, mobilenet_v2, resnet  # noqa: E402

from make_model_fixtures import make_keras_model  # noqa: E402

for entry in json.load(open(os.path.join(MODELS, "manifest.json"))):
    if entry["flavor"] != "keras" or "keras" not in FLAVORS:
        continue
    arch = entry["architecture"]
    network = make_keras_model(arch, entry["width"], entry["input_size"], entry["classes"])
    network.load_weights(os.path.join(MODELS, entry["files"]["h5"]))
    preprocess = {"mobilenet_v2": mobilenet_v2.preprocess_input, "resnet50": resnet.preprocess_input,
                  "inception_v3": inception_v3.preprocess_input}[arch]
    pixels = keras.Input((entry["input_size"], entry["input_size"], 3))
    wrapped = keras.Model(pixels, network(keras.layers.Lambda(lambda x: preprocess(x * 255.0))(pixels)))
    fmodel = fb.TensorFlowModel(wrapped, bounds=(0, 1))
    expected = load_file(os.path.join(MODELS, entry["expected"]))
    images_nchw = expected["inputs"].float().numpy() / 255
    images = tf.constant(np.transpose(images_nchw, (0, 2, 3, 1)))
    logits = expected["logits"].numpy()
    labels_np = logits.argmax(1)
    labels_np = np.where(np.arange(len(labels_np)) % 2 == 0, labels_np, (labels_np + 1) % entry["classes"])
    labels = tf.constant(labels_np)
    with tf.GradientTape() as tape:
        tape.watch(images)
        loss = tf.reduce_sum(tf.keras.losses.sparse_categorical_crossentropy(labels, wrapped(images), from_logits=True))
    gradient = tape.gradient(loss, images).numpy()
    tensors = {"inputs": expected["inputs"].numpy(), "labels": labels_np.astype(np.int64),
               "gradient": np.ascontiguousarray(np.transpose(gradient, (0, 3, 1, 2)))}
    runs = []
    for name, attack in ATTACKS.items():
        for epsilon in EPSILONS[name]:
            _, clipped, success = attack(fmodel, images, labels, epsilons=epsilon)
            key = f"{name}@{epsilon}"
            tensors[key] = np.ascontiguousarray(np.round(np.transpose(clipped.numpy(), (0, 3, 1, 2)) * 255).clip(0, 255).astype(np.uint8))
            tensors[key + "/success"] = success.numpy().astype(np.uint8)
            # How reproducible the attack is on this network: Foolbox again from inputs moved
            # by at most 1e-6 (far below a grey level). The seeded Keras networks are chaotic
            # enough that iterative attacks drift apart; the tests hold us to this agreement.
            rng = np.random.default_rng(0)
            nudged = tf.constant(np.clip(images.numpy() + rng.uniform(-1e-6, 1e-6, images.shape), 0, 1).astype(np.float32))
            _, again, _ = attack(fmodel, nudged, labels, epsilons=epsilon)
            tensors[key + "/self_agreement"] = np.array(
                [(np.round(again.numpy() * 255) == np.round(clipped.numpy() * 255)).mean()], dtype=np.float32)
            runs.append({"attack": name, "epsilon": epsilon, "key": key})
    # Boundary attack statistics, as for the torch networks (TensorFlow's generator seeded).
    clean_labels = tf.constant(logits.argmax(1))
    boundary = []
    for seed in range(3):
        tf.random.set_seed(seed)
        _, boundary_advs, boundary_success = fb.attacks.BoundaryAttack(steps=BOUNDARY_STEPS)(
            fmodel, images, clean_labels, epsilons=None)
        distances = np.linalg.norm((boundary_advs.numpy() - images.numpy()).reshape(len(labels_np), -1), axis=1)
        boundary.append({"seed": seed, "success": float(boundary_success.numpy().mean()),
                         "median_l2": float(np.median(distances)), "l2": distances.tolist()})
    file = f"{arch}_keras.attacks.safetensors"
    save_file(tensors, os.path.join(OUT, file))
    manifest.append({"architecture": arch, "flavor": "keras", "width": entry["width"], "input_size": entry["input_size"],
                     "classes": entry["classes"], "weights": entry["files"]["h5"], "file": file, "runs": runs,
                     "boundary": {"steps": BOUNDARY_STEPS, "runs": boundary}})
    print(arch, "keras", [(r["key"], tensors[r["key"] + "/success"].tolist()) for r in runs],
          "boundary median L2", [round(b["median_l2"], 4) for b in boundary])

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
print("foolbox", fb.__version__)
