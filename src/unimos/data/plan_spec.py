"""The plan as a typed object (pydantic): the fields a plan JSON holds and their types, checked once when a plan is
made or read, and which of them the preprocessed cache and a trained model depend on.

From `make_plan` / `load_plan` (`preprocess/plan.py`) on, a plan travels through unimos as a `Plan` read by
attributes (`plan.patch_size`, `plan.classes[0].name`, `plan.normalisation["CT"].scheme`); code that receives one
does not check it again. `to_json()` gives back exactly the JSON the plan holds (no default it was not given), so plan
files, hashes and cache keys stay byte-identical; `with_hashes` computes the hashes from it. The network entry stays a
dict: each network checks its own keys (`networks/registry.py`). A checkpoint keeps the `MODEL_KEYS` of its plan
(`Plan.model_record`, `training/loop.py`); prediction reads them back as a `ModelPlan` (`inference/model.py`), and
`networks/checkpoint.py` compares them when the checkpoint is used with another plan. A plan may be edited by hand:
unknown extra fields are kept, wrong types are refused.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PLAN_VERSION = 1
# Fields whose values change the cached arrays; the cache is keyed by their hash alone.
PREPROCESSING_KEYS: tuple[str, ...] = ("unimos_plan_version", "target_spacing_mm", "normalisation", "crop_to_body",
                                       "classes", "label_resampling")
# Fields a trained model depends on: a checkpoint keeps them, and names them when another plan differs.
MODEL_KEYS: tuple[str, ...] = ("target_spacing_mm", "patch_size", "network", "normalisation", "crop_to_body",
                               "classes")
HASH_KEYS: tuple[str, ...] = ("cache_key", "hash")
# The order of a plan file's fields as `unimos plan` writes them; hand-added fields follow, the hashes come last.
FILE_ORDER: tuple[str, ...] = ("unimos_plan_version", "preset", "target_spacing_mm", "patch_size", "batch_size",
                               "normalisation", "crop_to_body", "label_resampling", "network", "classes", "fingerprint")

Number = int | float
"""A JSON number kept as written (an int stays an int), so that a hand-written plan hashes as it always did."""


class PlanPart(BaseModel):
    """A part of a plan JSON: hand-added fields kept, and `to_json` gives back exactly the JSON it holds."""

    model_config = ConfigDict(extra="allow")

    def to_json(self) -> dict[str, Any]:
        """The JSON dict of this part: the fields it was given or set, none of the defaults it was not given."""
        return self.model_dump(mode="json", exclude_unset=True)


class NormalisationSpec(PlanPart):
    """How one modality's intensities are normalised: `ct_clip_zscore` (dataset-wide clip, mean, std) or
    `zscore_per_volume` (each volume by its own mean and std, for MR)."""

    scheme: Literal["ct_clip_zscore", "zscore_per_volume"]
    clip: tuple[Number, Number] | None = None
    mean: Number | None = None
    std: Number | None = None


class ClassSpec(PlanPart):
    """One class of the plan's taxonomy (the project classes, background excluded)."""

    name: str = Field(min_length=1)
    parents: list[str] = []


class ModelPlan(PlanPart):
    """The fields of a plan a trained model depends on (MODEL_KEYS) and the plan's hashes: what a checkpoint keeps
    of its plan, and all that preparing and predicting a scan read of one (a `Plan` is one too)."""

    target_spacing_mm: list[Number] = Field(min_length=3, max_length=3)
    patch_size: list[int] = Field(min_length=2, max_length=3)
    network: dict[str, Any]  # the network's own config, checked by the network it names (networks/registry.py)
    normalisation: dict[str, NormalisationSpec] = Field(min_length=1)
    crop_to_body: bool = True
    classes: list[ClassSpec] = Field(min_length=1)
    cache_key: str | None = None  # set by `with_hashes`: the hash of PREPROCESSING_KEYS, naming the cache folder
    hash: str | None = None  # set by `with_hashes`: the hash of every other field

    @field_validator("target_spacing_mm")
    @classmethod
    def _positive_spacing(cls, value: list[Number]) -> list[Number]:
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

    def model_record(self) -> dict[str, Any]:
        """The JSON of MODEL_KEYS and the hashes, in that order, as a checkpoint keeps it (fields not set left out)."""
        payload = self.to_json()
        return {k: payload[k] for k in (*MODEL_KEYS, *HASH_KEYS) if k in payload}


class Plan(ModelPlan):
    """A plan as written by `unimos plan` (its fingerprint, hashes and hand-added fields pass through unchecked)."""

    unimos_plan_version: Literal[1]
    preset: str | None = None
    batch_size: int = Field(default=2, ge=1)
    # "nearest" or "linear_argmax" (per-class linear, then argmax); sparse slices always use nearest.
    label_resampling: Literal["nearest", "linear_argmax"] = "nearest"
    fingerprint: dict[str, Any] | None = None  # the data statistics the plan was derived from, for a reader

    def to_json(self) -> dict[str, Any]:
        """The plan JSON: its fields in FILE_ORDER, hand-added ones after them, the hashes last (as in a file)."""
        payload = super().to_json()
        extra = [k for k in payload if k not in FILE_ORDER and k not in HASH_KEYS]
        order = [k for k in (*FILE_ORDER, *extra, *HASH_KEYS) if k in payload]
        return {k: payload[k] for k in order}


Checked = TypeVar("Checked", bound=PlanPart)


def checked(kind: type[Checked], payload: Any) -> tuple[Checked | None, list[str]]:
    """The `kind` a JSON payload holds, or None and every problem of its fields ('target_spacing_mm: ...')."""
    if not isinstance(payload, dict):
        return None, [f"is a JSON {type(payload).__name__}, not an object of plan fields"]
    try:
        return kind.model_validate(payload), []
    except ValidationError as err:
        return None, [f"{'.'.join(str(p) for p in e['loc']) or 'plan'}: {e['msg']} (got {e.get('input')!r:.80})"
                      for e in err.errors()]


def plan_problems(payload: Any) -> list[str]:
    """Every problem of a plan's fields, one sentence each ('target_spacing_mm: ...'); empty when it is valid."""
    return checked(Plan, payload)[1]
