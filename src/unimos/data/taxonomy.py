"""A project's ordered class list (0 = background) and how source label names resolve onto it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from unimos.data import catalogue as cat
from unimos.errors import Problem, TaxonomyError, ValidationFailed


@dataclass(frozen=True)
class ClassDef:
    """One project class; `parents` are the classes whose region contains it (liver_tumor -> liver)."""

    name: str
    parents: tuple[str, ...] = ()


@dataclass(frozen=True)
class Taxonomy:
    """Ordered project classes; index 0 is background and is not stored in `classes`."""

    classes: tuple[ClassDef, ...]

    def __post_init__(self) -> None:
        names = [c.name for c in self.classes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise TaxonomyError("project classes", f"class names appear twice: {duplicates}",
                                "list each class once")
        if "background" in names:
            raise TaxonomyError("project classes", "'background' is listed as a class",
                                "leave it out: index 0 is always background")

    @property
    def names(self) -> list[str]:
        """All names by index, background first."""
        return ["background"] + [c.name for c in self.classes]

    @property
    def num_classes(self) -> int:
        """Number of output channels (background included)."""
        return len(self.classes) + 1

    def index(self, name: str) -> int:
        """Index of a class name (background = 0)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise TaxonomyError("project classes", f"'{name}' is not a project class",
                                f"use one of {self.names[1:]}") from None

    def parents_of(self, index: int) -> list[int]:
        """Indices of the classes whose region contains class `index`."""
        if index == 0:
            return []
        return [self.index(p) for p in self.classes[index - 1].parents]

    def children_of(self, index: int) -> list[int]:
        """Indices of the classes contained in class `index`."""
        return [i for i in range(1, self.num_classes) if index in self.parents_of(i)]

    def descendants(self, index: int) -> list[int]:
        """Every class below `index` (children, their children, ...): the parent's region holds them."""
        found: list[int] = []
        stack = list(self.children_of(index))
        while stack:
            child = stack.pop()
            if child not in found:
                found.append(child)
                stack.extend(self.children_of(child))
        return found

    def to_json(self) -> list[dict[str, Any]]:
        return [{"name": c.name, "parents": list(c.parents)} for c in self.classes]

    @classmethod
    def from_json(cls, payload: Sequence[dict[str, Any]]) -> "Taxonomy":
        return cls(tuple(ClassDef(d["name"], tuple(d.get("parents", ()))) for d in payload))


def _known_names() -> list[str]:
    return sorted(set(cat.canonical_names()) | set(cat.SYNONYMS) | set(cat.OTHER_KNOWN_STRUCTURES)
                  | set(cat.SIDED_PAIRS))


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(cat.normalise_name(name), _known_names(), n=3, cutoff=0.6)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "check the spelling."


def canonical_name(name: str) -> str | None:
    """The canonical name of a known structure (via synonyms), or None when the name is unknown."""
    key = cat.normalise_name(name)
    key = cat.SYNONYMS.get(key, key)
    known = set(cat.canonical_names()) | cat.OTHER_KNOWN_STRUCTURES | set(cat.SIDED_PAIRS)
    return key if key in known else None


def build_taxonomy(spec: Iterable[str | dict[str, Any]], *, allow_custom: bool = False) -> Taxonomy:
    """Make a taxonomy from a class list: known names (synonyms allowed) or `{name:, parent:}` custom entries.

    A plain string must name a known structure, so a typo is caught; `allow_custom` accepts unknown plain
    names as custom classes (used for an nnU-Net `dataset.json`, which declares its own classes).
    """
    entries: list[tuple[str, tuple[str, ...] | None]] = []
    for item in spec:
        if isinstance(item, dict):
            if "name" not in item:
                raise TaxonomyError("project classes", f"custom class entry {item} has no 'name'",
                                    "write it as {name: my_class, parent: optional_parent}")
            parent = item.get("parent")
            parents = tuple(parent) if isinstance(parent, list) else ((parent,) if parent else ())
            entries.append((cat.normalise_name(item["name"]), parents))
            continue
        known = canonical_name(str(item))
        if known is None:
            if allow_custom:
                entries.append((cat.normalise_name(str(item)), ()))
                continue
            raise TaxonomyError("project classes", f"unknown class name '{item}'",
                                f"{_suggest(str(item))} To declare a class of your own write "
                                f"{{name: {cat.normalise_name(str(item))}}}")
        entries.append((known, None))
    selected = {name for name, _ in entries}
    classes, problems = [], []
    for name, parents in entries:
        given = parents is not None
        parents = parents if given else _default_parents(name, selected)
        kept = tuple(p for p in parents if p in selected)
        if parents and not kept or given and len(kept) < len(parents):
            problems.append(_orphan_problem(name, [p for p in parents if p not in selected], given))
        classes.append(ClassDef(name, kept))
    if len(problems) == 1:
        raise TaxonomyError(problems[0].where, problems[0].problem, problems[0].fix)
    if problems:
        raise ValidationFailed(problems)
    return Taxonomy(tuple(classes))


def _orphan_problem(name: str, missing: list[str], given: bool) -> Problem:
    """A lesion (or custom child) whose organ is not a project class: an organ-only source's voxels of that organ
    could not be told apart from background, so such a class is refused rather than trained wrongly."""
    if given:
        return Problem("project classes", f"class '{name}' names parent(s) {missing} that are not project classes",
                       f"add {' and '.join(missing)} to the classes, or drop them from the parent list of '{name}'")
    organs = " and ".join(missing)
    inside = f"{missing[0]}, which is not" if len(missing) == 1 else f"{' or '.join(missing)}, none of which is"
    return Problem("project classes", f"lesion class '{name}' lies inside {inside} a project class",
                   f"add {organs} to the classes, or declare the lesion's organs yourself: "
                   f"{{name: {name}, parent: [organ, ...]}}")


def _default_parents(name: str, selected: set[str]) -> tuple[str, ...]:
    parent = cat.default_parent(name)
    if parent is None:
        return ()
    if parent in cat.SIDED_PAIRS and parent not in selected:
        return tuple(cat.SIDED_PAIRS[parent])
    return (parent,)


def abdominal_taxonomy(names: Sequence[str] | None = None) -> Taxonomy:
    """The canonical abdominal taxonomy, or the chosen subset of it in the given order."""
    return build_taxonomy(names if names is not None else [n for n, _ in cat.ABDOMINAL_CLASSES])


@dataclass(frozen=True)
class LabelMeaning:
    """What one source label value means for the project.

    kind: `class` (one project class), `background` (certainly none of the project's classes), `ignore`
    (no information), or `sided` (a merged left/right label: `classes` = (right, left), each a project class or
    '' when the project does not select that side). `part` marks a value that labels only part of its class (an
    unselected lesion read as its organ): its voxels are that class, but the value does not annotate the whole class.
    """

    kind: Literal["class", "background", "ignore", "sided"]
    classes: tuple[str, ...] = ()
    part: bool = False


def resolve_label_name(name: str | Sequence[str], taxonomy: Taxonomy, context: Sequence[str] = (),
                       where: str = "source labels") -> LabelMeaning:
    """Resolve a source's label name (or a [right, left] pair) against the project taxonomy.

    `context` holds the source's other label names, used to read a bare "tumor" as the lesion of the organ that
    source annotates (MSD, KiTS, LiTS). A lesion the project did not select is part of its organ (a project lesion
    class declared inside that organ, else the organ itself); any other known structure the project did not select
    resolves to background; a name that matches nothing known is a TaxonomyError suggesting the closest known name.
    """
    if not isinstance(name, str):
        if len(name) != 2:
            raise TaxonomyError(where, f"merged label {list(name)} must list exactly two classes",
                                "write it as [right_member, left_member], e.g. [kidney_right, kidney_left]")
        right, left = (_resolve_single(n, taxonomy, context, where) for n in name)
        return LabelMeaning("sided", (_as_project_class(right), _as_project_class(left)))
    key = cat.normalise_name(name)
    key = cat.SYNONYMS.get(key, key)
    if key in cat.IGNORE_NAMES:
        return LabelMeaning("ignore")
    if key in cat.BACKGROUND_NAMES:
        return LabelMeaning("background")
    if key in cat.SIDED_PAIRS and key not in taxonomy.names:
        right, left = cat.SIDED_PAIRS[key]
        return LabelMeaning("sided", (_as_project_class(_resolve_single(right, taxonomy, context, where)),
                                      _as_project_class(_resolve_single(left, taxonomy, context, where))))
    return _resolve_single(name, taxonomy, context, where)


def _as_project_class(meaning: LabelMeaning) -> str:
    return meaning.classes[0] if meaning.kind == "class" else ""


def _resolve_single(name: str, taxonomy: Taxonomy, context: Sequence[str], where: str) -> LabelMeaning:
    key = cat.normalise_name(name)
    if key in taxonomy.names[1:]:
        return LabelMeaning("class", (key,))
    if key in cat.GENERIC_LESION_NAMES:
        key = _lesion_from_context(name, context, where)
    known = canonical_name(key)
    if known is None:
        raise TaxonomyError(where, f"label name '{name}' matches no known structure",
                            f"{_suggest(name)} Or map the value to 'ignore' or 'background'")
    if known in taxonomy.names[1:]:
        return LabelMeaning("class", (known,))
    for pair, members in cat.SIDED_PAIRS.items():
        if known in members and pair in taxonomy.names[1:]:
            return LabelMeaning("class", (pair,))
    organ = cat.default_parent(known)
    if organ is not None:
        return _unselected_lesion(organ, taxonomy, context, where)
    return LabelMeaning("background")


def _unselected_lesion(organ: str, taxonomy: Taxonomy, context: Sequence[str], where: str) -> LabelMeaning:
    """An unselected lesion of `organ`: a project lesion class declared inside that organ (FLARE23's pan-cancer
    'tumor' with several parents), else the organ itself, since the inside of a diseased liver is still liver."""
    members = {organ, *cat.SIDED_PAIRS.get(organ, ())}
    for c in taxonomy.classes:
        if c.name in cat.GENERIC_LESION_NAMES and members & set(c.parents):
            return LabelMeaning("class", (c.name,))
    meaning = resolve_label_name(organ, taxonomy, context, where)
    return meaning if meaning.kind == "background" else LabelMeaning(meaning.kind, meaning.classes, part=True)


def _lesion_from_context(name: str, context: Sequence[str], where: str) -> str:
    organs = {canonical_name(c) for c in context if cat.normalise_name(c) not in cat.GENERIC_LESION_NAMES}
    lesions = {cat.LESION_OF_ORGAN[o] for o in organs if o in cat.LESION_OF_ORGAN}
    if len(lesions) != 1:
        raise TaxonomyError(where, f"label name '{name}' does not say which organ's lesion it is",
                            "name it liver_tumor, kidney_tumor or pancreas_tumor, or, for a lesion of several organs "
                            "(FLARE23's 'Tumor'), declare it in project.classes with its organs: "
                            "{name: tumor, parent: [liver, kidney_right, kidney_left, pancreas]}")
    return lesions.pop()
