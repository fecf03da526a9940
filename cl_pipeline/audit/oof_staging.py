"""``oof_pred_probs`` of supplied probability columns, written while ``raw_labels`` is copied.

With supplied probabilities, ``oof_pred_probs`` is a reshape of the ``raw_labels`` rows:
the same batches, another layout. Written by its own stage, it decodes the whole of
``raw_labels`` again, right after it was encoded; both stages are bound by one thread's
encoding while the second core waits. So the ``raw_labels`` stage (Parquet snapshot with
``columns.probabilities``) also writes ``oof_pred_probs`` from the batches it copies, in a
second writer thread, as the table's *staged file* (``PartitionStore.write_staged``: the
partition as the stage would write it, under a name no reader sees). The
``oof_pred_probs`` stage then adopts it with one rename, or computes the table itself.

Rules, so the table never depends on which way it was made:

- the staged file holds exactly what the stage would write: the same batches
  (:func:`cl_pipeline.audit.streaming.oof_batch_from_raw`), the same tally and recorded
  thresholds (:func:`cl_pipeline.audit.streaming.tallied`), the same columns and types;
- it is adopted only if its *key* (:func:`staging_key`: data version and the stored
  settings the reshape reads) equals the key of the ``raw_labels`` stored now; any other
  staged file is removed and the table computed from ``raw_labels``;
- staging never fails ``raw_labels``: an error while staging is logged, the staged file
  is not written (atomic write), and the ``oof_pred_probs`` stage computes the table;
- a ``raw_labels`` copy that fails (the snapshot changed while it was copied) commits
  neither file.

A staged file left by a run that never reached ``oof_pred_probs`` waits for the next one
(adopted if it still matches) and is replaced by the next copy of the date.
"""

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from cl_pipeline.audit import streaming
from cl_pipeline.storage import PartitionStore

__all__ = ["OofStager", "adopt", "staging_key"]

log = logging.getLogger("cl_pipeline.progress")

TABLE = "oof_pred_probs"
#: The stored ``raw_labels`` settings the reshape reads (with the data version, the staging key).
_KEY_FIELDS = ("data_version", "classes", "probability_columns", "id_column", "label_column", "true_label_column")
#: Raw batches queued for the staging writer before the copy waits for it.
_DEPTH = 4
_END, _ABORT = object(), object()


def staging_key(meta: dict[str, Any]) -> dict[str, Any]:
    """What ``oof_pred_probs`` is a function of, from the metadata of ``raw_labels``."""
    return {name: meta.get(name) for name in _KEY_FIELDS}


class OofStager:
    """A thread writing the staged ``oof_pred_probs`` of the ``raw_labels`` batches it is fed.

    Parameters
    ----------
    store : PartitionStore
    date : str
    meta : dict
        The metadata ``raw_labels`` is being written with (classes, columns, data version,
        ``label_counts``).
    schema : pyarrow.Schema
        Of ``oof_pred_probs`` (``streaming.oof_schema``).
    """

    def __init__(self, store: PartitionStore, date: str, meta: dict[str, Any], schema: pa.Schema) -> None:
        self.store, self.date, self.meta, self.schema = store, date, meta, schema
        self.slots: queue.Queue = queue.Queue(maxsize=_DEPTH)
        self.failed: BaseException | None = None
        store.remove_staged(TABLE, date)  # a staged file of an earlier copy is stale from now on
        self.thread = threading.Thread(target=self._write, name="cl-oof-staging", daemon=True)
        self.thread.start()

    def _batches(self) -> Iterator[pa.RecordBatch]:
        offset = 0
        while (batch := self.slots.get()) is not _END:
            if batch is _ABORT:
                raise RuntimeError("raw_labels was not written: nothing to stage")
            yield streaming.oof_batch_from_raw(batch, offset, self.meta, self.schema)
            offset += batch.num_rows

    def _write(self) -> None:
        start = time.perf_counter()
        tally, info = [0, 0], {"classes": self.meta["classes"]}
        totals = np.asarray(self.meta["label_counts"], dtype=np.int64)
        batches = streaming.tallied(self._batches(), totals, tally, info)
        info.update(staged_with="raw_labels", staging_key=staging_key(self.meta))
        try:
            self.store.write_staged(TABLE, self.date, self.schema, _finish(batches, info, tally, start), info)
        except BaseException as exc:  # noqa: BLE001 - recorded; the stage computes the table instead
            self.failed = exc
            while True:  # unblock a copy waiting on a full queue
                try:
                    self.slots.get_nowait()
                except queue.Empty:
                    break

    def feed(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Pass the ``raw_labels`` batches on, queueing each for the staging writer.

        After the last batch the staged file is finished; if ``batches`` raises, it is
        abandoned (nothing staged) and the error goes on.
        """
        try:
            for batch in batches:
                self._put(batch)
                yield batch
        except BaseException:
            self._put(_ABORT)
            raise
        self._put(_END)

    def _put(self, item: object) -> None:
        while self.failed is None and self.thread.is_alive():
            try:
                self.slots.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait for the writer (a failure is logged: the ``oof_pred_probs`` stage then computes the table)."""
        self._put(_ABORT)  # no-op once the writer has finished
        self.thread.join()
        if self.failed is not None:
            log.warning("oof_pred_probs not staged with raw_labels (%s): its stage computes it", self.failed)


def _finish(
    batches: Iterator[pa.RecordBatch], info: dict[str, Any], tally: list[int], start: float
) -> Iterator[pa.RecordBatch]:
    yield from batches
    # its time is raw_labels' (the writers ran side by side): stage timings must not count it twice
    info.update(accuracy=tally[0] / max(tally[1], 1), seconds=0.0, staged_seconds=time.perf_counter() - start)


def adopt(store: PartitionStore, date: str, raw_meta: dict[str, Any]) -> dict[str, Any] | None:
    """Make the staged ``oof_pred_probs`` of ``date`` the table if it matches the stored ``raw_labels``.

    Returns
    -------
    dict or None
        The adopted file's metadata (with ``rows``), or None: there was no staged file, or it
        did not match and was removed.
    """
    staged = store.staged_metadata(TABLE, date)
    if staged is None:
        return None
    if staged.get("staging_key") != staging_key(raw_meta):
        store.remove_staged(TABLE, date)
        log.info("staged oof_pred_probs of %s is stale (raw_labels changed): computed again", date)
        return None
    return staged | {"rows": store.adopt_staged(TABLE, date)}
