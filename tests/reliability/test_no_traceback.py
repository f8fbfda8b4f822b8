"""Every command, given wrong inputs, answers with a message and a non-zero exit, never a traceback.

Inputs covered, per command: paths that do not exist, a file where a folder is expected and the reverse, a file of
the wrong kind (garbage YAML or JSON, a pickle checkpoint), an empty folder, and out-of-range numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.helpers import invoke


@pytest.fixture(scope="module")
def junk(tmp_path_factory) -> dict[str, Path]:
    """Wrong inputs of every kind, shared by the cases below."""
    root = tmp_path_factory.mktemp("junk")
    (root / "empty").mkdir()
    (root / "file.txt").write_text("just text\n")
    (root / "bad.yaml").write_text("sources: [unclosed\n")
    (root / "bad.json").write_text("{not json")
    (root / "model.pth").write_bytes(b"\x80\x04not really")
    return {"root": root, "empty": root / "empty", "file": root / "file.txt", "yaml": root / "bad.yaml",
            "json": root / "bad.json", "pickle": root / "model.pth", "missing": root / "missing"}


CASES = {
    "make-demo-data into a file": ["make-demo-data", "{file}"],
    "inspect a missing manifest": ["inspect", "{missing}"],
    "inspect garbage YAML": ["inspect", "{yaml}"],
    "inspect an empty folder": ["inspect", "{empty}"],
    "plan from garbage YAML": ["plan", "{yaml}", "--out", "{root}/plan.json"],
    "preprocess with a missing plan": ["preprocess", "{yaml}", "--plan", "{missing}", "--cache", "{root}/c"],
    "preprocess with a garbage plan": ["preprocess", "{yaml}", "--plan", "{json}", "--cache", "{root}/c"],
    "train with a missing plan": ["train", "{yaml}", "--plan", "{missing}", "--out", "{root}/run"],
    "train with an unknown strategy": ["train", "{yaml}", "--plan", "{json}", "--strategy", "magic"],
    "train with a malformed option": ["train", "{yaml}", "--strategy", "unimatch", "--strategy-option", "tau"],
    "predict with a missing checkpoint": ["predict", "{missing}", "{empty}", "--out", "{root}/p1"],
    "predict with a pickle": ["predict", "{pickle}", "{empty}", "--out", "{root}/p2"],
    "predict with a garbage checkpoint": ["predict", "{json}", "{empty}", "--out", "{root}/p3"],
    "predict with a text file as checkpoint": ["predict", "{file}", "{empty}", "--out", "{root}/p4"],
    "evaluate a missing folder": ["evaluate", "{missing}", "{yaml}"],
    "evaluate with a garbage manifest": ["evaluate", "{empty}", "{yaml}", "--out", "{root}/e1"],
    "evaluate a file": ["evaluate", "{file}", "{yaml}", "--out", "{root}/e2"],
    "evaluate a negative tolerance": ["evaluate", "{empty}", "{yaml}", "--tolerance-mm", "-5"],
    "report an empty folder": ["report", "{empty}"],
    "report a file": ["report", "{file}"],
    "report a missing folder": ["report", "{missing}"],
    "demo into a file": ["demo", "--out", "{file}"],
    "demo with an unknown precision": ["demo", "--out", "{root}/d", "--precision", "float8"],
    "predict on a GPU that is not there": ["predict", "{pickle}", "{empty}", "--out", "{root}/p5", "--device", "cuda"],
    "train with a negative learning rate": ["train", "{yaml}", "--learning-rate", "-1"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_command_answers_wrong_input_with_a_traceback(junk, case):
    args = [a.format(**junk) for a in CASES[case]]
    result = invoke(*args)
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert "error" in result.output.lower(), result.output
    assert "unexpected" not in result.output and "bug in unimos" not in result.output  # foreseen: a real message
