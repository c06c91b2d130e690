"""Sample-quality metrics as pure functions of feature vectors and class probabilities (no I/O).

| function                    | metric                                  | paper                              |
|-----------------------------|-----------------------------------------|------------------------------------|
| `frechet_distance`          | FID, Frechet distance of two Gaussians  | Heusel et al. 2017, Eq. 6          |
| `kernel_inception_distance` | KID, unbiased MMD^2, cubic kernel       | Binkowski et al. 2018, Sec. 3      |
| `precision_recall`          | improved precision and recall (k-NN)    | Kynkaanniemi et al. 2019, Eq. 1-3  |
| `inception_score`           | IS = exp(E_x KL(p(y|x) || p(y)))        | Salimans et al. 2016, Sec. 4       |
| `score_features`            | FID (+ KID, precision and recall)       | the first three, in one call       |

`score_features` is the one scorer: `eval`, `train --eval-every` and the experiments all compute their FID there.
Features are (N, D) arrays (numpy or torch); all arithmetic that accumulates (means, covariances, matrix
square roots, kernel sums, distances) runs in float64. Bad input raises ValueError naming the problem.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _as_matrix(x: ArrayLike, name: str) -> np.ndarray:
    """Check that `x` is a finite (N, D) array and return it as float64 numpy."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) array of feature vectors, got shape {tuple(a.shape)}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(a.shape)}); pass at least one feature vector")
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf ({int((~np.isfinite(a)).sum())} entries); check the samples")
    return a


def _same_dim(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_a} has feature dimension {a.shape[1]} but {name_b} has {b.shape[1]}; "
            "compute both with the same feature extractor"
        )


# ----------------------------------------------------------------------------------------------------------
# FID: Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium"


def feature_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean mu (D,) and unbiased covariance Sigma (D, D) of (N, D) features, in float64."""
    f = _as_matrix(features, "features")
    if f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {f.shape[0]}")
    mu = f.mean(axis=0)
    centred = f - mu  # (N, D)
    sigma = centred.T @ centred / (f.shape[0] - 1)  # (D, D), same as np.cov(f, rowvar=False)
    return mu, sigma


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix from its eigendecomposition, negative round-off clamped."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})  (Heusel et al. 2017, Eq. 6).

    Tr((S1 S2)^{1/2}) is the sum of the square roots of the eigenvalues of S1 S2. S1 S2 is not symmetric,
    so a general matrix square root (scipy.linalg.sqrtm, a Schur method) can return complex round-off and
    is slow. Instead we use M = S1^{1/2} S2 S1^{1/2}: it is similar to S1 S2 (same eigenvalues), symmetric and
    positive semi-definite, so `eigvalsh` gives real eigenvalues in a backward-stable way. Covariances of
    N < D samples are singular, so eigenvalues that round-off makes slightly negative are clamped to zero.
    """
    m1, m2 = (np.atleast_1d(_as_vector(m, n)) for m, n in ((mu1, "mu1"), (mu2, "mu2")))
    s1, s2 = _as_matrix(sigma1, "sigma1"), _as_matrix(sigma2, "sigma2")
    d = m1.shape[0]
    for s, n in ((s1, "sigma1"), (s2, "sigma2")):
        if s.shape != (d, d):
            raise ValueError(f"{n} must be ({d}, {d}) to match mu1 of length {d}, got {s.shape}")
    if m2.shape != (d,):
        raise ValueError(f"mu2 must have length {d} like mu1, got shape {m2.shape}")
    sqrt_s1 = _sqrt_psd(s1)
    m = sqrt_s1 @ s2 @ sqrt_s1  # (D, D), symmetric PSD, eigenvalues = those of S1 S2
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = m1 - m2
    fid = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean
    return float(max(fid, 0.0))  # >= 0 in exact arithmetic; only round-off can push it below


def _as_vector(x: ArrayLike, name: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D mean vector, got shape {tuple(a.shape)}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


# ----------------------------------------------------------------------------------------------------------
# KID: Binkowski et al. 2018, "Demystifying MMD GANs", Sec. 3 and Appendix D


def _polynomial_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3; x (m, D), y (n, D) in float64."""
    d = x.shape[1]
    m, n = x.shape[0], y.shape[0]

    def cubic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # k * k^2: half the time of pow_(3) here
        k = (a @ b.T).div_(d).add_(1)
        return k.mul_(k.square())

    k_xx, k_yy, k_xy = cubic(x, x), cubic(y, y), cubic(x, y)  # (m, m), (n, n), (m, n)
    # The unbiased estimator drops the diagonal terms k(x_i, x_i) of the within-set sums.
    sum_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    sum_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(sum_xx + sum_yy - 2 * k_xy.mean())


def kernel_inception_distance(
    f1: ArrayLike,
    f2: ArrayLike,
    num_subsets: int = 100,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """KID: mean and std over random subsets of the unbiased MMD^2 (Binkowski et al. 2018).

    Each subset draws min(subset_size, N) vectors from each set without replacement; generator makes the
    draw reproducible. KID is unbiased, so it can be slightly negative for two samples of one distribution.
    """
    x_all = torch.from_numpy(_as_matrix(f1, "f1"))
    y_all = torch.from_numpy(_as_matrix(f2, "f2"))
    _same_dim(x_all.numpy(), y_all.numpy(), "f1", "f2")
    if num_subsets < 1 or subset_size < 2:
        raise ValueError(f"need num_subsets >= 1 and subset_size >= 2, got {num_subsets}, {subset_size}")
    if x_all.shape[0] < 2 or y_all.shape[0] < 2:
        raise ValueError("KID needs at least 2 feature vectors in each set")
    m, n = min(subset_size, x_all.shape[0]), min(subset_size, y_all.shape[0])
    mmds = []
    for _ in range(num_subsets):
        i = torch.randperm(x_all.shape[0], generator=generator)[:m]
        j = torch.randperm(y_all.shape[0], generator=generator)[:n]
        mmds.append(_polynomial_mmd2(x_all[i], y_all[j]))
    values = np.asarray(mmds)
    return float(values.mean()), float(values.std())


# ----------------------------------------------------------------------------------------------------------
# Precision and recall: Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
# Generative Models". A sample lies on a manifold if it falls inside the k-NN ball of some reference point.


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a_i - b_j||^2 for a (m, D), b (n, D) -> (m, n), clamped at zero against round-off."""
    return (a.square().sum(1, keepdim=True) + b.square().sum(1) - 2 * a @ b.T).clamp_(min=0)


def _knn_radii2(f: torch.Tensor, k: int, block: int) -> torch.Tensor:
    """Squared distance from each row of f to its k-th nearest other row (Eq. 1's NN_k radius)."""
    radii = torch.empty(f.shape[0], dtype=f.dtype)
    for s in range(0, f.shape[0], block):
        d2 = _squared_distances(f[s : s + block], f)  # (b, N); includes each point's own zero distance
        radii[s : s + block] = d2.topk(k + 1, dim=1, largest=False).values[:, k]  # k+1-th smallest
    return radii


def _coverage(queries: torch.Tensor, refs: torch.Tensor, radii2: torch.Tensor, block: int) -> float:
    """Fraction of queries within the k-NN ball of at least one reference point (Eq. 2)."""
    inside = 0
    for s in range(0, queries.shape[0], block):
        d2 = _squared_distances(queries[s : s + block], refs)  # (b, N_ref)
        inside += int((d2 <= radii2[None, :]).any(dim=1).sum())
    return inside / queries.shape[0]


def precision_recall(
    real_features: ArrayLike, fake_features: ArrayLike, k: int = 3, block: int = 1024
) -> tuple[float, float]:
    """Improved precision (fake on the real manifold) and recall (real on the fake manifold).

    Distances are computed in blocks of `block` rows, so memory is O(block * N), not O(N^2).
    """
    real = torch.from_numpy(_as_matrix(real_features, "real_features"))
    fake = torch.from_numpy(_as_matrix(fake_features, "fake_features"))
    _same_dim(real.numpy(), fake.numpy(), "real_features", "fake_features")
    if not 1 <= k < min(real.shape[0], fake.shape[0]):
        raise ValueError(f"k must be in [1, min(N_real, N_fake) - 1], got k={k} for sizes {len(real)}, {len(fake)}")
    precision = _coverage(fake, real, _knn_radii2(real, k, block), block)
    recall = _coverage(real, fake, _knn_radii2(fake, k, block), block)
    return precision, recall


# ----------------------------------------------------------------------------------------------------------
# The one scorer: every caller (`eval`, `train --eval-every`, the experiments) computes its FID here


def score_features(
    reference: ArrayLike | Mapping[str, Any],
    fake: ArrayLike,
    *,
    kid: bool = True,
    pr: bool = True,
    k: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """FID of `fake` (N, D) features against a reference, plus KID and precision/recall when asked.

    `reference` is either real features (M, D) or precomputed statistics {"mu", "sigma"[, "features"]} (what
    `evaluation_runner.reference_statistics` caches): mu and sigma then give the FID, and "features" (a subset of
    the real features) KID and precision/recall. Returns {"fid"} plus {"kid": {"mean", "std"}} when `kid` and
    {"precision", "recall"} when `pr`; `seed` fixes KID's random subsets.
    """
    f_fake = _as_matrix(fake, "fake features")
    if isinstance(reference, Mapping):
        mu_real, sigma_real, f_real = reference["mu"], reference["sigma"], reference.get("features")
    else:
        f_real = _as_matrix(reference, "real features")
        mu_real, sigma_real = feature_statistics(f_real)
    if (kid or pr) and f_real is None:
        raise ValueError("KID and precision/recall need real feature vectors, not only mu and sigma")
    mu, sigma = feature_statistics(f_fake)
    result: dict[str, Any] = {"fid": frechet_distance(mu_real, sigma_real, mu, sigma)}
    if kid:
        kid_mean, kid_std = kernel_inception_distance(f_real, f_fake, generator=torch.Generator().manual_seed(seed))
        result["kid"] = {"mean": kid_mean, "std": kid_std}
    if pr:
        result["precision"], result["recall"] = precision_recall(f_real, f_fake, k=k)
    return result


# ----------------------------------------------------------------------------------------------------------
# Classifier-based scores


def softmax(logits: ArrayLike) -> np.ndarray:
    """Row-wise softmax of (N, K) logits in float64 (max subtracted first, so no overflow)."""
    z = _as_matrix(logits, "logits")
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _as_probs(probs: ArrayLike) -> np.ndarray:
    p = _as_matrix(probs, "probs")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("probs must be non-negative rows that sum to 1: pass softmax(logits), not logits")
    return p


def inception_score(probs: ArrayLike, splits: int = 10) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))) per split; mean and std over splits (Salimans et al. 2016)."""
    p = _as_probs(probs)
    if not 1 <= splits <= p.shape[0]:
        raise ValueError(f"splits must be in [1, N={p.shape[0]}], got {splits}")
    scores = []
    for part in np.array_split(p, splits):
        p_y = part.mean(axis=0, keepdims=True)  # (1, K) marginal p(y) over this split
        # KL with the convention 0 log 0 = 0
        ratio = np.where(part > 0, part / np.where(p_y > 0, p_y, 1.0), 1.0)
        kl = (part * np.log(ratio)).sum(axis=1)  # (n,)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def class_accuracy(probs_or_logits: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of rows whose argmax equals the label (for class-conditional samples: the requested class)."""
    p = _as_matrix(probs_or_logits, "probs_or_logits")
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise ValueError(f"labels must have shape ({p.shape[0]},) to match the predictions, got {y.shape}")
    return float((p.argmax(axis=1) == y).mean())


def class_histogram(pred_labels: ArrayLike, num_classes: int) -> list[int]:
    """Count of predictions per class 0..num_classes-1 (a mode-collapse check)."""
    y = pred_labels.detach().cpu().numpy() if isinstance(pred_labels, torch.Tensor) else np.asarray(pred_labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"pred_labels must be a 1-D integer array, got shape {y.shape} dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"pred_labels must lie in [0, {num_classes - 1}], got range [{y.min()}, {y.max()}]")
    return [int(c) for c in np.bincount(y, minlength=num_classes)]
