"""Foolbox 3.3.x reference results for the Attacks tests.

Run by hand from the repository root, after make_model_fixtures.py, with
`pip install foolbox==3.3.4 torch torchvision safetensors numpy`:

    python3 Tools/reference/make_attack_fixtures.py

For each torch-flavour fixture network (Tests/ModelZooTests/Fixtures) it runs, on the fixture
inputs with their reference top-1 labels shifted by one (so that some samples start
misclassified and some do not), Foolbox's FGSM (LinfFastGradientAttack), BIM
(LinfBasicIterativeAttack), PGD with its random start disabled (LinfPGD(random_start=False, steps=10)),
and the L2 fast gradient method; and saves the adversarials rounded to 8 bits, the success
flags and the input gradient of the summed cross-entropy (what Foolbox differentiates) to
Tests/AttacksTests/Fixtures/<arch>_torch.attacks.safetensors plus a manifest.
"""
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

manifest = []
for entry in json.load(open(os.path.join(MODELS, "manifest.json"))):
    if entry["flavor"] != "torch":
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

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
print("foolbox", fb.__version__)
