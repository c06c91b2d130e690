"""Metrics against closed forms: FID of Gaussians, KID unbiasedness, precision/recall, inception score."""

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

from cleardiffusion.evaluate import (
    class_accuracy,
    class_histogram,
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _random_spd(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


# ---------------------------------------------------------------------------------------------- FID


def test_frechet_distance_diagonal_closed_form():
    """Diagonal covariances commute: Tr((S1 S2)^{1/2}) = sum_i sqrt(a_i b_i)."""
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 3, 16), rng.uniform(0.1, 3, 16)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    expected = ((mu1 - mu2) ** 2).sum() + a.sum() + b.sum() - 2 * np.sqrt(a * b).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_2x2_closed_form():
    """For 2x2 PSD M = S1 S2: Tr(M^{1/2}) = sqrt(Tr M + 2 sqrt(det M)) (Cayley-Hamilton)."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        s1, s2 = _random_spd(2, rng), _random_spd(2, rng)
        mu1, mu2 = rng.normal(size=2), rng.normal(size=2)
        m = s1 @ s2
        tr_sqrt = np.sqrt(np.trace(m) + 2 * np.sqrt(np.linalg.det(m)))
        expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_frechet_distance_matches_product_eigenvalues():
    """Non-diagonal D = 20: compare with eigenvalues of the non-symmetric product S1 S2 (eigvals)."""
    rng = np.random.default_rng(2)
    s1, s2 = _random_spd(20, rng), _random_spd(20, rng)
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    tr_sqrt = np.sqrt(np.linalg.eigvals(s1 @ s2).real.clip(0)).sum()
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2) - 2 * tr_sqrt
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-9)


def test_fid_of_identical_sets_is_zero_even_when_singular():
    f = np.random.default_rng(3).normal(size=(50, 64))  # N < D: singular covariance
    mu, sigma = feature_statistics(f)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_feature_statistics_matches_numpy():
    f = np.random.default_rng(4).normal(size=(100, 5))
    mu, sigma = feature_statistics(torch.from_numpy(f).float())
    np.testing.assert_allclose(mu, f.mean(0), rtol=1e-6)
    np.testing.assert_allclose(sigma, np.cov(f, rowvar=False), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.zeros(3), np.eye(3), np.zeros(4), np.eye(3)), "mu2 must have length 3"),
        ((np.zeros(3), np.eye(2), np.zeros(3), np.eye(3)), r"sigma1 must be \(3, 3\)"),
        ((np.zeros((3, 1)), np.eye(3), np.zeros(3), np.eye(3)), "mu1 must be a 1-D mean"),
        ((np.zeros(3), np.eye(3), np.zeros((3, 1)), np.eye(3)), "mu2 must be a 1-D mean"),
        ((np.zeros(3), np.zeros(3), np.zeros(3), np.eye(3)), "sigma1 must be a 2-D"),
        ((np.zeros(3), np.eye(3), np.zeros(3), np.zeros(3)), "sigma2 must be a 2-D"),
        ((np.array([0, np.nan, 0]), np.eye(3), np.zeros(3), np.eye(3)), "NaN"),
    ],
)
def test_frechet_distance_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(*args)


def test_feature_statistics_rejects_bad_input():
    with pytest.raises(ValueError, match="features must be a 2-D"):
        feature_statistics(np.zeros((4, 2, 2)))
    with pytest.raises(ValueError, match="NaN or inf"):
        feature_statistics(np.array([[0.0, np.inf], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(np.zeros((1, 3)))
    for empty in ((0, 3), (3, 0)):
        with pytest.raises(ValueError, match=r"features is empty"):
            feature_statistics(np.zeros(empty))
    with pytest.raises(ValueError, match="features must be numeric"):
        feature_statistics(np.array([["a", "b"], ["c", "d"]]))


def test_smallest_valid_inputs_and_tensors_that_require_grad():
    """Two vectors of one feature are enough for a covariance; a tensor fresh from a network (requires_grad)
    is detached, not refused; the frechet distance of such tensors is the numpy one."""
    f = torch.tensor([[1.0], [3.0]], requires_grad=True)
    mu, sigma = feature_statistics(f)
    assert mu.tolist() == [2.0] and sigma.tolist() == [[2.0]]
    d = frechet_distance(torch.tensor([0.0, 1.0], requires_grad=True), np.eye(2), np.zeros(2), 4 * np.eye(2))
    assert d == pytest.approx(1 + 2 * (1 + 4 - 2 * 2), rel=1e-12)  # ||mu||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2)


# ---------------------------------------------------------------------------------------------- KID


def naive_kid(x: np.ndarray, y: np.ndarray) -> float:
    """Binkowski et al. 2018, Eq. 4 term by term: the unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3."""
    d, m, n = x.shape[1], len(x), len(y)
    k = lambda a, b: (float(np.dot(a, b)) / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_a_term_by_term_implementation():
    """Whole sets as the one subset (subset_size >= N): exactly Eq. 4 with the cubic kernel, unequal sizes."""
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(7, 3)), 0.5 + 1.5 * rng.normal(size=(5, 3))
    mean, std = kernel_inception_distance(x, y, num_subsets=2, subset_size=50)
    assert mean == pytest.approx(naive_kid(x, y), rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    assert kernel_inception_distance(y, x, num_subsets=1)[0] == pytest.approx(naive_kid(y, x), rel=1e-12)


def test_kid_subsets_are_draws_without_replacement_from_the_generator():
    """With subsets smaller than the sets, each is a random permutation's first m (resp. n) rows; mean and
    (population) std are over the subsets' MMD^2."""
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(9, 4)), rng.normal(size=(6, 4)) + 0.3
    mean, std = kernel_inception_distance(x, y, 4, 5, generator=torch.Generator().manual_seed(3))  # 4 subsets of 5
    g = torch.Generator().manual_seed(3)
    values = []
    for _ in range(4):
        i, j = torch.randperm(9, generator=g)[:5], torch.randperm(6, generator=g)[:5]
        values.append(naive_kid(x[i.numpy()], y[j.numpy()]))
    assert mean == pytest.approx(np.mean(values), rel=1e-12) and std == pytest.approx(np.std(values), rel=1e-9)
    assert std > 0  # the subsets really differ


def test_kid_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    g = torch.Generator().manual_seed(0)
    mean, std = kernel_inception_distance(x, y, num_subsets=30, subset_size=300, generator=g)
    assert abs(mean) < 3 * std
    shifted, _ = kernel_inception_distance(x, y + 0.5, num_subsets=30, subset_size=300, generator=g)
    assert shifted > 10 * std and shifted > 0


def test_kid_unbiased_where_the_biased_estimator_is_not():
    """Averaged over many tiny subsets (n = 5), KID stays near 0 (a biased MMD^2 would not)."""
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(400, 4)), rng.normal(size=(400, 4))
    mean, std = kernel_inception_distance(x, y, num_subsets=2000, subset_size=5, generator=torch.Generator())
    assert abs(mean) < 4 * std / np.sqrt(2000)


def test_kid_defaults_and_limits():
    """The defaults are Binkowski et al.'s 100 subsets of 1,000; one subset of two vectors of one feature is
    the least that works; fewer refuses, naming the set."""
    defaults = inspect.signature(kernel_inception_distance).parameters
    assert (defaults["num_subsets"].default, defaults["subset_size"].default) == (100, 1000)
    x = np.random.default_rng(14).normal(size=(5, 2))
    tiny = np.array([[0.0], [1.0]])
    assert kernel_inception_distance(tiny, tiny + 1, 1, 2)[0] == pytest.approx(naive_kid(tiny, tiny + 1), rel=1e-12)
    for bad in ((0, 2), (1, 1)):
        with pytest.raises(ValueError, match="num_subsets >= 1 and subset_size >= 2"):
            kernel_inception_distance(tiny, tiny, *bad)
    for a, b in ((tiny[:1], tiny), (tiny, tiny[:1])):
        with pytest.raises(ValueError, match="at least 2 feature vectors in each set"):
            kernel_inception_distance(a, b)
    with pytest.raises(ValueError, match="f1 has feature dimension 1 but f2 has 2"):
        kernel_inception_distance(tiny, x)
    for bad, name in ((x[:, :1] * np.nan, "f1"), (np.zeros((0, 1)), "f1")):
        with pytest.raises(ValueError, match=name):
            kernel_inception_distance(bad, tiny)
    with pytest.raises(ValueError, match="f2 is empty"):
        kernel_inception_distance(tiny, np.zeros((0, 1)))


def test_kid_caps_subsets_and_validates():
    x = np.random.default_rng(7).normal(size=(30, 8))
    y = x + 0.1
    # subset_size 1000 > 30 is capped to the whole sets: every subset is the same, the seed irrelevant
    a = kernel_inception_distance(x, y, num_subsets=3, subset_size=1000, generator=torch.Generator().manual_seed(1))
    b = kernel_inception_distance(x, y, num_subsets=3, subset_size=1000, generator=torch.Generator().manual_seed(2))
    assert a[0] == pytest.approx(b[0], rel=1e-12) and a[1] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="feature dimension"):
        kernel_inception_distance(x, x[:, :4])


# -------------------------------------------------------------------------------- precision / recall


def naive_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Kynkaanniemi et al. 2019, Eqs. 1-3 with loops: a sample is on a manifold when it lies within the distance
    from some reference point to that point's k-th nearest neighbour among the other reference points."""

    def on_manifold(q, refs):
        radii = [sorted(np.linalg.norm(refs - r, axis=1))[k] for r in refs]  # [0] is the point itself
        return any(np.linalg.norm(q - r) <= radius for r, radius in zip(refs, radii))

    return np.mean([on_manifold(f, real) for f in fake]), np.mean([on_manifold(r, fake) for r in real])


@pytest.mark.parametrize("k", [2, 3])
def test_precision_recall_match_a_loop_over_the_definition(k):
    rng = np.random.default_rng(25)
    real, fake = rng.normal(size=(15, 3)), 0.6 * rng.normal(size=(12, 3)) + 1.2
    expected = naive_precision_recall(real, fake, k)
    # partial coverage that moves with the radius: the (k-1)-th or (k+1)-th neighbour gives other values
    assert all(expected != naive_precision_recall(real, fake, other) for other in (k - 1, k + 1))
    assert precision_recall(real, fake, k=k, block=4) == pytest.approx(expected, abs=1e-12)


def test_precision_recall_boundary_and_defaults():
    """A sample exactly at a reference point's k-NN radius is inside (Eq. 2's <=), in float64: 0.1^2 is
    not a float32 number. k defaults to 3 and may go up to min(N_real, N_fake) - 1."""
    real = np.array([[0.0], [0.1]])
    assert precision_recall(real, np.array([[-0.1], [5.0]]), k=1)[0] == 0.5  # -0.1 in, 5.0 out
    rng = np.random.default_rng(15)
    a, b = rng.normal(size=(15, 3)), rng.normal(size=(12, 3)) + 0.8
    assert precision_recall(a, b) == pytest.approx(naive_precision_recall(a, b, 3), abs=1e-12)
    assert precision_recall(a, b, k=11) == pytest.approx(naive_precision_recall(a, b, 11), abs=1e-12)
    for k in (0, 12):
        with pytest.raises(ValueError, match=r"k must be in \[1, min\(N_real, N_fake\) - 1\]"):
            precision_recall(a, b, k=k)
    with pytest.raises(ValueError, match="real_features has feature dimension 3 but fake_features has 2"):
        precision_recall(a, b[:, :2])
    for args, name in (((a[:0], b), "real_features"), ((a, b[:0]), "fake_features")):
        with pytest.raises(ValueError, match=f"{name} is empty"):
            precision_recall(*args)


def test_precision_recall_identical_sets_are_one():
    f = np.random.default_rng(8).normal(size=(300, 10))
    assert precision_recall(f, f, k=3) == (1.0, 1.0)


def test_precision_recall_disjoint_clusters_and_partial_coverage():
    rng = np.random.default_rng(9)
    real = rng.normal(size=(500, 2))
    assert precision_recall(real, rng.normal(size=(500, 2)) + 50.0) == (0.0, 0.0)
    # Fakes covering only half of the real modes: precision stays high, recall drops to about a half.
    real2 = np.concatenate([rng.normal(size=(500, 2)), rng.normal(size=(500, 2)) + 50])
    precision, recall = precision_recall(real2, rng.normal(size=(500, 2)), k=3, block=128)
    assert precision > 0.9 and 0.4 < recall < 0.6


def test_precision_recall_blocks_do_not_change_the_result():
    rng = np.random.default_rng(10)
    real, fake = rng.normal(size=(700, 6)), rng.normal(size=(600, 6)) * 1.3
    assert precision_recall(real, fake, block=64) == precision_recall(real, fake, block=4096)


# ---------------------------------------------------------------------------------------------- scores


def test_inception_score_extremes():
    k = 10
    one_hot = np.eye(k)[np.arange(1000) % k]  # confident, balanced
    mean, std = inception_score(one_hot, splits=10)
    assert mean == pytest.approx(k) and std == pytest.approx(0.0, abs=1e-9)
    constant = np.tile(np.eye(k)[3], (1000, 1))  # every sample the same class
    assert inception_score(constant)[0] == pytest.approx(1.0)
    uniform = np.full((1000, k), 1 / k)  # unconfident
    assert inception_score(uniform)[0] == pytest.approx(1.0)


def naive_inception_score(probs: np.ndarray, splits: int) -> tuple[float, float]:
    """Salimans et al. 2016: exp of the MEAN over samples of KL(p(y|x) || p(y)), per split (numpy's
    array_split sizes); then the mean and std of the splits' scores. 0 log 0 = 0."""
    scores = []
    for part in np.array_split(probs, splits):
        p_y = part.mean(axis=0)
        kls = [sum(p * np.log(p / q) for p, q in zip(row, p_y) if p > 0) for row in part]
        scores.append(np.exp(np.mean(kls)))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_a_loop_over_the_definition():
    rng = np.random.default_rng(13)
    probs = rng.dirichlet(np.full(5, 0.4), size=23)
    probs[:4, 2] = 0.0  # exact zeros: the 0 log 0 = 0 convention
    probs /= probs.sum(axis=1, keepdims=True)
    for splits in (1, 4):  # 4 splits of 23: sizes 6, 6, 6, 5
        mean, std = inception_score(probs, splits=splits)
        expected = naive_inception_score(probs, splits)
        assert mean == pytest.approx(expected[0], rel=1e-12) and std == pytest.approx(expected[1], rel=1e-9, abs=1e-15)
    assert inception_score(probs, splits=4)[1] > 0


def test_inception_score_defaults_limits_and_bad_input():
    probs = np.random.default_rng(16).dirichlet(np.ones(5), size=23)
    assert inception_score(probs) == inception_score(probs, splits=10)
    assert inception_score(probs, splits=23)[0] == pytest.approx(1.0)  # one sample per split: p(y) = p(y|x)
    assert inception_score(probs, splits=1) == pytest.approx(naive_inception_score(probs, 1), rel=1e-12)
    for splits in (0, 24):
        with pytest.raises(ValueError, match=r"splits must be in \[1, N=23\]"):
            inception_score(probs, splits=splits)
    with pytest.raises(ValueError, match="softmax"):
        inception_score(np.random.default_rng(0).normal(size=(20, 10)))
    negative = np.array([[1.5, -0.5], [0.5, 0.5]])  # rows sum to 1, one entry below 0
    off = np.array([[0.5, 0.51], [0.5, 0.5]])  # non-negative, a row sums to 1.01
    for bad in (negative, off):
        with pytest.raises(ValueError, match="softmax"):
            inception_score(bad, splits=1)
    assert inception_score(np.array([[0.5, 0.5005], [0.5, 0.5]]), splits=1)[0] > 0  # float32 round-off passes
    with pytest.raises(ValueError, match="probs contains NaN"):
        inception_score(np.full((2, 2), np.nan))


def test_class_accuracy_and_histogram():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 0.0]])
    assert class_accuracy(logits, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert class_histogram(np.array([0, 2, 2, 1, 2]), 4) == [1, 1, 3, 0]
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        class_histogram(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        class_accuracy(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        class_accuracy(logits, np.array([[0, 1, 1]]))
    with pytest.raises(ValueError, match="probs_or_logits must be a 2-D"):
        class_accuracy(logits[0], np.array([0]))
    for bad in (np.zeros((2, 2), dtype=int), np.array([0.0, 1.0])):
        with pytest.raises(ValueError, match="1-D integer array"):
            class_histogram(bad, 3)
