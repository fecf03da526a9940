"""Session-wide test setup.

The real label-error sets (MNIST, 20 Newsgroups test sets with human-confirmed
errors, from the public cleanlab/label-errors repository; provenance in
``tests/data/label-errors/README.md``) are vendored so that a clean clone is
self-sufficient. ``CL_LABEL_ERRORS_DIR`` still overrides the location.
"""

from __future__ import annotations

import os
from pathlib import Path

VENDORED_LABEL_ERRORS = Path(__file__).resolve().parent / "data" / "label-errors"
os.environ.setdefault("CL_LABEL_ERRORS_DIR", str(VENDORED_LABEL_ERRORS))
