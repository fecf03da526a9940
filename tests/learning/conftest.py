"""Shared fixtures for the learner tests: a noisy digits split, single-threaded BLAS.

OpenBLAS with 2 threads is 5-70x *slower* than 1 thread on this 2-core VM for
the small matrices here, so every learner test runs with BLAS limited to one
thread (joblib's loky workers limit their own threads as well).
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="package")
def _one_blas_thread():
    # package scope: also covers the module/session-scoped fixtures below
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def flip_labels(y: np.ndarray, rate: float, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flip a seeded ``rate`` fraction of ``y`` to a uniformly chosen other class.

    Returns
    -------
    noisy : ndarray of shape (n,)
    flipped : bool ndarray of shape (n,)
    """
    rng = np.random.default_rng(seed)
    flipped = rng.random(y.size) < rate
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, n_classes, flipped.sum())) % n_classes
    return noisy, flipped


@pytest.fixture(scope="session")
def noisy_digits():
    """Digits scaled to [0, 1], stratified 70/30 split, 20% seeded noise on the train part."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    noisy, flipped = flip_labels(y_tr, 0.2, 10, seed=1)
    return X_tr, X_te, y_tr, y_te, noisy, flipped
