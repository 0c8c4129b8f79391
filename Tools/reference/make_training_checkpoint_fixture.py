"""A tiny training checkpoint as torchvision's reference scripts save one, for the test that
robustctl finds the state dict inside it.

Run by hand from the repository root (`pip install torch`):

    python3 Tools/reference/make_training_checkpoint_fixture.py

The file holds {'model': DataParallel state dict ('module.' names), 'optimizer': SGD state
(momentum buffers under integer keys, param groups as lists of dicts), 'lr_scheduler': …,
'epoch': 5, 'args': the script's argparse.Namespace, 'best_acc1': a NumPy float, 'classes':
a set}. Writes training_checkpoint.pth in Tests/ModelZooTests/Fixtures.
"""
import argparse
import os

import numpy as np
import torch

torch.manual_seed(0)
model = torch.nn.DataParallel(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4)))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)
model(torch.rand(2, 3, 5, 5)).sum().backward()
optimizer.step()
scheduler.step()
path = os.path.join("Tests", "ModelZooTests", "Fixtures", "training_checkpoint.pth")
torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "lr_scheduler": scheduler.state_dict(),
            "epoch": 5, "args": argparse.Namespace(lr=0.1, model="resnet50", data_path=None, sync_bn=False, weights=[1, 2]),
            "best_acc1": np.float64(0.715), "classes": {"cat", "dog"}}, path)
print(path, os.path.getsize(path), "bytes", sorted(model.state_dict()))
