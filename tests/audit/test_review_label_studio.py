"""Label Studio files captured from a real Label Studio by ``make check-label-studio``.

``tests/fixtures/label_studio/``: ``tasks.json`` and ``label_config.xml`` (what ``review
export`` wrote and Label Studio accepted), ``export.json`` (Label Studio's JSON export after
annotating through its API) and ``expected.json`` (the decisions the annotations mean, and
the Label Studio version). The audited date is rebuilt from the embedded digits (the ids
and given labels of the tasks are theirs) and the tasks (ranks, suggestions, scores).
"""

import copy
import datetime
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cl_pipeline.audit.review import ReviewInputError, export_queue, import_decisions, labeling_config
from cl_pipeline.config import load_config
from cl_pipeline.datasets import load_embedded
from cl_pipeline.storage.decisions import decision_files, read_decisions
from cl_pipeline.storage.store import PartitionStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "label_studio"
ABOUT = json.loads((FIXTURES / "expected.json").read_text())
DATE = ABOUT["date"]
CLASSES = [str(c) for c in range(10)]
NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
#: The display column of the capture (``tools/label_studio_roundtrip.py``).
DISPLAY = ["pixel_36"]


def _tasks() -> list[dict]:
    return json.loads((FIXTURES / "tasks.json").read_text())


def _export() -> list[dict]:
    return json.loads((FIXTURES / "export.json").read_text())


@pytest.fixture(scope="module")
def digits() -> pd.DataFrame:
    return load_embedded()


@pytest.fixture
def store(tmp_path: Path, digits: pd.DataFrame) -> PartitionStore:
    """The audited date of the capture: the embedded digits, flagged where the tasks say."""
    frame = digits
    tasks = {t["data"]["id"]: t["data"] for t in _tasks()}
    raw = frame[["id", "label", "true_label", *DISPLAY]].assign(label_index=frame["label"])
    store = PartitionStore(tmp_path / "data")
    store.write("raw_labels", DATE, raw, {"classes": CLASSES, "id_column": "id", "label_column": "label"})
    given = frame["label"].astype(str)
    task = [tasks.get(i, {}) for i in frame["id"]]
    issues = pd.DataFrame(
        {
            "row": np.arange(len(frame)),
            "id": frame["id"],
            "given_label": given,
            "suggested_label": [t.get("suggested_label", g) for t, g in zip(task, given, strict=True)],
            "label_quality": [t.get("label_quality", 1.0) for t in task],
            "is_label_issue": [bool(t) for t in task],
            "rank": pd.array([t.get("rank") for t in task], dtype="Int64"),
        }
    )
    store.write("label_issues", DATE, issues)
    return store


def test_the_capture_is_of_a_known_label_studio_version_and_the_embedded_digits(digits: pd.DataFrame):
    assert ABOUT["label_studio_version"].count(".") == 2 and ABOUT["tasks"] == len(_tasks()) == len(_export())
    frame = digits.set_index("id")
    for task in _tasks():
        assert task["data"]["given_label"] == str(frame.loc[task["data"]["id"], "label"])


def test_review_export_still_writes_the_tasks_and_config_label_studio_accepted(store: PartitionStore, tmp_path: Path):
    config = load_config({"columns": {"numeric": ["pixel_*"], "display": DISPLAY}, "source": {"kind": "embedded"}})
    result = export_queue(store, config, tmp_path / "tasks.json", fmt="label-studio")
    assert json.loads(result.path.read_text()) == _tasks()
    assert result.labeling_config.read_text() == (FIXTURES / "label_config.xml").read_text()
    assert labeling_config(CLASSES, DISPLAY) == (FIXTURES / "label_config.xml").read_text()


def test_the_label_studio_export_imports_the_expected_decisions_once(store: PartitionStore):
    result = import_decisions(store, FIXTURES / "export.json", now=NOW)
    expected = ABOUT["expected"]
    assert (result.date, result.decisions, result.stored.written) == (DATE, len(expected), len(expected))
    assert result.undecided == ABOUT["tasks"] - len(expected)  # one task left open, one annotation cancelled
    latest = {r["id"]: r for r in read_decisions(store.root, latest_only=True).to_pylist()}
    assert {i: {k: r[k] for k in ("decision", "new_label", "note")} for i, r in latest.items()} == expected
    assert {"keep", "relabel", "drop"} <= {r["decision"] for r in latest.values()}
    exported = {t["data"]["id"]: t for t in _export()}
    for key, row in latest.items():
        annotations = [a for a in exported[key]["annotations"] if not a["was_cancelled"]]
        last = max(annotations, key=lambda a: a["updated_at"])
        assert row["decided_at"] == datetime.datetime.fromisoformat(last["updated_at"])
        assert row["reviewer"] == f"label-studio user {last['completed_by']}"
        assert row["source_format"] == "label-studio" and row["imported_at"] == NOW
    again = import_decisions(store, FIXTURES / "export.json", now=NOW + datetime.timedelta(days=1))
    assert again.stored.path is None and again.stored.already_stored == len(expected)


def _twice_annotated(tasks: list[dict]) -> dict:
    return next(t for t in tasks if len([a for a in t["annotations"] if not a["was_cancelled"]]) > 1)


def test_the_later_of_two_annotations_counts(store: PartitionStore):
    task = _twice_annotated(_export())
    import_decisions(store, FIXTURES / "export.json", now=NOW)
    (row,) = [r for r in read_decisions(store.root, latest_only=True).to_pylist() if r["id"] == task["data"]["id"]]
    later = max(task["annotations"], key=lambda a: a["updated_at"])
    assert row["new_label"] == later["result"][0]["value"]["choices"][0]


def _edited(tmp_path: Path, edit) -> Path:
    tasks = copy.deepcopy(_export())
    edit(tasks)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(tasks))
    return path


def _annotated(tasks: list[dict]) -> list[dict]:
    """The tasks with an annotation that was not cancelled."""
    return [t for t in tasks if any(not a["was_cancelled"] for a in t["annotations"])]


def _choose(tasks: list[dict], choices: list) -> None:
    task = _annotated(tasks)[0]
    next(a for a in task["annotations"] if not a["was_cancelled"])["result"][0]["value"]["choices"] = choices


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(lambda t: _choose(t, ["11"]), "new_label '11' is not a class", id="choice-outside-classes"),
        pytest.param(lambda t: _choose(t, []), "has 0 choices", id="no-choice"),
        pytest.param(lambda t: _choose(t, ["1", "2"]), "has 2 choices", id="two-choices"),
        pytest.param(lambda t: _annotated(t)[-1]["data"].update(date="2024-01-03"), "mixes dates", id="mixed-dates"),
        pytest.param(lambda t: _annotated(t)[0]["data"].update(id="digit-99999"), "unknown id", id="unknown-id"),
        pytest.param(lambda t: t[0]["data"].pop("id"), "task 1: no data.id", id="not-our-task"),
        pytest.param(lambda t: _annotated(t)[0]["data"].update(given_label="x"), "differs", id="stale-given"),
    ],
)
def test_edited_exports_are_refused_and_nothing_is_written(store, tmp_path, edit, message):
    with pytest.raises(ReviewInputError, match=message):
        import_decisions(store, _edited(tmp_path, edit), now=NOW)
    assert decision_files(store.root) == []
