"""Overlapping the stages of a streaming pass in threads (decode, compute, encode).

A pass over a table decodes Parquet, computes on each batch and encodes the result. Arrow's
decoding and encoding and numpy's large operations release the GIL, so on a machine with
more than one core they can run while Python works on another batch. :func:`read_ahead`
runs an iterator in a thread a few items ahead of its consumer: the readers use it so the
next batches decode while this one is computed on, and the table writer
(:func:`cl_pipeline.storage.parquet.write_table_batches`) uses it so the next batches are
computed while this one is encoded. The order of the items never changes.
"""

import queue
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["read_ahead"]


def read_ahead(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """The items of ``items`` in order, produced by a thread that runs up to ``depth`` items ahead.

    For a pass that decodes Parquet and then computes on each batch in one thread: the
    decoding (which releases the GIL) of the next batches overlaps the work on this one.
    An exception of the producer is raised here, at its place in the sequence; closing
    this generator early stops the producer.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((done, None))
        except BaseException as exc:  # handed to the consumer
            slots.put((done, exc))

    worker = threading.Thread(target=produce, name="cl-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, error = slots.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                worker.join(0.05)
