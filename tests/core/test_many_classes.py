"""More than 255 classes: the per-row count of confident classes must not wrap.

``_count._guess_rows`` counts the confident classes of a row whose argmax is not
confident in the smallest integer type that holds K (uint8 below 255 classes).
Here K = 300 and one row has exactly 256 confident classes, none of them its
argmax: the reference counts it (several confident classes: the argmax over all
classes), and so must we; a count that wrapped to 0 would drop it. Found by
mutation testing (docs/mutation-testing.md).
"""

import numpy as np
import pytest

from cl_pipeline import core

from ._kit import oracle

K = 300


def many_classes_case(confident):
    rows, labels = [], []
    for _ in range(2):  # class 0: t_0 = 0.9
        p = np.zeros(K)
        p[0], p[1] = 0.9, 0.1
        rows.append(p)
        labels.append(0)
    for j in range(1, K):  # class j: own probability 0.001, so t_j = 0.001
        p = np.zeros(K)
        p[0], p[j] = 0.999, 0.001
        rows.append(p)
        labels.append(j)
    special = np.zeros(K)  # argmax 0 (0.5 < t_0: not confident), `confident` classes at 0.5 / confident >= t_j
    special[0] = 0.5
    special[1 : confident + 1] = 0.5 / confident
    rows.append(special)
    labels.append(0)
    return np.array(labels), np.array(rows)


@pytest.mark.parametrize("confident", [256, 257])
def test_rows_with_more_than_255_confident_classes_are_counted(confident):
    labels, probs = many_classes_case(confident)
    ours = core.compute_confident_joint(labels, probs, calibrate=False)
    ref = oracle("count.compute_confident_joint", labels, probs, calibrate=False)
    np.testing.assert_array_equal(ours, ref)
    assert ours[0, 0] == 3, "the special row (several confident classes) is counted at its argmax, class 0"
