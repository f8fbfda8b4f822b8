"""The manifest: project classes, sources (how each dataset was annotated) and their cases.

A manifest is a YAML file (schema below, checked with pydantic) or an nnU-Net v2 raw / MSD task folder, which
the importers turn into the same objects. Loading resolves every label name against the project taxonomy, so
later stages see class indices only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from unimos.data.importers import folder_manifest_spec, import_source
from unimos.data.manifest_spec import AnnotationKind, CaseSpec, ManifestSpec, ProjectSpec, SourceSpec, Split
from unimos.data.taxonomy import LabelMeaning, Taxonomy, abdominal_taxonomy, build_taxonomy, resolve_label_name
from unimos.errors import ManifestError, Problem, TaxonomyError, ValidationFailed

__all__ = ["AnnotationKind", "Case", "CaseSpec", "Manifest", "ManifestSpec", "ProjectSpec", "Source", "SourceSpec",
           "Split", "load_manifest", "resolve_manifest"]

@dataclass(frozen=True)
class Source:
    """A resolved source: label values mapped to project meanings, and the classes it annotates."""

    name: str
    modality: str
    kind: AnnotationKind
    label_map: dict[int, LabelMeaning]
    annotated_classes: frozenset[str]


@dataclass(frozen=True)
class Case:
    """One resolved case: its files, its source, and what its label annotates."""

    case_id: str
    source: Source
    image_paths: tuple[Path, ...]
    label_path: Path | None
    split: Split
    annotated_classes: frozenset[str]
    annotated_slices: dict[int, tuple[int, ...]] | None = None

    @property
    def modality(self) -> str:
        return self.source.modality

    @property
    def kind(self) -> AnnotationKind:
        return self.source.kind


@dataclass(frozen=True)
class Manifest:
    """A loaded project: taxonomy, sources and cases, plus where it came from."""

    path: Path
    name: str
    taxonomy: Taxonomy
    sources: tuple[Source, ...]
    cases: tuple[Case, ...]
    notes: tuple[str, ...] = field(default=())

    def cases_of(self, source: str) -> list[Case]:
        return [c for c in self.cases if c.source.name == source]

    def split(self, split: Split) -> list[Case]:
        return [c for c in self.cases if c.split == split]

    def coverage(self) -> dict[str, dict[str, tuple[int, int]]]:
        """Source -> class -> (cases whose reference annotates the class, cases in the source): the coverage matrix
        that `unimos inspect` prints and the report draws."""
        table: dict[str, dict[str, tuple[int, int]]] = {}
        for source in self.sources:
            cases = self.cases_of(source.name)
            table[source.name] = {name: (sum(name in c.annotated_classes for c in cases), len(cases))
                                  for name in self.taxonomy.names[1:]}
        return table


def _format_validation_error(path: Path, err: ValidationError) -> ManifestError:
    details = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:8])
    return ManifestError(path, f"the manifest does not follow the schema ({details})",
                         "correct these fields; see `unimos inspect --help` for an example manifest")


def parse_manifest_text(text: str, path: Path) -> ManifestSpec:
    """Parse and schema-check manifest YAML; any problem is one ManifestError naming the fields."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ManifestError(path, f"is not valid YAML ({err})", "fix the YAML syntax at the position shown") from None
    if not isinstance(raw, dict):
        raise ManifestError(path, "is not a YAML mapping with 'project' and 'sources'",
                            "start from the manifest that `unimos make-demo-data` writes")
    try:
        return ManifestSpec.model_validate(raw)
    except ValidationError as err:
        raise _format_validation_error(path, err) from None


def load_manifest(path: str | Path) -> Manifest:
    """Load a manifest YAML, or an nnU-Net v2 raw folder / MSD task folder given directly."""
    path = Path(path)
    if path.is_dir():
        spec, where, taxonomy = folder_manifest_spec(path)
        return resolve_manifest(spec, where, taxonomy)
    if not path.exists():
        raise ManifestError(path, "does not exist", "give the path of a manifest.yaml or of a dataset folder")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestError(path, f"cannot be read ({err})", "check the file's permissions and encoding") from None
    spec = parse_manifest_text(text, path)
    return resolve_manifest(spec, path)


def project_taxonomy(spec: ProjectSpec, where: Path) -> Taxonomy:
    """The taxonomy the project declares (the canonical abdominal list by default)."""
    try:
        if spec.classes == "abdominal":
            return abdominal_taxonomy()
        return build_taxonomy(spec.classes)
    except (TaxonomyError, ValidationFailed) as err:
        problems = [Problem(f"{where} (project.classes)", p.problem, p.fix) for p in err.problems]
        if len(problems) > 1:
            raise ValidationFailed(problems) from None
        raise TaxonomyError(problems[0].where, problems[0].problem, problems[0].fix) from None


def resolve_manifest(spec: ManifestSpec, path: Path, taxonomy: Taxonomy | None = None) -> Manifest:
    """Turn a schema-checked manifest into resolved sources and cases."""
    taxonomy = taxonomy or project_taxonomy(spec.project, path)
    sources: list[Source] = []
    cases: list[Case] = []
    for source_spec in spec.sources:
        if source_spec.import_folder:
            source_spec = import_source(source_spec, path.parent)
        source = resolve_source(source_spec, taxonomy, path)
        sources.append(source)
        cases.extend(resolve_case(c, source, taxonomy, path) for c in source_spec.cases)
    names = [s.name for s in sources]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ManifestError(path, f"source names appear twice: {repeated}", "give every source its own name")
    return Manifest(path, spec.project.name, taxonomy, tuple(sources), tuple(cases))


def resolve_source(spec: SourceSpec, taxonomy: Taxonomy, path: Path) -> Source:
    """Resolve a source's label map and annotated classes against the taxonomy."""
    where = f"{path} (source '{spec.name}')"
    context = [n for n in spec.labels.values() if isinstance(n, str)]
    label_map = {int(v): resolve_label_name(n, taxonomy, context, f"{where}, label value {int(v)}")
                 for v, n in spec.labels.items()}
    if 0 not in label_map:
        label_map[0] = LabelMeaning("background")
    named = _classes_named(label_map)
    kind = spec.kind or _default_kind(spec, named, taxonomy)
    if kind != "unlabeled" and not any(m.kind in ("class", "sided") for m in label_map.values()):
        raise ManifestError(where, f"kind '{kind}' but its labels name none of the project classes",
                            "map label values to project classes, or declare kind: unlabeled")
    named = _classes_named(label_map)
    if kind == "full":
        missing = [c for c in taxonomy.names[1:] if c not in named]
        if missing:
            raise ManifestError(where, f"kind 'full' but its labels do not name the project classes {missing}",
                                "declare kind: partial (only the named classes are annotated) or add the labels")
        annotated = frozenset(taxonomy.names[1:])
    elif kind == "unlabeled":
        annotated = frozenset()
    elif spec.annotated_classes is not None:
        annotated = _resolve_class_list(spec.annotated_classes, taxonomy, where)
    else:
        annotated = frozenset(named)
    return Source(spec.name, spec.modality.upper(), kind, label_map, annotated)


def _default_kind(spec: SourceSpec, named: set[str], taxonomy: Taxonomy) -> AnnotationKind:
    """Unlabeled without labels; full when the labels name every project class; partial otherwise."""
    if not spec.labels:
        return "unlabeled"
    return "full" if set(taxonomy.names[1:]) <= named else "partial"


def _classes_named(label_map: dict[int, LabelMeaning]) -> set[str]:
    """The classes a source's values annotate; a lesion read as its organ (`part`) does not annotate the organ."""
    return {c for m in label_map.values() if m.kind in ("class", "sided") and not m.part for c in m.classes if c}


def _resolve_class_list(names: list[str], taxonomy: Taxonomy, where: str) -> frozenset[str]:
    resolved: set[str] = set()
    for name in names:
        meaning = resolve_label_name(name, taxonomy, names, where)
        resolved.update(c for c in meaning.classes if c)
    return frozenset(resolved)


def resolve_case(spec: CaseSpec, source: Source, taxonomy: Taxonomy, path: Path) -> Case:
    """Resolve one case's paths (relative to the manifest) and its annotated classes and slices."""
    base = path.parent if path.suffix else path
    images = [spec.image] if isinstance(spec.image, str) else list(spec.image)
    where = f"{path} (case '{spec.id}')"
    if source.kind == "unlabeled" and spec.label:
        raise ManifestError(where, "has a label but its source is 'unlabeled'",
                            "remove the label or move the case to a labeled source")
    if source.kind != "unlabeled" and not spec.label:
        raise ManifestError(where, f"has no label but its source '{source.name}' is '{source.kind}'",
                            "add the label path or move the case to an unlabeled source")
    annotated = source.annotated_classes
    if spec.annotated_classes is not None:
        if source.kind == "full":
            raise ManifestError(where, "lists annotated_classes but its source is 'full'",
                                "declare the source as partial, or drop the per-case list")
        annotated = _resolve_class_list(spec.annotated_classes, taxonomy, where)
    slices = None
    if spec.annotated_slices is not None:
        if source.kind != "sparse":
            raise ManifestError(where, f"lists annotated_slices but its source is '{source.kind}'",
                                "declare the source as kind: sparse")
        slices = {int(a): tuple(sorted(set(int(i) for i in v))) for a, v in spec.annotated_slices.items()}
    elif source.kind == "sparse" and not any(m.kind == "ignore" for m in source.label_map.values()):
        raise ManifestError(where, "is in a sparse source but says neither which slices are annotated nor which "
                            "label value marks unannotated voxels",
                            "add annotated_slices: {2: [...]} to the case, or map a label value to 'ignore'")
    return Case(spec.id, source, tuple(_resolve_path(base, p) for p in images),
                _resolve_path(base, spec.label) if spec.label else None, spec.split, annotated, slices)


def _resolve_path(base: Path, relative: str) -> Path:
    candidate = Path(relative).expanduser()
    return candidate if candidate.is_absolute() else (base / candidate)
