"""Feature extractors: the small classifier (shapes, training, save/load) and the FID Inception-v3 layout."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cleardiffusion import features as features_module
from cleardiffusion.data import ImageDataset, load_dataset
from cleardiffusion.errors import CheckpointError, UsageError
from cleardiffusion.evaluate import feature_statistics, frechet_distance
from cleardiffusion.features import (
    REFERENCE_DIR,
    REFERENCE_SHA256,
    ClassifierFeatures,
    SmallClassifier,
    _random_shift,
    classifier_accuracy,
    file_sha256,
    load_classifier,
    reference_classifier_path,
    save_classifier,
    train_classifier,
)
from cleardiffusion.inception import FIDInceptionV3, InceptionFeatures, load_inception

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _bars(n: int, seed: int) -> ImageDataset:
    """Two classes of 16x16 images: a horizontal or a vertical bar at a random position, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    pos = torch.randint(3, 13, (n,), generator=g)
    images = torch.randint(0, 60, (n, 1, 16, 16), generator=g).to(torch.uint8)
    for i in range(n):
        if labels[i] == 0:
            images[i, 0, pos[i] - 1 : pos[i] + 1, 2:14] = 255
        else:
            images[i, 0, 2:14, pos[i] - 1 : pos[i] + 1] = 255
    return ImageDataset(images, labels, ["horizontal", "vertical"], "bars")


def test_small_classifier_shapes():
    for c, size, k in ((1, 28, 10), (3, 32, 10), (3, 16, 4)):
        model = SmallClassifier(c, k, size).eval()
        x = torch.rand(5, c, size, size) * 2 - 1
        assert model.features(x).shape == (5, 128)
        assert model(x).shape == (5, k)


def test_random_shift_moves_each_image_by_at_most_two_pixels():
    x = -torch.ones(64, 1, 12, 12)
    x[:, 0, 6, 6] = 1.0
    shifted = _random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    where = (shifted[:, 0] == 1).nonzero()  # (64, 3): one bright pixel per image
    assert len(where) == 64
    assert (where[:, 1:] - 6).abs().max() <= 2 and len({tuple(w[1:].tolist()) for w in where}) > 10


def test_train_classifier_learns_bars_and_round_trips(tmp_path):
    train, test = _bars(512, 0), _bars(256, 1)
    model, acc = train_classifier(train, test, epochs=2, batch_size=32, lr=3e-3, progress=False)
    assert acc > 0.9
    path = tmp_path / "clf.pt"
    save_classifier(path, model, {"dataset": "bars", "test_accuracy": acc})
    assert [p.name for p in tmp_path.iterdir()] == ["clf.pt"]  # no temporary file left behind
    loaded, config = load_classifier(path)
    assert config["dataset"] == "bars" and config["test_accuracy"] == acc and config["in_channels"] == 1
    x = test.images[:8].float() / 127.5 - 1
    torch.testing.assert_close(loaded(x), model(x))
    features = ClassifierFeatures(loaded, "bars")
    f, logits = features.features_and_logits(test.images[:8])
    assert f.dtype == np.float64 and f.shape == (8, 128) and logits.shape == (8, 2)
    assert features.name == "classifier:bars" and len(features.weights_sha256) == 64


def test_load_classifier_errors(tmp_path):
    with pytest.raises(CheckpointError, match="train-classifier"):
        load_classifier(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a PyTorch file"):
        load_classifier(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a cleardiffusion classifier"):
        load_classifier(tmp_path / "foreign.pt")


def _fid_under_noise(extractor, reference: torch.Tensor, images: torch.Tensor, sigmas) -> list[float]:
    """FID of images + Gaussian noise of std sigma (in [-1, 1] units) against the reference images."""
    mu_r, sigma_r = feature_statistics(extractor(reference))
    g = torch.Generator().manual_seed(0)
    fids = []
    for s in sigmas:
        x = images.float() / 127.5 - 1 + s * torch.randn(images.shape, generator=g)
        noisy = ((x + 1) * 127.5).clamp(0, 255).round().to(torch.uint8)
        fids.append(frechet_distance(mu_r, sigma_r, *feature_statistics(extractor(noisy))))
    return fids


def test_fid_grows_with_noise_random_features():
    """Fixed random-conv features on synthetic bar images: FID increases monotonically with the noise."""
    torch.manual_seed(0)
    extractor = ClassifierFeatures(SmallClassifier(1, 2, 16, width=8).eval(), "random")
    fids = _fid_under_noise(extractor, _bars(600, 2).images, _bars(600, 3).images, [0.0, 0.1, 0.3, 0.6])
    assert all(a < b for a, b in zip(fids, fids[1:], strict=False)), fids


def test_fid_grows_with_noise_mnist():
    """Real MNIST through the shipped reference network: FID(test vs test) << FID(noisy test), monotone."""
    if not (DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not found under {DATA / 'mnist'}")
    test = load_dataset("mnist", DATA / "mnist", "test")
    model, _ = load_classifier(reference_classifier_path("mnist"))
    extractor = ClassifierFeatures(model, "mnist")
    fids = _fid_under_noise(extractor, test.images[:2000], test.images[5000:6000], [0.0, 0.2, 0.4, 0.8])
    assert all(a < b for a, b in zip(fids, fids[1:], strict=False)), fids
    assert 10 * fids[0] < fids[2], fids  # the real-vs-real floor is far below sigma = 0.4


# ---------------------------------------------------------------------------------------------- Inception


def test_inception_layout_matches_pytorch_fid_keys():
    state = FIDInceptionV3().state_dict()
    expected_shapes = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_4a_3x3.bn.running_var": (192,),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "fc.weight": (1008, 2048),
    }
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("AuxLogits") for k in state)
    assert (
        sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) == 23_850_960
    )  # torchvision inception_v3 without aux (23,834,568) + 8 more classes x 2049


def test_inception_round_trip_and_features(tmp_path):
    torch.manual_seed(0)
    model = FIDInceptionV3()
    path = tmp_path / "pt_inception.pth"
    torch.save(model.state_dict(), path)
    loaded = load_inception(path)
    extractor = InceptionFeatures(loaded, batch_size=2)
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)  # grayscale: repeated to RGB
    features, logits = extractor.features_and_logits(images)
    assert features.shape == (2, 2048) and logits.shape == (2, 1008) and np.isfinite(features).all()
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(features, model(images.repeat(1, 3, 1, 1))[0].double().numpy(), rtol=1e-5)


def test_inception_missing_or_foreign_file(tmp_path):
    with pytest.raises(UsageError, match="--inception PATH") as info:
        load_inception(tmp_path / "nope.pth")
    assert "pt_inception-2015-12-05-6726825d.pth" in str(info.value) and "https://" in str(info.value)
    with pytest.raises(UsageError, match="no --inception PATH was given"):
        load_inception(None)
    save_classifier(tmp_path / "clf.pt", SmallClassifier(1, 10, 28), {"dataset": "mnist"})
    with pytest.raises(CheckpointError, match="not the FID Inception"):
        load_inception(tmp_path / "clf.pt")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_classifier_with_non_finite_weights_is_refused_when_loaded(tmp_path, value):
    model = SmallClassifier(1, 10, 16)
    with torch.no_grad():
        model.head.weight[3, 5] = value  # one weight is enough to make every feature or logit non-finite
    save_classifier(tmp_path / "clf.pt", model, {"dataset": "mnist"})
    with pytest.raises(CheckpointError, match="NaN or inf.*head.weight.*train-classifier") as info:
        load_classifier(tmp_path / "clf.pt")
    assert "\n" not in str(info.value)


def test_inception_weights_with_nan_are_refused_when_loaded(tmp_path):
    state = FIDInceptionV3().state_dict()
    state["fc.bias"] = state["fc.bias"] * float("nan")
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match="NaN or inf.*fc.bias"):
        load_inception(tmp_path / "nan.pth")


# ---- the reference networks shipped with the package


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "cifar10"])
def test_shipped_reference_networks_match_their_digests(dataset):
    path = REFERENCE_DIR / f"{dataset}.pt"
    assert file_sha256(path) == REFERENCE_SHA256[dataset]
    assert reference_classifier_path(dataset) == path
    _, config = load_classifier(path)
    assert config["dataset"] == dataset and config["in_channels"] == (3 if dataset == "cifar10" else 1)
    assert config["image_size"] == (32 if dataset == "cifar10" else 28)
    assert path.stat().st_size < 1_500_000  # small enough to ship in the package


def test_no_reference_network_for_other_data():
    assert reference_classifier_path("folder") is None and reference_classifier_path("synthetic") is None


def test_a_tampered_or_missing_reference_network_is_refused_in_one_line(tmp_path, monkeypatch):
    data = bytearray((REFERENCE_DIR / "mnist.pt").read_bytes())
    data[len(data) // 2] ^= 1  # one flipped bit in the weights
    (tmp_path / "mnist.pt").write_bytes(bytes(data))
    monkeypatch.setattr(features_module, "REFERENCE_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="SHA-256 .* not the reference") as info:
        reference_classifier_path("mnist")
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="missing; reinstall"):
        reference_classifier_path("fashion-mnist")


def test_shipped_mnist_network_classifies_real_digits():
    if not (DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not found under {DATA / 'mnist'}")
    test = load_dataset("mnist", DATA / "mnist", "test")
    model, _ = load_classifier(reference_classifier_path("mnist"))
    assert classifier_accuracy(model, test.images[:2000], test.labels[:2000]) > 0.98
