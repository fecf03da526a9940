"""Retraining: prune + reweight + refit with ``ConfidentLearner`` against a noisy-label baseline."""

from typing import Any

import numpy as np

from cl_pipeline.audit.estimators import build_estimator
from cl_pipeline.audit.features import encode_features
from cl_pipeline.audit.folds import single_threaded_blas
from cl_pipeline.audit.snapshot import Snapshot
from cl_pipeline.config import AuditConfig

__all__ = ["retrain"]


def retrain(snapshot: Snapshot, pred_probs: np.ndarray, config: AuditConfig) -> tuple[Any, dict[str, Any]]:
    """Prune + reweight + refit with ``ConfidentLearner``, compared with a noisy-label baseline.

    A stratified hold-out split (``model.holdout_fraction``, seeded) is set aside;
    the learner gets the stored out-of-fold probabilities of the training rows, and
    the baseline is the same estimator fit on the same rows with their given labels.

    Returns
    -------
    artifact : dict
        ``{"model": Pipeline(encoder, learner), "classes": [...], ...}`` (picklable).
    scores : dict
        Hold-out accuracies against the given labels (and the true labels, if known).
    """
    from sklearn.base import clone
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    from cl_pipeline.learning import ConfidentLearner

    model = config.model
    X, encoder = encode_features(snapshot)
    rows = np.arange(snapshot.labels.size)
    train, hold = train_test_split(
        rows, test_size=model.holdout_fraction, stratify=snapshot.labels, random_state=model.random_state
    )
    train, hold = np.sort(train), np.sort(hold)
    estimator = build_estimator(model)
    learner = ConfidentLearner(
        estimator,
        cv_n_folds=model.n_folds,
        random_state=model.random_state,
        n_jobs=model.n_jobs,
        filter_by=config.issues.filter_by,
    )
    with single_threaded_blas():
        learner.fit(X[train], snapshot.labels[train], pred_probs=pred_probs[train])
        baseline = clone(estimator).fit(X[train], snapshot.labels[train])
    scores: dict[str, Any] = {
        "n_train": int(train.size),
        "n_holdout": int(hold.size),
        "n_pruned": int(learner.label_issues_["is_label_issue"].sum()),
        "baseline_accuracy": float(baseline.score(X[hold], snapshot.labels[hold])),
        "retrained_accuracy": float(learner.score(X[hold], snapshot.labels[hold])),
    }
    if snapshot.true_labels is not None and (snapshot.true_labels[hold] >= 0).all():
        truth = snapshot.true_labels[hold]
        scores["baseline_true_accuracy"] = float(baseline.score(X[hold], truth))
        scores["retrained_true_accuracy"] = float(learner.score(X[hold], truth))
    artifact = {
        "model": Pipeline([("features", encoder), ("confident_learner", learner)]),
        "classes": snapshot.classes,
        "data_version": snapshot.data_version,
        "scores": scores,
    }
    return artifact, scores
