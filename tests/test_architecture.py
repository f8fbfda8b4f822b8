"""The layers of docs/architecture.md, checked on every test run: the import-linter contracts of pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_layer_imports_only_downward_and_no_package_has_an_import_circle():
    # the contracts live in pyproject.toml ([tool.importlinter]); lint-imports reads them from the repository root
    lint_imports = Path(sys.executable).with_name("lint-imports")  # installed by the `test` extra
    done = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " broken." in done.stdout and "0 broken." in done.stdout and "BROKEN" not in done.stdout
