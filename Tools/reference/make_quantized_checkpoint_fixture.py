"""A tiny quantized PyTorch checkpoint, for the test that robustctl names such files.

Run by hand from the repository root (`pip install torch`):

    python3 Tools/reference/make_quantized_checkpoint_fixture.py

torch.quantization (eager mode, qnnpack) converts a conv + ReLU to int8 and `torch.save`s
its state dict: the pickle holds quantized tensors (`torch._utils._rebuild_qtensor`,
`torch.qint8`, `torch.per_tensor_affine`), which a float checkpoint never does. Writes
Tests/ModelZooTests/Fixtures/quantized_state_dict.pth.
"""
import os

import torch

torch.manual_seed(0)
torch.backends.quantized.engine = "qnnpack"


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.relu = torch.nn.ReLU()
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x):
        return self.dequant(self.relu(self.conv(self.quant(x))))


model = Tiny().eval()
model.qconfig = torch.ao.quantization.get_default_qconfig("qnnpack")
torch.ao.quantization.fuse_modules(model, [["conv", "relu"]], inplace=True)
torch.ao.quantization.prepare(model, inplace=True)
model(torch.rand(2, 3, 8, 8))
torch.ao.quantization.convert(model, inplace=True)
path = os.path.join("Tests", "ModelZooTests", "Fixtures", "quantized_state_dict.pth")
torch.save(model.state_dict(), path)
print(path, os.path.getsize(path), "bytes:", list(model.state_dict().keys()))
