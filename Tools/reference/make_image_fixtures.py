"""Image I/O and resize fixtures for TensorCore's tests, produced by OpenCV and Pillow.

Run by hand from the repository root after `pip install opencv-python-headless pillow numpy`:

    python3 Tools/reference/make_image_fixtures.py

Writes Tests/TensorCoreTests/Fixtures/images/. Every expected image is stored as an 8-bit
RGB PNG; the tests decode it with our own PNG reader, whose 8-bit RGB path is checked
bit-exact by a round trip.
"""
import json
import os

import cv2
import numpy as np
from PIL import Image

OUT = os.path.join("Tests", "TensorCoreTests", "Fixtures", "images")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(20261125)


def natural_like(height, width):
    """Smooth gradients plus texture and a few hard edges, so resize errors show."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([
        127 + 120 * np.sin(x / 7.0) * np.cos(y / 11.0),
        127 + 120 * np.cos((x + y) / 9.0),
        (x * 255.0 / max(width - 1, 1)),
    ], axis=-1)
    base[height // 3: height // 2, width // 4: width // 2] = [250, 10, 30]
    noise = rng.normal(0, 18, size=base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_rgb_png(name, rgb):
    cv2.imwrite(os.path.join(OUT, name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


manifest = {"resize": [], "decode": []}

# --- Resize: cv2.resize on RGB uint8 arrays.
sources = {"src_61x47.png": natural_like(47, 61), "src_300x200.png": natural_like(200, 300)}
for name, image in sources.items():
    write_rgb_png(name, image)
cases = [
    ("src_61x47.png", 100, 80, "bicubic"),
    ("src_61x47.png", 33, 29, "bicubic"),
    ("src_61x47.png", 61, 20, "bicubic"),
    ("src_61x47.png", 100, 80, "bilinear"),
    ("src_61x47.png", 37, 23, "bilinear"),
    ("src_300x200.png", 384, 256, "bicubic"),
    ("src_300x200.png", 448, 299, "bicubic"),
    ("src_300x200.png", 150, 97, "bicubic"),
]
flags = {"bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR}
for source, width, height, method in cases:
    out = cv2.resize(sources[source], (width, height), interpolation=flags[method])
    name = f"resize_{os.path.splitext(source)[0]}_{width}x{height}_{method}.png"
    write_rgb_png(name, out)
    manifest["resize"].append({"source": source, "width": width, "height": height,
                               "interpolation": method, "expected": name})

# The paper's preprocessing: shorter side to 256 (torchvision's int() for the long side),
# then centre crop 224 with torchvision's rounding.
image = sources["src_300x200.png"]
h, w = image.shape[:2]
short, long_ = (w, h) if w <= h else (h, w)
new_long = int(256 * long_ / short)
size = (256, new_long) if w <= h else (new_long, 256)
resized = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
rh, rw = resized.shape[:2]
top, left = int(round((rh - 224) / 2.0)), int(round((rw - 224) / 2.0))
write_rgb_png("paper_300x200_256_224.png", resized[top:top + 224, left:left + 224])
manifest["paper"] = {"source": "src_300x200.png", "resize": 256, "crop": 224, "expected": "paper_300x200_256_224.png"}

# --- Decoding: many PNG flavours and JPEG kinds; expected = cv2.imread(IMREAD_COLOR) as RGB.
small = natural_like(19, 23)
variants = {}
variants["png_rgb16.png"] = lambda p: cv2.imwrite(p, cv2.cvtColor(small, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
                                                   + rng.integers(0, 200, size=small.shape, dtype=np.uint16))
variants["png_gray8.png"] = lambda p: cv2.imwrite(p, small[:, :, 0])
variants["png_gray16.png"] = lambda p: cv2.imwrite(p, small[:, :, 1].astype(np.uint16) * 256 + 77)
variants["png_rgba.png"] = lambda p: Image.fromarray(np.dstack([small, rng.integers(0, 256, size=small.shape[:2], dtype=np.uint8)]), "RGBA").save(p)
variants["png_gray_alpha.png"] = lambda p: Image.fromarray(np.dstack([small[:, :, 2], small[:, :, 0]]), "LA").save(p)
variants["png_palette.png"] = lambda p: Image.fromarray(small).quantize(colors=16).save(p)
variants["png_gray1bit.png"] = lambda p: Image.fromarray(small[:, :, 0] > 128).save(p)
variants["jpeg_baseline.jpg"] = lambda p: Image.fromarray(natural_like(40, 52)).save(p, quality=90)
variants["jpeg_progressive.jpg"] = lambda p: Image.fromarray(natural_like(40, 52)).save(p, quality=85, progressive=True)
variants["jpeg_gray.jpg"] = lambda p: Image.fromarray(natural_like(24, 30)[:, :, 1]).save(p, quality=90)
for name, write in variants.items():
    path = os.path.join(OUT, name)
    write(path)
    decoded = cv2.imread(path, cv2.IMREAD_COLOR)
    expected = "expected_" + os.path.splitext(name)[0] + ".png"
    cv2.imwrite(os.path.join(OUT, expected), decoded)  # BGR in memory -> RGB on disk
    manifest["decode"].append({"file": name, "expected": expected})

# Neither OpenCV nor Pillow writes Adam7-interlaced PNGs, so we build one by hand
# (filter 0 on every row of every pass).
import struct
import zlib


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def adam7(rgb):
    height, width = rgb.shape[:2]
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = rgb[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\x00" + row.tobytes()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")


with open(os.path.join(OUT, "png_interlaced.png"), "wb") as f:
    f.write(adam7(small))
decoded = cv2.imread(os.path.join(OUT, "png_interlaced.png"), cv2.IMREAD_COLOR)
assert decoded is not None and np.array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), small)
cv2.imwrite(os.path.join(OUT, "expected_png_interlaced.png"), decoded)
manifest["decode"].append({"file": "png_interlaced.png", "expected": "expected_png_interlaced.png"})

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
print("wrote", len(os.listdir(OUT)), "files to", OUT, "opencv", cv2.__version__)
