"""The UnimosError family: every error a user can cause says which file, what is wrong and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One problem found in the user's input: the file(s), what is wrong, what to do."""

    where: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}. Fix: {self.fix}"


class UnimosError(Exception):
    """Base class for errors the CLI prints as one readable paragraph (no traceback) before exiting non-zero."""

    def __init__(self, where: str | Path, problem: str, fix: str) -> None:
        self.problems = [Problem(str(where), problem.rstrip("."), fix.rstrip("."))]
        super().__init__(str(self.problems[0]))


class InputError(UnimosError):
    """An input file (image, label, DICOM folder) cannot be used."""


class ManifestError(UnimosError):
    """The manifest (or the folder standing in for one) is malformed."""


class TaxonomyError(UnimosError):
    """A class name or taxonomy declaration is unknown or inconsistent."""


class PlanError(UnimosError):
    """A plan file is missing, malformed or does not match the data."""


class OutputError(UnimosError):
    """An output location cannot be written."""


class ResourceError(UnimosError):
    """The work would need more memory (or disk) than the user allows; refused before it starts."""


class ValidationFailed(UnimosError):
    """Several problems found at once (by `inspect`); all are listed."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problem(s) found:"] + [f"  - {p}" for p in self.problems]
        Exception.__init__(self, "\n".join(lines))
