"""PyTorch + Foolbox 3.3 timings for the rows of `robustctl bench --suite attacks` (torch flavour).

    python3 Tools/reference/bench_reference_attacks.py --threads 2 --repeats 1 [--batches 8]

Prints the same JSON schema as robustctl, implementation "foolbox".
"""
import argparse
import json
import time

import foolbox as fb
import torch
import torchvision

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--repeats", type=int, default=1)
parser.add_argument("--batches", type=int, nargs="+", default=[8])
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
results = []
for arch in ["mobilenet_v2", "resnet50", "inception_v3"]:
    kwargs = {"aux_logits": False, "init_weights": True} if arch == "inception_v3" else {}
    model = getattr(torchvision.models, arch)(**kwargs).eval()
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), preprocessing=dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], axis=-3))
    size = 299 if arch == "inception_v3" else 224
    for batch in args.batches:
        x = torch.rand(batch, 3, size, size)
        labels = torch.arange(batch) * 37 % 1000
        for name, attack in [("fgsm", fb.attacks.LinfFastGradientAttack()), ("bim", fb.attacks.LinfBasicIterativeAttack())]:
            attack(fmodel, x, labels, epsilons=0.005)  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                attack(fmodel, x, labels, epsilons=0.005)
                times.append((time.perf_counter() - start) * 1000)
            times.sort()
            results.append({"name": f"{name}/{arch}/torch/b{batch}", "implementation": "foolbox", "threads": args.threads,
                            "batch": batch, "ms": times[len(times) // 2], "gflops": None})
print(json.dumps({"results": results}, indent=1))
