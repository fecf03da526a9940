"""Retraining on cleaned labels: out-of-sample probabilities and ``ConfidentLearner``.

Unlike :mod:`cl_pipeline.core` (pure numpy), this package uses scikit-learn,
joblib and pandas.
"""

from cl_pipeline.learning._folds import (
    MissingClassWarning,
    fit_predict_fold,
    out_of_sample_pred_probs,
    stratified_fold_indices,
)
from cl_pipeline.learning._learner import ConfidentLearner

__all__ = [
    "ConfidentLearner",
    "MissingClassWarning",
    "fit_predict_fold",
    "out_of_sample_pred_probs",
    "stratified_fold_indices",
]
