"""The files of a prediction batch, checked before any work: inputs grouped into cases by channel, colliding case
names and earlier outputs refused, the output folder's labels.json written and kept consistent."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from unimos.data.io import case_id_from_path, image_extension, prediction_path
from unimos.errors import InputError, OutputError, UnimosError
from unimos.inference.model import LoadedModel
from unimos.utils.atomic import write_json_atomic


def output_folder(out_dir: Path) -> list[Path]:
    """Create the output folder, or say in one error why it cannot be (a file in the way, no permission, no space).

    Returns the folders it created, deepest first (empty when `out_dir` existed), so a failed run can remove them."""
    blocker = next((p for p in (out_dir, *out_dir.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        problem = "is a file, not a folder" if blocker == out_dir else f"cannot be created: {blocker} is a file"
        raise OutputError(out_dir, problem, "give a folder path for the predictions")
    created = [p for p in (out_dir, *out_dir.parents) if not p.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(out_dir, f"cannot be created ({err.strerror or err})",
                          "choose an output folder where you may write (check permissions and free space)") from None
    return created


def group_channels(inputs: Sequence[Path], n_channels: int) -> list[tuple[str, list[Path]]]:
    """Inputs as cases: nnU-Net style `<case>_0000, _0001...` files grouped when the model has several channels."""
    if n_channels == 1:
        return [(case_id_from_path(p), [p]) for p in inputs]
    groups: dict[str, list[Path]] = {}
    for path in inputs:
        groups.setdefault(case_id_from_path(path), []).append(path)
    for case_id, files in groups.items():
        if len(files) != n_channels:
            raise UnimosError(files[0],
                              f"case '{case_id}' has {len(files)} channel file(s), the model needs {n_channels}",
                              "give <case>_0000 ... files for every channel")
    return sorted((k, sorted(v)) for k, v in groups.items())


def _input_key(path: Path, n_channels: int) -> str:
    """What names an input's output: its case id (one channel), or its name without extension (one channel file of
    a case, so `x_0000.nii` and `x_0000.nii.gz` are the same channel twice)."""
    if n_channels == 1:
        return case_id_from_path(path)
    ext = image_extension(path)
    return path.name if ext is None or path.is_dir() else path.name[: -len(ext)]


def colliding_inputs(inputs: Sequence[Path], n_channels: int) -> list[list[Path]]:
    """Groups of inputs that would overwrite each other's output (`case.nii` and `case.nii.gz`; `x_0000` and
    `x_0001` given to a one-channel model), or give one channel of a case twice."""
    groups: dict[str, list[Path]] = {}
    for path in inputs:
        groups.setdefault(_input_key(Path(path), n_channels), []).append(Path(path))
    return [sorted(files) for _key, files in sorted(groups.items()) if len(files) > 1]


def _input_text(path: Path, folder: Path) -> str:
    """An input's name in a listing: its file name when it sits in `folder`, else its path."""
    return path.name if path.parent == folder else str(path)


def refuse_colliding_inputs(inputs: Sequence[Path], n_channels: int, out_dir: Path, fmt: str) -> None:
    """One error listing every group of inputs that map to one output name, before any work."""
    groups = colliding_inputs(inputs, n_channels)
    if not groups:
        return
    folder = groups[0][0].parent
    lines = []
    for files in groups:
        listed = ", ".join(_input_text(p, folder) for p in files[:-1]) + f" and {_input_text(files[-1], folder)}"
        target = prediction_path(out_dir, case_id_from_path(files[0]), fmt).name
        lines.append(f"{listed} -> {target}" if n_channels == 1 else f"{listed} (the same channel twice)")
    channel_files = n_channels == 1 and any(_input_key(p, 2) != case_id_from_path(p) for g in groups for p in g)
    hint = ("; the model takes one channel, so files such as x_0000 and x_0001 (channels of one multi-channel case) "
            "cannot both be given: keep the channel it was trained on") if channel_files else ""
    raise InputError(folder, f"{sum(len(g) for g in groups)} inputs would be written to {len(groups)} output "
                             f"name(s) and overwrite each other: {'; '.join(lines)}",
                     f"give each case once: remove or rename all but one file of each group{hint}")


def refuse_existing_outputs(targets: Sequence[Path], out_dir: Path, skip_existing: bool, overwrite: bool) -> None:
    """Refuse, before any work, to replace outputs an earlier run wrote unless told to skip or replace them."""
    if skip_existing and overwrite:
        raise UnimosError("--overwrite", "contradicts --skip-existing (one replaces existing outputs, the other keeps "
                                         "them)", "pass only one of them")
    if skip_existing or overwrite:
        return
    existing = [t for t in targets if t.exists()]
    if not existing:
        return
    shown = ", ".join(t.name for t in existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
    raise OutputError(out_dir, f"already holds {len(existing)} of the {len(targets)} output(s) this run would write "
                               f"({shown})",
                      "pass --skip-existing to keep them and predict only the other cases, or --overwrite to replace "
                      "them (or choose another --out folder)")


def refuse_other_classes(model: LoadedModel, out_dir: Path) -> None:
    """A folder whose labels.json names other classes holds another model's predictions: mixing ours in would make
    `unimos evaluate` read one of the two with the wrong class names."""
    path = out_dir / "labels.json"
    if not path.is_file():
        return
    labels = {str(i): n for i, n in enumerate(model.class_names)}
    try:
        same = json.loads(path.read_text(encoding="utf-8")) == labels
    except (OSError, ValueError):
        same = False
    if not same:
        raise OutputError(out_dir, f"holds predictions whose {path.name} names other classes than this model's "
                                   f"({', '.join(model.class_names[1:])})",
                          "give --out another folder (each folder holds one model's predictions)")


def write_labels_json(model: LoadedModel, out_dir: Path) -> Path | None:
    """labels.json beside the outputs, written when missing (`refuse_other_classes` has refused a different one);
    returns it when this call created it."""
    path = out_dir / "labels.json"
    if path.exists():
        return None
    return write_json_atomic(path, {str(i): n for i, n in enumerate(model.class_names)})


def remove_what_we_created(files: Sequence[Path], folders: Sequence[Path]) -> None:
    """Undo a run that produced nothing: the files it created, then the folders it created if they are empty."""
    for path in files:
        path.unlink(missing_ok=True)
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:  # not empty (someone else's file), or gone
            break
