"""A tiny PyTorch model saved whole, for the test that robustctl names such files.

Run by hand from the repository root (`pip install torch`):

    python3 Tools/reference/make_pickled_model_fixture.py

`torch.save(model)` (instead of `torch.save(model.state_dict())`) pickles the module objects
themselves: the pickle names their classes (`torch.nn.modules.container.Sequential`, …), which
only running code could rebuild. robustctl refuses such files without running anything and
says how to save a state dict. Writes Tests/ModelZooTests/Fixtures/pickled_model.pth.
"""
import os

import torch

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU())
path = os.path.join("Tests", "ModelZooTests", "Fixtures", "pickled_model.pth")
torch.save(model, path)
print(path, os.path.getsize(path), "bytes")
