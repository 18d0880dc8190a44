"""Sample selection: per-sample losses -> normalised losses -> 2-component GMM -> split.

Paper section 3.2. Noisy samples keep a higher loss early in training, and the losses
of the clean and noisy samples look like two Gaussians, the clean one with the smaller
mean. So each epoch:

  1. loss_i = CE(logits_i, y_i), computed with dropout OFF (the trainer does this);
  2. normalise: min-max to [0, 1] (default), or the paper's class-regularised
     (loss_i - mu_{y_i}) / sigma_{y_i} (Eq. 2) for instance-dependent noise, where the
     loss scales of the classes differ;
  3. fit a 1-D two-component GMM by EM;
  4. clean_prob_i = posterior of the lower-mean component  (LOWER = MORE LIKELY
     MISLABELED); X = {clean_prob >= tau}, U = {clean_prob < tau}  (Eq. 3).

The fit is one global computation over all N samples: under DDP, gather the losses to
one rank, call `select` there, and broadcast the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SelectionConfig
from .reports import GMMParams


@dataclass(frozen=True)
class Selection:
    """Result of one selection. Arrays have shape (N,) for the N samples passed in.

    norm_loss: the normalised losses the GMM saw.
    clean_prob: posterior of the low-mean component; lower = more likely mislabeled.
    is_clean: clean_prob >= tau (the labeled set X); ~is_clean is U.
    gmm: fitted parameters, or None when the losses were constant (nothing to fit).
    warnings: human-readable reasons not to trust the split.
    """

    norm_loss: np.ndarray
    clean_prob: np.ndarray
    is_clean: np.ndarray
    gmm: GMMParams | None
    warnings: tuple[str, ...]


def normalise_losses(
    loss: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    class_reg: bool = False,
    use_variance: bool = False,
) -> np.ndarray:
    """(N,) losses -> (N,) normalised losses.

    class_reg=False: min-max over all samples to [0, 1].
    class_reg=True: (loss - mean_y) / std_y per given class y (paper Eq. 2);
    use_variance=True divides by the variance instead (the reference code's deviation).
    """
    loss = np.asarray(loss, dtype=np.float64)
    labels = np.asarray(labels)
    if loss.ndim != 1 or labels.shape != loss.shape:
        raise ValueError(f"loss and labels must be 1-D of the same length, got {loss.shape} and {labels.shape}")
    if loss.size == 0:
        raise ValueError("no losses to normalise: the training set is empty")
    if not np.all(np.isfinite(loss)):
        raise ValueError("per-sample losses contain NaN or inf; the model diverged (try a lower learning rate)")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    if class_reg:
        return _compute_class_reg(loss, labels, num_classes, use_variance)
    return _compute_minmax(loss)


def _compute_minmax(loss: np.ndarray) -> np.ndarray:
    lo, hi = loss.min(), loss.max()
    if hi - lo < 1e-12:
        return np.zeros_like(loss)
    return (loss - lo) / (hi - lo)


def _compute_class_reg(loss: np.ndarray, labels: np.ndarray, k: int, use_variance: bool) -> np.ndarray:
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.bincount(labels, weights=loss, minlength=k)
    means = np.divide(sums, counts, out=np.zeros(k), where=counts > 0)
    sq = np.bincount(labels, weights=(loss - means[labels]) ** 2, minlength=k)
    var = np.divide(sq, counts, out=np.zeros(k), where=counts > 0)  # population variance
    scale = var if use_variance else np.sqrt(var)
    scale = np.where(scale < 1e-8, 1.0, scale)  # a class whose losses are all equal: centre only
    return (loss - means[labels]) / scale[labels]


def fit_gmm(norm_loss: np.ndarray, config: SelectionConfig, rng: np.random.Generator,
            fit_mask: np.ndarray | None = None) -> tuple[np.ndarray, GMMParams | None]:
    """Fit the 2-component GMM; return (clean_prob (N,), params).

    fit_mask: (N,) bool, the samples the GMM is fitted on (default all); every sample
        gets its posterior. The trainer fits on the samples it trains on and scores the
        held-out validation samples with the same mixture.
    Constant losses (or fewer than 2 distinct values) cannot be split: every sample
    gets clean_prob 1 and params None.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture  # here, not at import: `import selfmix_core` stays light

    x = np.asarray(norm_loss, dtype=np.float64).reshape(-1, 1)
    x_fit = x if fit_mask is None else x[np.asarray(fit_mask, dtype=bool)]
    if x_fit.shape[0] < 2 or np.ptp(x_fit) < 1e-12:
        return np.ones(x.shape[0]), None
    gmm = GaussianMixture(
        n_components=2,
        max_iter=config.gmm_max_iter,
        tol=config.gmm_tol,
        reg_covar=config.gmm_reg_covar,
        random_state=int(rng.integers(0, 2**31 - 1)),
    )
    with warnings.catch_warnings():
        # The authors' EM stops after 10 iterations by design; `converged` records it.
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(x_fit)
    means = gmm.means_.ravel()
    stds = np.sqrt(gmm.covariances_.ravel())
    clean = int(np.argmin(means))
    clean_prob = gmm.predict_proba(x)[:, clean]
    separation = float(abs(means[1] - means[0]) / np.sqrt((stds[0] ** 2 + stds[1] ** 2) / 2.0))
    params = GMMParams(
        means=(float(means[0]), float(means[1])),
        stds=(float(stds[0]), float(stds[1])),
        weights=(float(gmm.weights_[0]), float(gmm.weights_[1])),
        clean_component=clean,
        converged=bool(gmm.converged_),
        n_iter=int(gmm.n_iter_),
        separation=separation,
    )
    return clean_prob, params


def select(
    loss: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    config: SelectionConfig,
    rng: np.random.Generator,
    use_variance: bool = False,
    fit_mask: np.ndarray | None = None,
) -> Selection:
    """The whole selection step. loss, labels: (N,). See the module docstring.
    fit_mask: (N,) bool, the samples the GMM is fitted on (default all); the
    normalisation and the posterior cover all N."""
    if fit_mask is not None and np.asarray(fit_mask).shape != np.asarray(loss).shape:
        raise ValueError(f"fit_mask must have the losses' shape {np.shape(loss)}, got {np.shape(fit_mask)}")
    norm = normalise_losses(loss, labels, num_classes, config.class_reg, use_variance)
    clean_prob, gmm = fit_gmm(norm, config, rng, fit_mask)
    is_clean = clean_prob >= config.tau
    warnings: list[str] = []
    if gmm is None:
        warnings.append("all per-sample losses are equal, so there is nothing to split; every sample counts as clean")
    else:
        # No warning for an unconverged EM: the authors stop it after 10 iterations by
        # design (GMMParams.converged records it).
        if gmm.separation < config.min_separation:
            warnings.append(
                f"weak split: the two loss components stand only {gmm.separation:.2f} spreads apart "
                f"(below {config.min_separation:g}); the model may not have learned enough yet to tell clean "
                "from noisy labels. Train the warm-up longer, or treat the flags with caution."
            )
    return Selection(norm, clean_prob, is_clean, gmm, tuple(warnings))
