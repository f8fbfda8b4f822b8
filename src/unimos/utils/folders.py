"""Checks on the folders a command writes to, made before any work: inputs are never modified, an earlier
run's results are replaced only when asked, and a folder option that names a file is refused."""

from __future__ import annotations

from pathlib import Path

from unimos.errors import OutputError


def refuse_output_inside_inputs(output: str | Path, input_folders: list[Path], option: str,
                                allow: bool = False) -> None:
    """Inputs are never modified: an output folder inside a folder of input scans is refused unless `allow`."""
    if allow:
        return
    target = Path(output).resolve()
    for folder in input_folders:
        folder = folder.resolve()
        if target == folder or folder in target.parents:
            raise OutputError(output, f"lies inside the input folder {folder}",
                              f"give {option} a folder outside it, or add --allow-output-in-input")


def check_output_folder(folder: str | Path, option: str) -> None:
    """An output folder option that names a file (or lies below one) is refused before any work."""
    folder = Path(folder)
    blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        problem = "is a file, not a folder" if blocker == folder else f"cannot be created: {blocker} is a file"
        raise OutputError(folder, problem, f"give {option} a folder path")


def refuse_existing_outputs(folder: str | Path, names: tuple[str, ...], overwrite: bool, what: str) -> None:
    """Files that an earlier run wrote are replaced only with `overwrite`; refused otherwise, before any work."""
    folder = Path(folder)
    check_output_folder(folder, "--out")
    found = [name for name in names if (folder / name).exists()]
    if found and not overwrite:
        raise OutputError(folder, f"holds the results of {what} ({', '.join(found)})",
                          "give --out another folder, or add --overwrite to replace them")
