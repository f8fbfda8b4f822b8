"""The manifest's YAML schema (pydantic): what a user writes, before any label name is resolved.

`manifest.py` resolves these specs into sources and cases; the importers build them from nnU-Net v2 and MSD folders.
"""

from __future__ import annotations

from typing import Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

AnnotationKind = Literal["full", "partial", "sparse", "unlabeled"]
Split = Literal["train", "validation", "test"]
SPLITS: tuple[str, ...] = get_args(Split)


class CaseSpec(BaseModel):
    """One case as written in the manifest (paths relative to the manifest's folder)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    image: Union[str, list[str]]
    label: str | None = None
    split: Split = "train"
    annotated_classes: list[str] | None = None
    annotated_slices: dict[int, list[int]] | None = None

    @field_validator("annotated_slices")
    @classmethod
    def _axes_are_spatial(cls, value: dict[int, list[int]] | None) -> dict[int, list[int]] | None:
        if value is not None and any(axis not in (0, 1, 2) for axis in value):
            raise ValueError("annotated_slices keys are voxel axes of the label file: 0, 1 or 2")
        return value


class SourceSpec(BaseModel):
    """A set of cases annotated the same way; `import` points at an nnU-Net v2 raw or MSD folder instead of cases."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(min_length=1)
    modality: str = "CT"
    kind: AnnotationKind | None = None
    labels: dict[int, Union[str, list[str]]] = Field(default_factory=dict)
    annotated_classes: list[str] | None = None
    import_folder: str | None = Field(default=None, alias="import")
    cases: list[CaseSpec] = Field(default_factory=list)


class ProjectSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "unimos-project"
    classes: Union[Literal["abdominal"], list[Union[str, dict[str, Any]]]] = "abdominal"


class ManifestSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: ProjectSpec = Field(default_factory=ProjectSpec)
    sources: list[SourceSpec] = Field(min_length=1)
