"""PyTorch eager timings for the rows of `robustctl bench --suite networks` (torch flavour).

    python3 Tools/reference/bench_reference_networks.py --threads 2 --repeats 5

Prints the same JSON schema as robustctl, implementation "pytorch", so the two can be
compared as ratios from runs on the same machine.
"""
import argparse
import json
import time

import torch
import torchvision

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--repeats", type=int, default=5)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)


def median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return times[len(times) // 2]


results = []
for arch in ["mobilenet_v2", "resnet50", "inception_v3"]:
    kwargs = {"aux_logits": False, "init_weights": True} if arch == "inception_v3" else {}
    model = getattr(torchvision.models, arch)(**kwargs).eval()
    size = 299 if arch == "inception_v3" else 224
    for batch in [1, 8]:
        x = torch.rand(batch, 3, size, size)
        with torch.no_grad():
            ms = median_ms(lambda: model(x), args.repeats)
        results.append({"name": f"forward/{arch}/torch/b{batch}", "implementation": "pytorch", "threads": args.threads,
                        "batch": batch, "ms": ms, "gflops": None})
    x = torch.rand(8, 3, size, size)
    labels = torch.arange(8) * 97 % 1000

    def gradient():
        inp = x.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(inp), labels)
        torch.autograd.grad(loss, inp)

    ms = median_ms(gradient, args.repeats)
    results.append({"name": f"input_gradient/{arch}/torch/b8", "implementation": "pytorch", "threads": args.threads,
                    "batch": 8, "ms": ms, "gflops": None})
print(json.dumps({"results": results}, indent=1))
