"""The one scorer, `evaluate.score_features`: its mathematics, and `eval`, `--eval-every` and the experiments
giving the same FID for the same samples (they all score through it)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cleardiffusion import evaluate as M
from cleardiffusion.data import load_dataset, to_model_range
from cleardiffusion.evaluation_runner import evaluate_samples
from cleardiffusion.experiments.common import Context, write_idx
from cleardiffusion.experiments.scoring import Scorer
from cleardiffusion.features import SmallClassifier, save_classifier
from cleardiffusion.monitor import TrainingMonitor
from cleardiffusion.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def features(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_statistics_or_features_of_the_reference_give_the_same_scores():
    real, fake = features(200, 8, 0), features(150, 8, 1) + 0.3
    mu, sigma = M.feature_statistics(real)
    from_features = M.score_features(real, fake, seed=3)
    from_statistics = M.score_features({"mu": mu, "sigma": sigma, "features": real}, fake, seed=3)
    assert from_features == from_statistics
    assert set(from_features) == {"fid", "kid", "precision", "recall"} and set(from_features["kid"]) == {"mean", "std"}


def test_fid_of_a_shifted_copy_is_the_squared_shift():
    real = features(300, 6, 0)
    shift = np.array([0.5, -1.0, 0.0, 2.0, 0.0, 0.25])
    assert M.score_features(real, real, kid=False, pr=False)["fid"] == pytest.approx(0.0, abs=1e-9)
    # equal covariances: d^2 = ||mu1 - mu2||^2 + Tr(S + S - 2 S) = ||shift||^2 (Heusel et al. 2017, Eq. 6)
    fid = M.score_features(real, real + shift, kid=False, pr=False)["fid"]
    assert fid == pytest.approx(float(shift @ shift), rel=1e-9)


def test_score_features_computes_only_what_it_is_asked_and_refuses_what_it_cannot():
    real, fake = features(50, 4, 0), features(40, 4, 1)
    assert set(M.score_features(real, fake, kid=False, pr=False)) == {"fid"}
    assert set(M.score_features(real, fake, kid=False)) == {"fid", "precision", "recall"}
    mu, sigma = M.feature_statistics(real)
    assert set(M.score_features({"mu": mu, "sigma": sigma}, fake, kid=False, pr=False)) == {"fid"}
    for asked in ({}, {"pr": False}, {"kid": False}):  # either one needs the real features
        with pytest.raises(ValueError, match="KID and precision/recall need real feature vectors"):
            M.score_features({"mu": mu, "sigma": sigma}, fake, **asked)
    with pytest.raises(ValueError, match="feature dimension|must be"):
        M.score_features(real, features(40, 5, 1))


def test_score_features_passes_its_k_and_seed_to_the_metrics():
    """KID's subsets come from `seed` (0 by default) and precision/recall use `k`: the same numbers as the
    metric functions called directly with them."""
    real, fake = features(60, 4, 0), features(50, 4, 1) + 0.2
    for seed, k, kwargs in ((0, 3, {}), (5, 7, {"seed": 5, "k": 7})):
        got = M.score_features(real, fake, **kwargs)
        kid = M.kernel_inception_distance(real, fake, generator=torch.Generator().manual_seed(seed))
        assert (got["kid"]["mean"], got["kid"]["std"]) == kid
        assert (got["precision"], got["recall"]) == M.precision_recall(real, fake, k=k)
    assert M.precision_recall(real, fake, k=7) != M.precision_recall(real, fake, k=3)  # k matters here


def test_softmax_rows_sum_to_one_and_keep_the_order():
    p = M.softmax(np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]]))  # no overflow at 1000
    assert np.allclose(p.sum(1), 1) and p[0, 0] == pytest.approx(1.0) and (np.diff(p[1]) > 0).all()


# ---- eval, --eval-every and the experiments: one FID for the same samples


def squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """12x12 images: class k is a centred 6x6 square of brightness 25 (k + 1) on noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 40, (n, 12, 12)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 3:9, 3:9] = 25 * (k + 1)
    return images, labels


def test_eval_monitor_and_experiments_give_the_same_fid_for_the_same_samples(tmp_path, monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setenv("CLEARDIFFUSION_CACHE", str(tmp_path / "cache"))  # where --eval-every caches statistics
    folder = tmp_path / "digits"
    write_idx(folder, "train", *squares(300, 0))
    write_idx(folder, "t10k", *squares(50, 1))
    classifier = tmp_path / "clf.pt"
    save_classifier(classifier, SmallClassifier(1, 10, 12), {"dataset": "mnist"})  # untrained: any fixed features do
    images, _ = squares(40, 2)
    samples = torch.from_numpy(images)[:, None]  # (40, 1, 12, 12) uint8

    by_eval = evaluate_samples(samples, None, "mnist", folder, classifier_path=classifier, cache_dir=tmp_path / "cache")

    ctx = Context(name="x", out=tmp_path, cache=tmp_path / "cache", size="full", dataset="mnist", loader="mnist",
                  data_dir=folder, data_note="", data_key="k", device=torch.device("cpu"), device_arg="cpu", seed=0,
                  command="", classifier_path=classifier)  # fmt: skip
    by_experiment = Scorer(ctx)(samples)

    config = TrainConfig(dataset="mnist", data_dir=str(folder), eval_every=1, eval_n=len(samples),
                         classifier=str(classifier))  # fmt: skip
    monitor = TrainingMonitor(config, load_dataset("mnist", folder, "train"), Path(tmp_path), torch.device("cpu"))
    monkeypatch.setattr(TrainingMonitor, "_sampling_parts", lambda self, ema, schedule: (ema, schedule))
    monkeypatch.setattr("cleardiffusion.generate.generate_images", lambda *a, **k: iter([to_model_range(samples)]))
    by_monitor = monitor.evaluate(torch.nn.Identity(), None)

    assert by_eval["fid"] > 0
    assert by_experiment["fid"] == pytest.approx(by_eval["fid"], rel=1e-12)
    assert by_monitor["fid"] == pytest.approx(by_eval["fid"], rel=1e-12)
    assert by_experiment["kid"] == pytest.approx(by_eval["kid"]["mean"], rel=1e-12)
    assert (by_experiment["precision"], by_experiment["recall"]) == (by_eval["precision"], by_eval["recall"])
