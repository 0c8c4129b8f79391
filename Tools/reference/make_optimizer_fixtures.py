"""torch.optim reference trajectories for robustctl's Optimizer (SGD with momentum and
weight decay; Adam with weight decay): three steps from fixed parameters and gradients.

Run by hand from the repository root after `pip install torch`:
    python3 Tools/reference/make_optimizer_fixtures.py
"""
import json
import os

import torch

OUT = os.path.join("Tests", "TensorCoreTests", "Fixtures", "optimizers", "trajectories.json")
g = torch.Generator().manual_seed(5)
p0 = torch.randn(7, generator=g)
grads = [torch.randn(7, generator=g) for _ in range(3)]
lrs = [0.1, 0.05, 0.02]
cases = []
for kind, make in [("sgd", lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=1e-2)),
                   ("adam", lambda p: torch.optim.Adam([p], lr=0.1, weight_decay=1e-2))]:
    p = torch.nn.Parameter(p0.clone())
    optimizer = make(p)
    trajectory = []
    for grad, lr in zip(grads, lrs):
        for group in optimizer.param_groups:
            group["lr"] = lr
        p.grad = grad.clone()
        optimizer.step()
        trajectory.append(p.detach().tolist())
    cases.append({"kind": kind, "momentum": 0.9, "weight_decay": 1e-2, "learning_rates": lrs,
                  "initial": p0.tolist(), "gradients": [x.tolist() for x in grads], "trajectory": trajectory})
json.dump({"torch": torch.__version__, "cases": cases}, open(OUT, "w"), indent=1)
print("wrote", OUT)
