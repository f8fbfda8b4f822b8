"""Shared pieces of the bad-input tests: tiny broken files, one-case manifests, a tiny checkpoint, CLI checks,
and running a command as an unprivileged user (root ignores file permissions)."""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner, Result

from tests.conftest import tiny_case, tiny_training_plan, write_manifest, write_nifti
from unimos.cli.main import app
from unimos.utils.atomic import is_partial

runner = CliRunner()
LIVER_BOX = (slice(4, 10), slice(4, 10), slice(2, 8))


def invoke(*args: str | Path) -> Result:
    """Run `unimos ARGS` in-process, as a user would from the shell."""
    return runner.invoke(app, [str(a) for a in args])


def assert_one_clear_error(result: Result | CommandResult, culprit: str | Path, *phrases: str) -> str:
    """Non-zero exit, no traceback, exactly one message naming `culprit`, with the phrases and one fix.

    Returns the output with whitespace collapsed, for further checks.
    """
    output = " ".join(result.output.split())
    assert result.exit_code != 0, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    messages = (len(re.findall(r"\berror:", output)) + len(re.findall(r"\b1 problem\(s\) found", output))
                + len(re.findall(r"\b1 of \d+ case\(s\) failed", output)))
    assert messages == 1, output
    assert output.count("Fix:") == 1, output
    assert str(culprit) in output, output
    for phrase in phrases:
        assert phrase in output, output
    return output


def files_under(folder: Path) -> set[str]:
    """Every file below `folder` (relative paths), to show that a failing command wrote nothing."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def leftovers(folder: Path) -> list[Path]:
    """Unfinished writes below `folder`: atomic-write temporaries, hidden files or *.tmp."""
    if not folder.exists():
        return []
    return [p for p in folder.rglob("*") if is_partial(p) or p.name.startswith(".") or p.suffix == ".tmp"]


def one_case_manifest(folder: Path, image: Path, label: Path | None, *, labels: dict | None = None,
                      classes: list | None = None, extra_cases: list | None = None) -> Path:
    """A manifest of one full CT source (liver = 1) holding the case `a` (plus `extra_cases`)."""
    case = {"id": "a", "image": str(image.relative_to(folder))}
    if label is not None:
        case["label"] = str(label.relative_to(folder))
    return write_manifest(folder, {
        "project": {"name": "bad", "classes": classes or ["liver"]},
        "sources": [{"name": "s", "modality": "CT", "kind": "full", "labels": labels or {1: "liver"},
                     "cases": [case] + (extra_cases or [])}]})


def good_case(folder: Path, case_id: str = "a", seed: int = 0) -> tuple[Path, Path]:
    """A readable tiny CT case with a liver box: (image, label)."""
    return tiny_case(folder, case_id, labels={1: LIVER_BOX}, seed=seed)


def resave(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Overwrite a NIfTI file with new voxels (and affine), keeping the old affine by default."""
    old = nib.load(path)
    nib.save(nib.Nifti1Image(array, old.affine if affine is None else affine), str(path))
    return path


def with_pixdim(path: Path, pixdim: tuple[float, float, float]) -> Path:
    """Store the voxel sizes `pixdim` with no sform and no qform: the header's voxel sizes alone give the geometry."""
    old = nib.load(path)
    img = nib.Nifti1Image(np.asanyarray(old.dataobj), None, old.header.copy())
    img.header.set_sform(None, code=0)
    img.header.set_qform(None, code=0)
    img.header["pixdim"][1:4] = pixdim
    nib.save(img, str(path))
    return path


def truncate(path: Path) -> Path:
    """Cut a file in half, as an interrupted copy does."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def unreadable(path: Path) -> Path:
    """chmod 000 `path`. Root still reads it: run the command with `invoke_with_permissions`."""
    path.chmod(0)
    return path


# ----------------------------------------------------------------------------------------------- permissions as root

UNPRIVILEGED_USER = "nobody"


@dataclass
class CommandResult:
    """What a command run in a subprocess gave: the fields of typer's `Result` that the checks above read."""

    exit_code: int
    output: str
    exception: BaseException | None = None


def runs_as_root() -> bool:
    """True when file permissions do not stop this process (CI runs as root)."""
    return os.geteuid() == 0


def _as_unprivileged_user() -> list[str]:
    """The command prefix that drops root to `nobody` (its own group, no others), or [] when no tool can."""
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "--preserve-environment", "-u", UNPRIVILEGED_USER, "--"]
    return []


@contextlib.contextmanager
def _unprivileged_env() -> Iterator[dict[str, str]]:
    """This environment as `nobody` with a fresh home of its own (libraries such as matplotlib write caches there,
    and warn about the missing /nonexistent otherwise: noise in the output the tests read)."""
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    with tempfile.TemporaryDirectory(prefix="unimos-nobody-home-") as home:
        os.chown(home, user.pw_uid, user.pw_gid)
        yield {**os.environ, "HOME": home, "USER": user.pw_name, "LOGNAME": user.pw_name}


@functools.cache
def unprivileged_problem() -> str | None:
    """Why `nobody` cannot run this checkout's unimos (None when it can); tried once per test session."""
    try:
        prefix = _as_unprivileged_user()
    except KeyError:
        return f"there is no user '{UNPRIVILEGED_USER}' to run the command as"
    if not prefix:
        return "neither setpriv nor runuser (util-linux) is installed to run the command as an unprivileged user"
    with _unprivileged_env() as env:
        probe = subprocess.run([*prefix, sys.executable, "-c", "import unimos.cli.main"], check=False,
                               capture_output=True, text=True, cwd="/", env=env, timeout=300)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return (f"user '{UNPRIVILEGED_USER}' cannot import unimos with {sys.executable} ({last}): make the checkout "
                "and its virtual environment readable by other users to run the permission tests as root")
    return None


def run_python_as_unprivileged(*args: str) -> CommandResult:
    """Run `<this python> ARGS` as `nobody` (skips the test when that user cannot import unimos)."""
    problem = unprivileged_problem()
    if problem is not None:
        pytest.skip(problem)
    with _unprivileged_env() as env:
        done = subprocess.run([*_as_unprivileged_user(), sys.executable, *args], check=False, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, cwd="/", env=env, timeout=600)
    return CommandResult(done.returncode, done.stdout)


def run_as_unprivileged(*args: str | Path) -> CommandResult:
    """Run `unimos ARGS` as `nobody` in a subprocess: stdout and stderr together, as the CLI runner gives them."""
    return run_python_as_unprivileged("-m", "unimos.cli.main", *(str(a) for a in args))


def invoke_with_permissions(*args: str | Path) -> Result | CommandResult:
    """Run `unimos ARGS` where chmod applies: in-process for a normal user, as `nobody` when the tests run as root."""
    return run_as_unprivileged(*args) if runs_as_root() else invoke(*args)


def copy_checkpoint(checkpoint: Path, folder: Path) -> Path:
    """Copy a checkpoint (NAME.json + NAME.safetensors) into `folder`, readable by all: for commands run as `nobody`."""
    for part in checkpoint.parent.glob(f"{checkpoint.name}.*"):
        shutil.copyfile(part, folder / part.name)  # copyfile, not copy: the mode comes from the umask
    return folder / checkpoint.name


@contextlib.contextmanager
def unprivileged_workspace() -> Iterator[Path]:
    """A scratch folder for a command that may run as `nobody`: that user owns it, and what the test writes there is
    readable by all (pytest's tmp_path sits below a folder only its owner may enter); removed afterwards."""
    problem = unprivileged_problem() if runs_as_root() else None
    if problem is not None:
        pytest.skip(problem)
    folder = Path(tempfile.mkdtemp(prefix="unimos-permissions-"))
    folder.chmod(0o755)
    if runs_as_root():
        user = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(folder, user.pw_uid, user.pw_gid)
    umask = os.umask(0o022)  # files and folders the test makes: readable by the unprivileged user
    try:
        yield folder
    finally:
        os.umask(umask)
        shutil.rmtree(folder, ignore_errors=True)


def mixed_dicom_series(shared_series: Path, folder: Path) -> Path:
    """Four slices of the real CT series, two of them relabelled as a second series (another SeriesInstanceUID)."""
    import pydicom

    folder.mkdir(parents=True)
    for i, source in enumerate(sorted(shared_series.iterdir())[:4]):
        dataset = pydicom.dcmread(source)
        if i % 2:
            dataset.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1125.77.2"
            dataset.SeriesDescription = "venous copy"
        dataset.save_as(folder / source.name)
    return folder


def train_tiny_checkpoint(root: Path) -> Path:
    """A checkpoint of a 2-step DynUNet (liver only, 16^3 patches) trained on one tiny case: fast, not accurate."""
    from unimos.data.manifest import load_manifest
    from unimos.preprocess.cache import open_cache, preprocess_manifest
    from unimos.preprocess.plan import with_hashes
    from unimos.training.config import TrainConfig
    from unimos.training.loop import train

    image, label = good_case(root / "train")
    manifest = load_manifest(one_case_manifest(root / "train", image, label))
    plan = with_hashes(tiny_training_plan(manifest).model_copy(update={"patch_size": [16, 16, 16]}))
    preprocess_manifest(manifest, plan, root / "cache", workers=1)
    result = train(open_cache(root / "cache", plan), plan, TrainConfig(iterations=2, checkpoint_every=0, device="cpu"),
                   root / "run")
    return Path(result.checkpoint)


def good_scan(path: Path, seed: int = 0, shape: tuple[int, int, int] = (24, 20, 12)) -> Path:
    """A tiny CT-like scan at `path`: air around a 40 HU body holding a brighter 'liver' box, 2 x 2 x 3 mm."""
    rng = np.random.default_rng(seed)
    image = np.full(shape, -1000, dtype=np.int16)
    image[2:-2, 2:-2, :] = 40 + rng.integers(-5, 5, size=(shape[0] - 4, shape[1] - 4, shape[2]))
    image[LIVER_BOX] = 80
    return write_nifti(path, image, np.diag([2.0, 2.0, 3.0, 1.0]))


def predict_log(out: Path) -> dict[str, dict]:
    """predict_log.json of a prediction folder, by case id."""
    import json

    return {r["case_id"]: r for r in json.loads((out / "predict_log.json").read_text())}
