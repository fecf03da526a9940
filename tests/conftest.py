"""Session-wide test setup.

Hypothesis profiles (env ``HYPOTHESIS_PROFILE``), for every test in the repo:
  ci (default)  derandomized: the same examples on every run, so CI is deterministic
  dev           random examples, database on: explore, then pin what fails

The real label-error sets (MNIST, 20 Newsgroups test sets with human-confirmed
errors, from the public cleanlab/label-errors repository; provenance in
``tests/data/label-errors/README.md``) are vendored so that a clean clone is
self-sufficient. ``CL_LABEL_ERRORS_DIR`` still overrides the location.
"""

from __future__ import annotations

import os
from pathlib import Path

# scikit-learn's estimator checks include a numpy array-API input check that
# skips itself unless scipy runs with array-API support; enable it so the
# check runs instead of being skipped (set before scipy is first imported).
os.environ.setdefault("SCIPY_ARRAY_API", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile(
    "ci", derandomize=True, deadline=None, database=None, print_blob=True, suppress_health_check=_SUPPRESS
)
settings.register_profile("dev", deadline=None, print_blob=True, suppress_health_check=_SUPPRESS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

VENDORED_LABEL_ERRORS = Path(__file__).resolve().parent / "data" / "label-errors"
os.environ.setdefault("CL_LABEL_ERRORS_DIR", str(VENDORED_LABEL_ERRORS))
