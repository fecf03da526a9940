"""The embedded default dataset: scikit-learn's handwritten digits with injected label noise.

The noise is class-conditional: a noise matrix ``P(given=i | true=j)`` with
trace ``K * (1 - noise_rate)`` is drawn with ``core.generate_noise_matrix_from_trace``
and labels are flipped with ``core.generate_noisy_labels``, both seeded. The
true labels are kept in the ``true_label`` column so an audit can report the
precision and recall of its flags.
"""

import numpy as np
import pandas as pd

from cl_pipeline import core

__all__ = ["EMBEDDED_COLUMNS", "load_embedded"]

EMBEDDED_COLUMNS: dict[str, object] = {
    "id": "id",
    "label": "label",
    "true_label": "true_label",
    "numeric": ["pixel_*"],
    "image": {"pixels": ["pixel_*"], "shape": [8, 8]},  # the gallery of the top issues shows the digits
}


def load_embedded(noise_rate: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """Digits (1,797 images, 10 classes, 64 pixel features) with seeded noisy labels.

    Parameters
    ----------
    noise_rate : float
        Expected fraction of flipped labels (the noise matrix has trace ``K * (1 - noise_rate)``).
    seed : int
        Seed of both the noise matrix and the flips; the same seed gives the same table.

    Returns
    -------
    pandas.DataFrame
        Columns ``id`` (``"digit-00000"``...), ``label`` (given, noisy), ``true_label`` and
        ``pixel_0`` ... ``pixel_63``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    true = digits.target.astype(np.int64)
    k = int(true.max()) + 1
    if noise_rate > 0:
        py = np.bincount(true, minlength=k) / true.size
        noise_matrix = core.generate_noise_matrix_from_trace(
            k, k * (1.0 - noise_rate), py=py, valid_noise_matrix=True, seed=seed
        )
        given = core.generate_noisy_labels(true, noise_matrix, seed=seed + 1)
    else:
        given = true.copy()
    frame = pd.DataFrame(digits.data.astype(np.float64), columns=[f"pixel_{i}" for i in range(64)])
    frame.insert(0, "true_label", true)
    frame.insert(0, "label", np.asarray(given, dtype=np.int64))
    frame.insert(0, "id", [f"digit-{i:05d}" for i in range(true.size)])
    return frame
