"""The ``annotator_quality`` asset and its WARN check (issue 12: several annotators per example).

``raw_labels`` writes the table ``consensus_labels`` (and the annotator rows) when
``columns.annotations`` is set; this asset shows them (inline table, picture) and its check
flags annotators below ``checks.min_annotator_quality``. Without annotations the asset
says so and the check passes.
"""

from collections.abc import Iterator

import dagster as dg

from cl_pipeline.audit.annotator_stage import annotator_quality_stage, annotator_quality_verdict
from cl_pipeline.defs.assets import _COMMON, _report, raw_labels
from cl_pipeline.defs.checks import _partitioned_check, _record
from cl_pipeline.defs.resources import AuditConfigResource, PipelineStorage

__all__ = ["ANNOTATOR_ASSETS", "ANNOTATOR_CHECKS"]


@dg.asset(**_COMMON, deps=[raw_labels], kinds={"parquet"})
def annotator_quality(
    context: dg.AssetExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.MaterializeResult:
    """Per annotator: CROWDLAB quality, agreement with the consensus, worst class, examples labeled."""
    return _report(context, lambda: annotator_quality_stage(storage.store, audit_config.config, context.partition_key))


@_partitioned_check(annotator_quality)
def annotators_above_min_quality(
    context: dg.AssetCheckExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> Iterator[dg.AssetCheckResult]:
    """Every annotator's quality >= ``checks.min_annotator_quality`` (WARN; 0 = off)."""
    verdict = annotator_quality_verdict(storage.store, audit_config.config, context.partition_key)
    yield from _record(context, storage, verdict, dg.AssetCheckSeverity.WARN)


ANNOTATOR_ASSETS = [annotator_quality]
ANNOTATOR_CHECKS = [annotators_above_min_quality]
