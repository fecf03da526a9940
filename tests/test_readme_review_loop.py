"""The README's "review loop in five commands", run as written on the embedded demo, so it cannot rot.

The commands are read from the README's code block (not copied here) and run in-process, in
order, in a temporary folder with its own data dir. Between the export and the import the
test plays the reviewer: in the exported file it relabels the examples whose given label is
really wrong (the embedded digits know their true labels) and keeps the others; it keeps the
last but one and drops the last whatever their labels (the top 50 may hold no right label).
"""

import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cl_pipeline import cli
from cl_pipeline.datasets import load_embedded
from cl_pipeline.storage import read_table
from cl_pipeline.storage.decisions import read_decisions

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## The review loop in five commands"


def readme_commands() -> list[list[str]]:
    """The ``cl-pipeline`` command lines of the section's first ``bash`` block (comments dropped)."""
    text = README.read_text(encoding="utf-8")
    assert text.count(SECTION) == 1, f"README has no single section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the section has no ```bash block"
    return [argv for line in block.group(1).splitlines() if (argv := shlex.split(line, comments=True))]


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_the_section_has_five_commands_in_the_loop_order() -> None:
    commands = readme_commands()
    assert len(commands) == 5 and all(argv[0] == "cl-pipeline" for argv in commands)
    audit, export, import_, curated, dataset = (argv[1:] for argv in commands)
    assert audit[0] == "audit" and "--from" not in audit
    assert export[:2] == ["review", "export"] and import_[:2] == ["review", "import"]
    assert import_[2] == _option(export, "--out")  # the filled-in export is the import file
    assert curated[0] == "audit" and _option(curated, "--from") == "curated"
    assert dataset[0] == "export-dataset" and _option(dataset, "--date") == _option(curated, "--date")


def _review(queue: Path) -> pd.DataFrame:
    """Fill in the exported queue as a reviewer who knows the truth: relabel the errors, keep the others,
    and of the last two, keep one and drop one whatever their labels."""
    filled = pd.read_csv(queue, dtype=str, keep_default_na=False)
    truth = load_embedded().set_index("id")["true_label"].astype(str)
    true = truth.loc[filled["id"]].to_numpy()
    wrong = true != filled["given_label"].to_numpy()
    filled["decision"] = np.where(wrong, "relabel", "keep")
    filled["new_label"] = np.where(wrong, true, "")
    # the top 50 may all be errors: the reviewer keeps the last but one anyway and drops the last
    filled.loc[len(filled) - 2 :, "new_label"] = ""
    filled.loc[len(filled) - 2 :, "decision"] = ["keep", "drop"]
    filled.to_csv(queue, index=False)
    return filled


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, shared_dagster_home: Path):
    root = tmp_path_factory.mktemp("readme_loop")
    commands = readme_commands()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("CL_PIPELINE_DATA_DIR", str(root / "data"))
        mp.setenv("DAGSTER_HOME", str(shared_dagster_home))
        mp.delenv("CL_PIPELINE_CONFIG", raising=False)
        codes, filled = [], None
        for argv in commands:
            codes.append(cli.main(argv[1:]))
            if argv[1:3] == ["review", "export"]:
                filled = _review(root / _option(argv, "--out"))
        yield SimpleNamespace(root=root, data=root / "data", commands=commands, codes=codes, filled=filled)


def test_every_command_succeeds(loop) -> None:
    assert loop.codes == [0, 0, 0, 0, 0]


def test_the_queue_is_the_top_50_and_every_decision_is_stored(loop) -> None:
    first = _option(loop.commands[0], "--date")
    issues = read_table(loop.data, "label_issues", first)
    top = issues[issues["is_label_issue"]].sort_values("rank").head(50)
    assert loop.filled["id"].tolist() == top["id"].tolist()
    assert (loop.filled["decision"] == "relabel").sum() > 0 and (loop.filled["decision"] == "drop").sum() == 1
    stored = read_decisions(loop.data).to_pandas().set_index("id")
    assert len(stored) == 50 and (stored.loc[loop.filled["id"], "decision"].to_numpy() == loop.filled["decision"]).all()
    assert set(stored["reviewer"]) == {_option(loop.commands[2], "--reviewer")}


def test_the_exported_dataset_has_the_decisions_applied(loop) -> None:
    out = loop.root / _option(loop.commands[4], "--out")
    exported = pd.read_parquet(out).set_index("id")
    source = load_embedded().set_index("id")
    decided = loop.filled.set_index("id")
    dropped = decided.index[decided["decision"] == "drop"]
    assert len(exported) == len(source) - len(dropped) and not exported.index.isin(dropped).any()
    relabeled = decided[decided["decision"] == "relabel"]
    assert (exported.loc[relabeled.index, "label"].astype(str) == relabeled["new_label"]).all()
    untouched = source.index.difference(relabeled.index).difference(dropped)
    assert (exported.loc[untouched, "label"].to_numpy() == source.loc[untouched, "label"].to_numpy()).all()


def test_the_curated_audit_flags_no_kept_example_and_estimates_less_noise(loop) -> None:
    first, second = _option(loop.commands[0], "--date"), _option(loop.commands[3], "--date")
    kept = loop.filled.loc[loop.filled["decision"] == "keep", "id"]
    issues = read_table(loop.data, "label_issues", second).set_index("id")
    assert not issues.loc[kept, "is_label_issue"].any()
    rate = {d: read_table(loop.data, "audit_summary", d)["estimated_noise_rate"].iloc[0] for d in (first, second)}
    assert rate[second] < rate[first]
