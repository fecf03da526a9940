"""What an audit does, without Dagster: the orchestrator (``cl_pipeline.defs``) and the CLI call this.

Modules, each named for what it holds:

- :mod:`~cl_pipeline.audit.snapshot`: a validated snapshot and its data version (content hash);
- :mod:`~cl_pipeline.audit.preflight`: the one check before anything is written (CLI and ``raw_labels``);
- :mod:`~cl_pipeline.audit.estimators`: the estimator allow-list and construction;
- :mod:`~cl_pipeline.audit.features`: feature encoding;
- :mod:`~cl_pipeline.audit.folds`: K-fold out-of-sample probabilities and the fold cache;
- :mod:`~cl_pipeline.audit.tables`: the confident joint, Q, class quality and label-issue tables;
- :mod:`~cl_pipeline.audit.retrain`: prune, reweight, refit against a baseline;
- :mod:`~cl_pipeline.audit.verdicts`: what each check decides, and the blocking rule;
- :mod:`~cl_pipeline.audit.render`: Markdown tables and the heatmap shown in the UI;
- :mod:`~cl_pipeline.audit.stages`: one function per stage (read from the store, compute, write).

Layering: this package imports ``core``, ``learning``, ``storage`` and ``config``, never Dagster
(a test enforces it).
"""

from cl_pipeline.audit.preflight import Prevalidated, audit_date, prevalidate
from cl_pipeline.audit.snapshot import Snapshot, validate_snapshot
from cl_pipeline.audit.stages import Blocked, StageResult
from cl_pipeline.audit.tables import find_table, rank_examples
from cl_pipeline.audit.verdicts import Verdict

__all__ = [
    "Blocked",
    "Prevalidated",
    "Snapshot",
    "StageResult",
    "Verdict",
    "audit_date",
    "find_table",
    "prevalidate",
    "rank_examples",
    "validate_snapshot",
]
