"""Builds SVHN-layout .mat files with scipy from real images (the foolbox CIFAR-10 sample PNGs):
X is 32 x 32 x 3 x N uint8, y is N x 1 double with 10 standing for digit 0.

usage: svhn_mat.py PNG_DIR OUT_DIR   (writes train_32x32.mat compressed, test_32x32.mat not)
"""
import sys
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

png_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
files = sorted(png_dir.glob("cifar10_*.png"), key=lambda p: int(p.stem.split("_")[1]))
images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files], axis=-1)  # 32,32,3,N
labels = np.array([[float(int(f.stem.split("_")[2]) or 10)] for f in files])  # digit 0 -> 10
scipy.io.savemat(out / "train_32x32.mat", {"X": images[..., :12], "y": labels[:12]}, do_compression=True)
scipy.io.savemat(out / "test_32x32.mat", {"X": images[..., 12:], "y": labels[12:]}, do_compression=False)
