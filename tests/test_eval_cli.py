"""`cleardiffusion train-classifier` and `cleardiffusion eval` end to end on tiny digits in MNIST's format."""

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from cleardiffusion import features
from cleardiffusion.cli import main
from cleardiffusion.features import REFERENCE_DIR, REFERENCE_SHA256

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def write_split(folder, prefix, n, seed):
    """n 12x12 images: class k is a centred 6x6 square of brightness 25 (k + 1), with pixel noise.

    (Shift-invariant on purpose: the classifier trains with small random shifts.)"""
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.uint8) % 10
    images = rng.integers(0, 40, (n, 12, 12)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 3:9, 3:9] = 25 * (int(k) + 1)
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(struct.pack(">IIII", 0x803, n, 12, 12) + images.tobytes())
    )
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(struct.pack(">II", 0x801, n) + labels.tobytes())
    )
    return images, labels


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("digits")
    write_split(folder, "train", 2000, 0)
    test_images, test_labels = write_split(folder, "t10k", 200, 1)
    classifier = folder / "clf.pt"
    argv = ["train-classifier", "--dataset", "mnist", "--data-dir", str(folder), "--out", str(classifier),
            "--epochs", "3", "--batch-size", "32"]  # fmt: skip
    assert main(argv) == 0
    return folder, classifier, test_images, test_labels


def evaluate(folder, classifier, samples, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    argv = ["eval", "--dataset", "mnist", "--data-dir", str(folder), "--samples", str(samples),
            "--classifier", str(classifier), "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    return printed


def test_eval_prints_one_json_with_every_metric(digits, tmp_path, capsys):
    folder, classifier, images, labels = digits
    np.savez(tmp_path / "real.npz", images=images[..., None], labels=labels)
    real = evaluate(folder, classifier, tmp_path / "real.npz", tmp_path, capsys)
    for key in ("fid", "kid", "precision", "recall", "score", "class_histogram", "accuracy", "n", "features"):
        assert key in real, key
    assert real["n"] == 200 and "classifier" in real["features"]
    assert real["accuracy"] > 0.9  # the bars are easy: the classifier must get them right

    noisy = np.clip(images + np.random.default_rng(2).normal(0, 60, images.shape), 0, 255).astype(np.uint8)
    np.savez(tmp_path / "noisy.npz", images=noisy[..., None])
    worse = evaluate(folder, classifier, tmp_path / "noisy.npz", tmp_path, capsys)
    assert worse["fid"] > 5 * real["fid"] and worse.get("accuracy") is None  # no labels, no accuracy


def test_eval_rejects_wrong_channels_and_non_finite_samples(digits, tmp_path, capsys):
    folder, classifier, images, _ = digits
    np.savez(tmp_path / "rgb.npz", images=np.repeat(images[..., None], 3, axis=-1))
    np.savez(tmp_path / "nan.npz", images=np.full((4, 12, 12, 1), np.nan, dtype=np.float32))
    for name in ("rgb.npz", "nan.npz"):
        argv = ["eval", "--dataset", "mnist", "--data-dir", str(folder), "--samples", str(tmp_path / name),
                "--classifier", str(classifier), "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error" in err


def test_eval_of_mnist_uses_the_shipped_network_by_default(tmp_path, capsys):
    """Real digits (400 of MNIST's test split, as a small MNIST folder) scored without --classifier."""
    if not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not found under {MNIST}")
    from cleardiffusion.data import load_dataset

    test = load_dataset("mnist", MNIST, "test")
    images, labels = test.images[:400, 0].numpy(), test.labels[:400].numpy().astype(np.uint8)
    for prefix, part in (("train", slice(0, 200)), ("t10k", slice(200, 400))):
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">IIII", 0x803, 200, 28, 28) + images[part].tobytes())
        )
        (tmp_path / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">II", 0x801, 200) + labels[part].tobytes())
        )
    np.savez(tmp_path / "s.npz", images=images[200:, ..., None], labels=labels[200:])
    argv = ["eval", "--dataset", "mnist", "--data-dir", str(tmp_path), "--samples", str(tmp_path / "s.npz"),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["features_sha256"] == REFERENCE_SHA256["mnist"]
    assert result["accuracy"] > 0.95  # real digits through the reference network


def test_eval_refuses_a_tampered_reference_network_or_data_it_does_not_fit(digits, tmp_path, capsys, monkeypatch):
    folder, _, images, _ = digits
    np.savez(tmp_path / "s.npz", images=images[..., None])
    argv = ["eval", "--dataset", "mnist", "--data-dir", str(folder), "--samples", str(tmp_path / "s.npz"),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert main(argv) == 2  # 12x12 digits: the shipped 28x28 network does not fit them
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "28x28" in err and "--classifier" in err
    data = bytearray((REFERENCE_DIR / "mnist.pt").read_bytes())
    data[-100] ^= 1
    (tmp_path / "mnist.pt").write_bytes(bytes(data))
    monkeypatch.setattr(features, "REFERENCE_DIR", tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "SHA-256" in err and "Traceback" not in err


def test_a_classifier_for_an_image_folder_is_the_reference_its_digest_names(tmp_path, capsys):
    """Other data: train-classifier --dataset folder, then eval with --classifier FILE (required there)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 20)):
        for k, name in enumerate(("dark", "light")):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for i in range(n // 2):
                pixels = rng.integers(0, 100, (16, 16)) + 120 * k
                Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "data" / split / name / f"{i}.png")
    data, clf = str(tmp_path / "data"), str(tmp_path / "clf.pt")
    assert main(["train-classifier", "--dataset", "folder", "--data-dir", data, "--out", clf, "--epochs", "1",
                 "--batch-size", "8"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    digest = features.file_sha256(clf)
    assert digest in printed and f"--classifier {clf}" in printed
    samples = np.stack([np.asarray(Image.open(p)) for p in sorted((tmp_path / "data" / "test").rglob("*.png"))])
    np.savez(tmp_path / "s.npz", images=samples[..., None])
    argv = ["eval", "--dataset", "folder", "--data-dir", data, "--samples", str(tmp_path / "s.npz"),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert main(argv) == 2  # no network ships for an image folder
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--classifier FILE" in err
    assert main([*argv, "--classifier", clf]) == 0
    assert json.loads(capsys.readouterr().out)["features_sha256"] == digest
