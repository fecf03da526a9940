"""Stratified K-fold out-of-sample probabilities of a snapshot, with a per-fold cache.

Each finished fold is saved atomically under ``<cache>/<key>/fold_<i>.npy``;
the key (:func:`fold_cache_key`) covers everything the fold probabilities
depend on, so a retry after a failure reloads finished folds and a change of
data, model or library versions never reuses stale ones.
"""

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from cl_pipeline.audit.compute import LOCAL, Engine
from cl_pipeline.audit.estimators import build_estimator
from cl_pipeline.audit.snapshot import Snapshot
from cl_pipeline.config import ModelConfig
from cl_pipeline.storage import atomic_write_bytes

__all__ = ["FOLD_CACHE_VERSION", "fold_cache_key", "out_of_fold_probs", "single_threaded_blas"]

log = logging.getLogger(__name__)


def single_threaded_blas() -> Any:
    """Context limiting BLAS to one thread: parallelism comes from the folds.

    With OpenBLAS's own threads on top of fold threads, the small matrix products
    of a linear model spin-wait for each other: on 2 busy cores the 5 folds of the
    embedded default took 18-28 s instead of 0.7 s.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


#: Bumped when the fold computation changes, so old cached folds are not reused.
FOLD_CACHE_VERSION = 2


def fold_cache_key(data_version: str, model: ModelConfig, classes: list[str], features: dict) -> str:
    """Key of the fold cache: what the fold probabilities depend on.

    Data version, estimator and its parameters, number of folds and seed,
    classes, feature columns, and the versions of the libraries that compute
    them. Not ``n_jobs`` or ``holdout_fraction``: they do not change the folds.
    """
    settings = model.model_dump(mode="json", exclude={"n_jobs", "holdout_fraction"})
    payload = repr((FOLD_CACHE_VERSION, data_version, settings, classes, features, _library_versions(model.estimator)))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _library_versions(estimator: str) -> tuple[str, ...]:
    """Versions of numpy, scipy, scikit-learn and the estimator's own package.

    A package that is not an installed distribution (local code on the path)
    is identified by a hash of the source file of the estimator's module.
    """
    from importlib import metadata, util

    names = {"numpy", "scipy", "scikit-learn", estimator.split(".")[0]} - {"sklearn"}
    versions = []
    for name in sorted(names):
        try:
            versions.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            spec = util.find_spec(estimator.rpartition(".")[0])
            origin = Path(spec.origin) if spec is not None and spec.origin else None
            source = origin.read_bytes() if origin is not None and origin.is_file() else b""
            versions.append(f"{name}@{hashlib.sha256(source).hexdigest()[:12]}")
    return tuple(versions)


def _prune_cache(cache_dir: Path, keep: Path) -> None:
    """Remove a partition's cached folds of other keys (stale: older data, model or code)."""
    import shutil

    if cache_dir.is_dir():
        for entry in cache_dir.iterdir():
            if entry.is_dir() and entry != keep:
                shutil.rmtree(entry, ignore_errors=True)


def _fold_task(fold: tuple[int, np.ndarray, np.ndarray], shared: tuple) -> np.ndarray:
    """Probabilities of one held-out fold: loaded from the cache if finished, else fitted and cached.

    ``shared`` is ``(estimator, X, labels, K, key_dir)``. Runs in a thread or on a Dask worker
    (which then writes the cache file into the shared data directory; Dask's nanny starts
    workers with one BLAS thread, see :func:`single_threaded_blas` for why that matters).
    """
    from cl_pipeline import learning

    i, train, test = fold
    estimator, X, labels, k, key_dir = shared
    path = Path(key_dir) / f"fold_{i}.npy"
    if path.is_file():
        cached = np.load(path)
        if cached.shape == (test.size, k):
            log.info("fold %d: loaded from cache %s", i, path)
            return cached
    probs = learning.fit_predict_fold(estimator, X, labels, train, test, k)
    atomic_write_bytes(path, lambda handle: np.save(handle, probs))
    return probs


def out_of_fold_probs(
    snapshot: Snapshot, X: Any, model: ModelConfig, cache_dir: Path, engine: Engine = LOCAL
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified K-fold out-of-sample probabilities, one cached file per finished fold.

    Folds run in parallel threads (``model.n_jobs``), or one task per fold on a
    distributed ``engine`` (``X`` is sent to the workers once). Each finished fold is
    saved atomically under ``cache_dir / <key> / fold_<i>.npy``; a retry after a
    failure loads the finished folds instead of retraining them. The result does not
    depend on where the folds ran.

    Returns
    -------
    pred_probs : ndarray (n, K) float64
    fold : ndarray (n,) int64, the held-out fold of each row
    """
    from joblib import Parallel, delayed

    from cl_pipeline import learning

    k = len(snapshot.classes)
    estimator = build_estimator(model)
    folds = learning.stratified_fold_indices(snapshot.labels, model.n_folds, model.random_state)
    key_dir = Path(cache_dir) / fold_cache_key(snapshot.data_version, model, snapshot.classes, snapshot.features)
    _prune_cache(Path(cache_dir), key_dir)
    tasks = [(i, train, test) for i, (train, test) in enumerate(folds)]
    shared = (estimator, X, snapshot.labels, k, str(key_dir))
    if engine.distributed:
        results = engine.map(_fold_task, tasks, shared=shared, name="fold")
    else:
        jobs = (delayed(_fold_task)(task, shared) for task in tasks)
        with single_threaded_blas():
            results = Parallel(n_jobs=min(model.n_jobs, len(folds)), prefer="threads")(jobs)
    pred_probs = np.empty((snapshot.labels.size, k), dtype=np.float64)
    fold = np.empty(snapshot.labels.size, dtype=np.int64)
    for i, ((_, test), probs) in enumerate(zip(folds, results, strict=True)):
        pred_probs[test], fold[test] = probs, i
    return pred_probs, fold
