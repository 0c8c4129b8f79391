"""A tiny PyTorch model saved whole and as TorchScript, for the test that robustctl names such files.

Run by hand from the repository root (`pip install torch`):

    python3 Tools/reference/make_pickled_model_fixture.py

`torch.save(model)` (instead of `torch.save(model.state_dict())`) pickles the module objects
themselves: the pickle names their classes (`torch.nn.modules.container.Sequential`, …), which
only running code could rebuild; `torch.jit.save` pickles TorchScript classes
(`__torch__.torch.nn.modules.container.Sequential`, …). robustctl refuses such files without
running anything and says how to save a state dict. Writes pickled_model.pth and
torchscript_model.pt in Tests/ModelZooTests/Fixtures.
"""
import os

import torch

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU())
fixtures = os.path.join("Tests", "ModelZooTests", "Fixtures")
torch.save(model, os.path.join(fixtures, "pickled_model.pth"))
torch.jit.save(torch.jit.script(model), os.path.join(fixtures, "torchscript_model.pt"))
for name in ["pickled_model.pth", "torchscript_model.pt"]:
    print(name, os.path.getsize(os.path.join(fixtures, name)), "bytes")
