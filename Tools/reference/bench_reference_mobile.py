"""TFLite latency of the full-size Keras networks, fp32 and full-int8, batch 1, 2 threads,
in the schema of `robustctl bench --suite mobile --json` (implementation "tflite-fp32" /
"tflite-int8"). Random weights (Keras's initialisers, seed 1) and 4 random calibration images:
latency does not depend on the values.

Run by hand after `pip install tensorflow-cpu tf-keras numpy ai-edge-litert` (the converter is
TensorFlow's; the runtime is LiteRT, `ai-edge-litert`, default delegate XNNPACK — or TensorFlow's
own tf.lite interpreter with --runtime tf):
    python3 Tools/reference/bench_reference_mobile.py [--repeats 30] [--rounds 3] [--runtime litert|tf]

All six models are converted first; then `--rounds` rounds time each in turn (3 warm-up runs,
the median of `--repeats`), and the quietest round's median is reported — as our own figures
are the quietest of several runs: one round right after a conversion, or on a busy VM, can
read far slower (MobileNetV2 fp32 once read 7.0 ms against 3.6 ms).
"""
import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

BUILDERS = {"mobilenet_v2": (keras.applications.MobileNetV2, 224), "resnet50": (keras.applications.ResNet50, 224),
            "inception_v3": (keras.applications.InceptionV3, 299)}


def build_interpreters(threads, runtime="litert"):
    """The six converted models, ready to invoke: a list of (name, precision, interpreter)."""
    if runtime == "litert":
        from ai_edge_litert.interpreter import Interpreter
    else:
        Interpreter = tf.lite.Interpreter
    interpreters = []
    for name, (build, size) in BUILDERS.items():
        keras.utils.set_random_seed(1)
        model = build(weights=None, input_shape=(size, size, 3), classifier_activation=None)
        rng = np.random.default_rng(2)
        calibration = rng.uniform(-1, 1, (4, size, size, 3)).astype(np.float32)
        for precision in ["fp32", "int8"]:
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
            if precision == "int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.representative_dataset = lambda: ([calibration[i:i + 1]] for i in range(4))
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            interpreter = Interpreter(model_content=converter.convert(), num_threads=threads)
            interpreter.allocate_tensors()
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], calibration[:1])
            interpreters.append((name, precision, interpreter))
    return interpreters


def time_round(interpreters, repeats, best):
    """One round: each model in turn, 3 warm-up runs, the median of `repeats`; keeps the
    quickest median per (name, precision) in `best`."""
    for name, precision, interpreter in interpreters:
        for _ in range(3):
            interpreter.invoke()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            interpreter.invoke()
            times.append((time.perf_counter() - start) * 1000)
        key = (name, precision)
        best[key] = min(best.get(key, float("inf")), float(np.median(times)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runtime", choices=["litert", "tf"], default="litert")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    interpreters = build_interpreters(args.threads, args.runtime)
    best = {}
    for _ in range(args.rounds):
        time_round(interpreters, args.repeats, best)
    results = []
    for name, precision, _ in interpreters:
        ms = best[(name, precision)]
        results.append({"name": f"mobile/{name}/keras/b1", "implementation": f"{'litert' if args.runtime == 'litert' else 'tflite'}-{precision}",
                        "threads": args.threads, "batch": 1, "ms": ms, "gflops": None})
        print(results[-1]["name"], precision, "%.3f ms" % ms, flush=True)
    print(json.dumps({"results": results}, indent=1))


if __name__ == "__main__":
    main()
