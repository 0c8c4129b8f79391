"""Reference int8 quantization of the ModelZoo fixture networks.

torch flavour: PyTorch eager-mode post-training static quantization with the qnnpack
engine on torchvision's quantizable models (fuse_model, qnnpack qconfig, prepare,
calibrate, convert), with the default histogram observer and with a min/max observer.
keras flavour: the TFLite converter (full int8, representative dataset) and the TFLite
interpreter.

Writes Tests/QuantizeTests/Fixtures/: per network the calibration images, the reference's
quantization parameters per layer, its int8 weights, its per-layer integer outputs for one
image, and its int8 logits on the ModelZoo fixture inputs.

Run by hand from the repository root after
`pip install torch torchvision tensorflow-cpu tf-keras safetensors h5py numpy`:
    python3 Tools/reference/make_quantization_fixtures.py
"""
import json
import os
import sys

import numpy as np
import torch
import torchvision
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import MEAN, STD, ScaledNN, smooth_images  # noqa: E402

ZOO = os.path.join("Tests", "ModelZooTests", "Fixtures")
OUT = os.path.join("Tests", "QuantizeTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)
CALIBRATION = 8        # images, in batches of 4 (so histograms are combined across batches)
BATCH = 4
zoo = {(e["architecture"], e["flavor"]): e for e in json.load(open(os.path.join(ZOO, "manifest.json")))}
manifest = []


def quantizable(arch, width, classes):
    from torchvision.models import quantization as q
    from torchvision.models.quantization.utils import _replace_relu
    if arch == "mobilenet_v2":
        model = q.QuantizableMobileNetV2(width_mult=width, num_classes=classes, block=q.mobilenetv2.QuantizableInvertedResidual)
    else:
        module = torchvision.models.resnet if arch == "resnet50" else torchvision.models.inception
        original = module.nn
        module.nn = ScaledNN(width)
        try:
            if arch == "resnet50":
                model = q.QuantizableResNet(q.resnet.QuantizableBottleneck, [3, 4, 6, 3], num_classes=classes)
            else:
                model = q.QuantizableInception3(num_classes=classes, aux_logits=True, transform_input=True, init_weights=False)
        finally:
            module.nn = original
    for module in model.modules():
        # The scaled layers only override __init__; give them back the plain classes so
        # that PyTorch's fuser and quantizer recognise them.
        for base in (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear):
            if isinstance(module, base) and type(module) is not base:
                module.__class__ = base
    _replace_relu(model)  # as torchvision's quantized builders do: ReLU6 -> ReLU
    return model


def normalize(images):
    return (images - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def torch_reference(arch):
    entry = zoo[(arch, "torch")]
    width, size, classes = entry["width"], entry["input_size"], entry["classes"]
    state = load_file(os.path.join(ZOO, entry["files"]["safetensors"]))
    expected = load_file(os.path.join(ZOO, entry["expected"]))
    inputs = torch.from_numpy(expected["inputs"]).float() / 255
    calibration = smooth_images(CALIBRATION, size, seed=500)
    tensors = {"calibration": (calibration * 255).round().numpy().astype(np.uint8)}
    result = {"architecture": arch, "flavor": "torch", "calibration_batch": BATCH}
    torch.backends.quantized.engine = "qnnpack"
    from torch.ao.quantization import MinMaxObserver, QConfig, default_weight_observer, get_default_qconfig
    for observer, qconfig in [("histogram", get_default_qconfig("qnnpack")),
                              ("minmax", QConfig(activation=MinMaxObserver.with_args(reduce_range=False),
                                                 weight=default_weight_observer))]:
        model = quantizable(arch, width, classes)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        model.eval()
        model.fuse_model()
        model.qconfig = qconfig
        torch.ao.quantization.prepare(model, inplace=True)
        with torch.no_grad():
            for start in range(0, CALIBRATION, BATCH):
                model(normalize(calibration[start:start + BATCH]))
        # FloatFunctionals that ran during calibration (MobileNetV2 blocks without a residual
        # connection own one that never runs).
        observed = {name for name, m in model.named_modules()
                    if type(m).__name__ == "FloatFunctional" and torch.isfinite(m.activation_post_process.min_val).all()}
        torch.ao.quantization.convert(model, inplace=True)
        layers, functionals = {}, []
        outputs = {}
        hooks = []
        for name, module in model.named_modules():
            kind = type(module).__name__
            if kind in ("ConvReLU2d", "Conv2d", "Linear") and hasattr(module, "weight") and callable(module.weight):
                w = module.weight()
                layers[name] = {"scale": float(module.scale), "zero_point": int(module.zero_point),
                                "weight_scale": float(w.q_scale()), "weight_zero_point": int(w.q_zero_point()),
                                "relu": kind == "ConvReLU2d"}
                if observer == "histogram":
                    tensors[f"{name}.int8_weight"] = w.int_repr().numpy()
                    b = module.bias()
                    tensors[f"{name}.bias"] = (b if b is not None else torch.zeros(w.shape[0])).detach().numpy().astype(np.float32)
                    hooks.append(module.register_forward_hook(
                        lambda m, i, o, name=name: outputs.__setitem__(name, o.int_repr().numpy().copy())))
            elif kind == "QFunctional" and name in observed:
                functionals.append({"name": name, "scale": float(module.scale), "zero_point": int(module.zero_point)})
            elif kind == "Quantize":
                result.setdefault(observer, {})["input"] = {"scale": float(module.scale), "zero_point": int(module.zero_point)}
        with torch.no_grad():
            logits = model(normalize(inputs))
            if observer == "histogram":
                for hook in hooks:
                    hook.remove()
                model(normalize(inputs[:1]))  # no hooks: make sure hooks did not alter anything
                hooks = [m.register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o.int_repr().numpy().copy()))
                         for name, m in model.named_modules() if name in layers]
                model(normalize(inputs[:1]))
                for name, value in outputs.items():
                    tensors[f"{name}.output"] = value
        result.setdefault(observer, {}).update({"layers": layers, "functionals": functionals})
        tensors[f"logits_{observer}"] = logits.numpy().astype(np.float32)
    name = f"{arch}_torch.quantized.safetensors"
    # Quantized tensors come back channels-last; safetensors stores raw memory order.
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, os.path.join(OUT, name))
    result["file"] = name
    manifest.append(result)
    print(arch, "torch", {k: len(v["layers"]) for k, v in result.items() if isinstance(v, dict)})


def keras_reference(arch):
    """TFLite full-integer conversion of the Keras fixture network, run on TFLite's
    reference kernels (BUILTIN_REF: gemmlowp rounding, no XNNPACK)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from make_model_fixtures import make_keras_model
    from tf_keras.src.applications import inception_v3, mobilenet_v2, resnet
    preprocess = {"mobilenet_v2": mobilenet_v2.preprocess_input, "resnet50": resnet.preprocess_input,
                  "inception_v3": inception_v3.preprocess_input}[arch]
    entry = zoo[(arch, "keras")]
    size = entry["input_size"]
    model = make_keras_model(arch, entry["width"], size, entry["classes"])
    model.load_weights(os.path.join(ZOO, entry["files"]["h5"]))
    expected = load_file(os.path.join(ZOO, entry["expected"]))
    calibration = smooth_images(CALIBRATION, size, seed=500)
    tensors = {"calibration": (calibration * 255).round().numpy().astype(np.uint8)}
    nhwc = lambda images: np.transpose(images, (0, 2, 3, 1)).astype(np.float32)

    def representative():
        for i in range(CALIBRATION):
            yield [preprocess(nhwc(tensors["calibration"][i:i + 1]).copy()).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    flat = converter.convert()
    interpreter = tf.lite.Interpreter(model_content=flat, experimental_preserve_all_tensors=True,
                                      experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    inputs = preprocess(nhwc(expected["inputs"]).copy()).astype(np.float32)
    logits = []
    for i in range(inputs.shape[0]):
        interpreter.set_tensor(input_index, inputs[i:i + 1])
        interpreter.invoke()
        logits.append(interpreter.get_tensor(output_index)[0].copy())
        if i == 0:
            first = {index: interpreter.get_tensor(index).copy() for index in details
                     if details[index]["dtype"] == np.int8 and index in {o for op in interpreter._get_ops_details() for o in op["outputs"]}}
    tensors["logits"] = np.stack(logits).astype(np.float32)

    def qparams(index):
        q = details[index]["quantization_parameters"]
        return {"scale": float(q["scales"][0]), "zero_point": int(q["zero_points"][0])}

    ops = []
    for number, op in enumerate(interpreter._get_ops_details()):
        kind = op["op_name"]
        if kind not in ("QUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "CONCATENATION", "MEAN",
                        "AVERAGE_POOL_2D", "MAX_POOL_2D"):
            continue
        out = op["outputs"][0]
        name = details[out]["name"]
        segments = sorted({part for piece in name.split(";") for part in piece.split("/")[1:-1]})
        record = {"op": kind, "segments": segments, "output": qparams(out)}
        if kind != "QUANTIZE":
            record["input"] = qparams(op["inputs"][0])
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = interpreter.get_tensor(op["inputs"][1])
            if kind == "CONV_2D":
                w = w.transpose(0, 3, 1, 2)          # OHWI -> OIHW
            elif kind == "DEPTHWISE_CONV_2D":
                w = w.transpose(3, 0, 1, 2)          # 1HWC -> C1HW
            key = f"op{number}"
            tensors[key + ".int8_weight"] = w.astype(np.int8)
            tensors[key + ".int32_bias"] = interpreter.get_tensor(op["inputs"][2]).astype(np.int32)
            record["weight_scales"] = [float(v) for v in details[op["inputs"][1]]["quantization_parameters"]["scales"]]
            record["key"] = key
            if out in first and first[out].ndim == 4:
                tensors[key + ".output"] = first[out].astype(np.int8)
        ops.append(record)
    name = f"{arch}_keras.quantized.safetensors"
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, os.path.join(OUT, name))
    manifest.append({"architecture": arch, "flavor": "keras", "file": name, "calibration_batch": 1, "ops": ops})
    print(arch, "keras", len(ops), "ops")


if __name__ == "__main__":
    torch.set_num_threads(2)
    for arch in ["mobilenet_v2", "resnet50", "inception_v3"]:
        torch_reference(arch)
    for arch in ["mobilenet_v2", "resnet50", "inception_v3"]:
        keras_reference(arch)
    json.dump(manifest, open(os.path.join(OUT, "manifest.json"), "w"), indent=1)
