"""Writes a miniature ImageNet devkit for the FlatImageNetFolder / MATFile tests.

meta.mat mirrors the devkit's data/meta.mat layout (a 1-D struct array `synsets` with fields
ILSVRC2012_ID, WNID, words, gloss, num_children, children, wordnet_height,
num_train_images), written by SciPy's MAT-5 writer, compressed and uncompressed, with a few
leaf synsets in devkit ID order (not sorted by WordNet id) and one non-leaf entry.
    python3 Tools/reference/make_devkit_fixture.py
"""
import pathlib

import numpy as np
import scipy.io

out = pathlib.Path(__file__).resolve().parents[2] / "Tests" / "ModelZooTests" / "Fixtures" / "devkit"
out.mkdir(parents=True, exist_ok=True)

# (ILSVRC2012_ID, WNID, words): the devkit's first IDs, then a non-leaf synset.
synsets = [
    (1, "n02119789", "kit fox, Vulpes macrotis", 0),
    (2, "n02100735", "English setter", 0),
    (3, "n02110185", "Siberian husky", 0),
    (4, "n02096294", "Australian terrier", 0),
    (1001, "n00001740", "entity", 3),
]
dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"), ("num_children", "O"),
         ("children", "O"), ("wordnet_height", "O"), ("num_train_images", "O")]
table = np.zeros((len(synsets),), dtype=dtype)
for row, (ident, wnid, words, children) in enumerate(synsets):
    table[row] = (np.array([[ident]], dtype=np.float64), wnid, words, "a gloss, with punctuation.",
                  np.array([[children]], dtype=np.float64),
                  np.arange(1, children + 1, dtype=np.float64).reshape(1, -1) if children else np.zeros((0, 0)),
                  np.array([[0]], dtype=np.float64), np.array([[1300 if ident < 1000 else 0]], dtype=np.float64))

scipy.io.savemat(out / "meta.mat", {"synsets": table}, do_compression=True)
scipy.io.savemat(out / "meta_uncompressed.mat", {"synsets": table}, do_compression=False)
# Ground truth for ILSVRC2012_val_00000001..6, in devkit IDs.
(out / "ground_truth.txt").write_text("3\n1\n4\n2\n2\n1\n")
# Check with SciPy's reader what the Swift reader must find.
check = scipy.io.loadmat(out / "meta.mat", squeeze_me=True)["synsets"]
print([(int(s[0]), str(s[1])) for s in check])
print("wrote", out)
