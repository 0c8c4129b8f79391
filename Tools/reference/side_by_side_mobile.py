"""The Quantize issue's speed table: LiteRT and robustctl's mobile engine on the same Keras
architectures, batch 1, alternating round by round on this machine, the quickest round of
each for every row, with the ratios the issue's targets are stated in (ours vs LiteRT, int8
vs our fp32).

This VM's timings drift by 10–25 % over minutes, so the two are interleaved rather than run
one after the other, and a row's figure is the quickest of `--rounds` rounds (each round's
figure is itself a median of `--repeats` runs).

Run by hand after `pip install tensorflow-cpu tf-keras numpy ai-edge-litert` and
`swift build -c release --product robustctl`:
    python3 Tools/reference/side_by_side_mobile.py [--robustctl .build/release/robustctl]
        [--rounds 4] [--repeats 40] [--threads 2] [--json FILE]
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_reference_mobile import BUILDERS, build_interpreters, time_round  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--robustctl", default=".build/release/robustctl")
parser.add_argument("--rounds", type=int, default=4)
parser.add_argument("--repeats", type=int, default=40)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--json", help="also write the figures and ratios here")
args = parser.parse_args()

interpreters = build_interpreters(args.threads)
litert, ours = {}, {}
for round_index in range(args.rounds):
    time_round(interpreters, args.repeats, litert)
    output = subprocess.run([args.robustctl, "bench", "--suite", "mobile", "--threads", str(args.threads),
                             "--repeats", str(args.repeats), "--filter", "keras", "--json"],
                            check=True, capture_output=True, text=True).stdout
    for row in json.loads(output)["results"]:
        name = row["name"].split("/")[1]
        key = (name, row["implementation"])
        ours[key] = min(ours.get(key, float("inf")), row["ms"])
    print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)

rows = []
print("| network | ours fp32 | ours int8-tflite | ours int8-qnnpack | LiteRT fp32 | LiteRT int8 "
      "| fp32 vs LiteRT | int8 (tflite / qnnpack) vs LiteRT | int8/fp32 (tflite / qnnpack) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for name in BUILDERS:
    fp32, tflite, qnnpack = (ours[(name, impl)] for impl in ("fp32", "int8-tflite", "int8-qnnpack"))
    reference_fp32, reference_int8 = litert[(name, "fp32")], litert[(name, "int8")]
    row = {"network": name, "ours_fp32_ms": fp32, "ours_int8_tflite_ms": tflite, "ours_int8_qnnpack_ms": qnnpack,
           "litert_fp32_ms": reference_fp32, "litert_int8_ms": reference_int8,
           "fp32_vs_litert": fp32 / reference_fp32, "int8_tflite_vs_litert": tflite / reference_int8,
           "int8_qnnpack_vs_litert": qnnpack / reference_int8, "fp32_over_int8_tflite": fp32 / tflite,
           "fp32_over_int8_qnnpack": fp32 / qnnpack}
    rows.append(row)
    print(f"| {name} | {fp32:.2f} | {tflite:.2f} | {qnnpack:.2f} | {reference_fp32:.2f} | {reference_int8:.2f} "
          f"| {row['fp32_vs_litert']:.2f}× | {row['int8_tflite_vs_litert']:.2f}× / {row['int8_qnnpack_vs_litert']:.2f}× "
          f"| {row['fp32_over_int8_tflite']:.2f}× / {row['fp32_over_int8_qnnpack']:.2f}× |")
if args.json:
    with open(args.json + ".tmp", "w") as file:
        json.dump({"threads": args.threads, "rounds": args.rounds, "repeats": args.repeats, "rows": rows}, file, indent=1)
    os.replace(args.json + ".tmp", args.json)
