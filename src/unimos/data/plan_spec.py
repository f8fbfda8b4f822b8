"""The plan's schema (pydantic): the fields a plan JSON holds and their types, checked once when a plan is read, and
which of them the preprocessed cache and a trained model depend on.

`preprocess/plan.py` derives plans and reads them (`load_plan` validates with `PlanSpec`); a checkpoint keeps the
`MODEL_KEYS` of its plan (`training/loop.py`) and compares them when it is used with another plan
(`networks/checkpoint.py`). A plan may be edited by hand: unknown extra fields are kept, wrong types are refused.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PLAN_VERSION = 1
# Fields whose values change the cached arrays; the cache is keyed by their hash alone.
PREPROCESSING_KEYS: tuple[str, ...] = ("unimos_plan_version", "target_spacing_mm", "normalisation", "crop_to_body",
                                       "classes", "label_resampling")
# Fields a trained model depends on: a checkpoint keeps them, and names them when another plan differs.
MODEL_KEYS: tuple[str, ...] = ("target_spacing_mm", "patch_size", "network", "normalisation", "crop_to_body",
                               "classes")


class NormalisationSpec(BaseModel):
    """How one modality's intensities are normalised: `ct_clip_zscore` (dataset-wide clip, mean, std) or
    `zscore_per_volume` (each volume by its own mean and std, for MR)."""

    model_config = ConfigDict(extra="allow")
    scheme: Literal["ct_clip_zscore", "zscore_per_volume"]
    clip: tuple[float, float] | None = None
    mean: float | None = None
    std: float | None = None


class ClassSpec(BaseModel):
    """One class of the plan's taxonomy (the project classes, background excluded)."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1)
    parents: list[str] = []


class PlanSpec(BaseModel):
    """A plan as written by `unimos plan` (fingerprint, hashes and hand-added fields pass through unchecked)."""

    model_config = ConfigDict(extra="allow")
    unimos_plan_version: Literal[1]
    preset: str | None = None
    target_spacing_mm: list[float] = Field(min_length=3, max_length=3)
    patch_size: list[int] = Field(min_length=2, max_length=3)
    batch_size: int = Field(default=2, ge=1)
    normalisation: dict[str, NormalisationSpec] = Field(min_length=1)
    crop_to_body: bool = True
    label_resampling: Literal["nearest", "linear_argmax"] = "nearest"
    network: dict[str, Any]
    classes: list[ClassSpec] = Field(min_length=1)

    @field_validator("target_spacing_mm")
    @classmethod
    def _positive_spacing(cls, value: list[float]) -> list[float]:
        if any(not s > 0 for s in value):
            raise ValueError("every voxel size must be a positive number of mm")
        return value

    @field_validator("patch_size")
    @classmethod
    def _positive_patch(cls, value: list[int]) -> list[int]:
        if any(p < 1 for p in value):
            raise ValueError("every patch side must be at least 1 voxel")
        return value

    @field_validator("network")
    @classmethod
    def _named_network(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("name"), str):
            raise ValueError("the network must be a dict with a 'name', e.g. {'name': 'dynunet', ...}")
        return value


def plan_problems(plan: Any) -> list[str]:
    """Every problem of a plan's fields, one sentence each ('target_spacing_mm: ...'); empty when it is valid."""
    if not isinstance(plan, dict):
        return [f"is a JSON {type(plan).__name__}, not an object of plan fields"]
    try:
        PlanSpec.model_validate(plan)
    except ValidationError as err:
        return [f"{'.'.join(str(p) for p in e['loc']) or 'plan'}: {e['msg']} (got {e.get('input')!r:.80})"
                for e in err.errors()]
    return []
