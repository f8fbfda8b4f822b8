"""ACDC cardiac cine-MR, segmented slice-wise (2D) as the benchmark usually is: semi-supervised learning from 3 or 7
labeled patients, one model from partially labeled sources, and sparse labels (scribbles, 20% of slices).

    .venv/bin/python bench/acdc.py --out /tmp/acdc                      # all three experiments, ~4.5 h (CPU)
    .venv/bin/python bench/acdc.py --out /tmp/acdc --experiments ssl --strategies supervised unimatch mean_teacher cps
    .venv/bin/python bench/acdc.py --out /tmp/acdc --device cuda --schedule published     # UniMatch's schedule
    .venv/bin/python bench/acdc.py --out /tmp/acdc_dev --development 10 --labeled 3 --strategies supervised guided_cps

Experiments (rows; every row of an experiment has the same plan, network, batch, iterations and seed):
- `ssl`: the labeled patients of splits.json (`train_labeled_3_patients`, `train_labeled_7_patients`) as a fully
  labeled source, the rest of `train` (`train_unlabeled_given_3/7`) as an unlabeled source; one row per strategy
  (`--strategies`, default supervised-only and unimatch), e.g. `ssl3_unimatch`.
- `partial`: the 3 labeled patients keep all classes (full_src); the other training patients are dealt out by
  patient (both frames together, seeded) to lv_myo_src (contours LV and MYO only) and rv_src (RV only), whose label
  files (written under OUT/data/labels, never into the data folder) keep only those classes. Rows: `partial` and
  `naive` losses, and `upper_bound` (every training patient fully labeled).
- `sparse`: `scribbles` (scribblesTr; value 4 = unannotated, mapped to `ignore`; 0 is a background scribble) and
  `slices_20pct` (the dense labels on every 5th short-axis slice of each volume, offset seeded among those that
  hit the heart), against the same `upper_bound` row.

The data carry no real spacing (1 mm placeholder, see the data README), so the plan is the `fine` preset (the data's
own 1 mm grid, no resampling) made slice-wise: its network entry becomes a 2D DynUNet with the widths of UniMatch's
medical UNet (16-256, four halvings) and its patch the in-plane slice (the training loop cuts axial slices for a 2D
network; prediction runs it over every slice of the volume). Scored on the 10 `validation` patients (20 volumes):
Dice per volume in 3D, then averaged, per class and as the mean over RV, MYO and LV.

`--schedule published` is UniMatch's documented ACDC recipe (LiheYoung/UniMatch, more-scenarios/medical:
configs/acdc.yaml `crop_size: 256`, `batch_size: 12`, `lr: 0.01`, `epochs: 300`; unimatch.py: SGD momentum 0.9,
weight decay 1e-4, poly lr with power 0.9, a labeled and an unlabeled batch of 12 each, 300 epochs of the unlabeled
loader: about 31k iterations for the ~1,240 unlabeled slices of its 3-case list; 30k here), for a GPU. Differences
that remain: unimos's SGD is Nesterov, DynUNet uses instance norm and no dropout where the UNet has batch norm and
dropout, slices are padded to 256 x 256 at their own resolution instead of resized to it, augmentation and
unimatch's strong views are unimos's, and the supervised rows keep batch 12 (UniMatch's README doubles it for its
supervised baseline).

Default schedule on 2 CPU cores: the ssl rows train 3,000 iterations, long enough for a semi-supervised gain to show
(Intel Xeon with AMX, bfloat16: ~8 min supervised, ~35 min unimatch), the partial and sparse rows 2,500 (~9-14 min).
`--strategies all_labeled` adds the ssl ceiling: supervised on every training patient with its labels, at the same
iterations (one model, reported for each labeled count). `--labeled 3` runs the 3-patient rows only.

Writes OUT/acdc_results.json, OUT/runs/ROW (checkpoints), bench/results/acdc.md and the `acdc_ssl`, `acdc_partial`
and `acdc_sparse` entries of bench/results/summary.json. --resume reuses rows already scored in OUT and continues a
row whose training was interrupted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from _common import (
    SHARED_DATA,
    machine_line,
    median_step_seconds,
    merge_summary,
    organ_markdown,
    organ_table,
    run_logs,
    write_kept_label,
)
from _common import write_manifests as write_manifest_files

from unimos.data.plan_spec import Plan
from unimos.utils.atomic import write_json_atomic, write_text_atomic

MODALITY = "MR"
LABELS = {1: "RV", 2: "MYO", 3: "LV"}
"""Label values as the data folder's dataset.json spells them (unimos maps them onto its cardiac classes)."""
PARTIAL_SOURCES: dict[str, tuple[int, ...]] = {"lv_myo_src": (2, 3), "rv_src": (1,)}
"""The partially labeled sources and the label values each one contours."""
SCRIBBLE_UNANNOTATED = 4
"""scribblesTr value of unannotated voxels (data README; WSL4MIS trains with ignore_index=4)."""
SLICE_AXIS = 2
SLICE_EVERY = 5
"""`slices_20pct`: every 5th short-axis slice (array axis k) keeps its dense label."""
LABELED_COUNTS = ("3", "7")
EXPERIMENTS = ("ssl", "partial", "sparse")
DEFAULT_STRATEGIES = ("supervised", "unimatch")
NETWORK_FILTERS = (16, 32, 64, 128, 256)
"""UniMatch's medical UNet (model/unet.py, feature_chns): five levels, four halvings."""
PUBLISHED = {
    "SupBaseline": {"3": 41.5, "7": 62.5},
    "UA-MT": {"3": 61.0, "7": 81.5},
    "CPS": {"3": 60.3, "7": 83.3},
    "CNN & Transformer": {"3": 65.6, "7": 86.4},
    "UniMatch": {"3": 88.9, "7": 89.9},
}
"""Mean Dice (%) over RV/MYO/LV for 3 / 7 labeled cases, from the data README (LiheYoung/UniMatch medical README)."""


@dataclass(frozen=True)
class Schedule:
    """How every row trains: iterations (before --budget), slices per batch, slice size and optimiser.

    The semi-supervised experiment has its own iteration count: a unimatch step costs about 4.5 supervised steps
    (three passes with gradients over labeled, unlabeled and two strong views), and supervised and unimatch rows
    must have the same iterations. `partial` and `sparse` share one count, so they share the upper-bound row."""

    name: str
    iterations: int
    ssl_iterations: int
    batch_size: int
    patch_xy: tuple[int, int] | None  # None: the in-plane part of the `fine` plan's patch
    optimizer: str
    learning_rate: float
    weight_decay: float
    momentum: float

    def iterations_for(self, experiment: str, budget: float) -> int:
        """Iterations of a row of `experiment` at `budget` (a fraction of the schedule's)."""
        return max(1, round((self.ssl_iterations if experiment == "ssl" else self.iterations) * budget))


SCHEDULES = {
    # 128 x 128 slices, batch 8, measured on one thread: 0.33 s per supervised step, 1.49 s per unimatch step; two
    # cores bring that to roughly 0.22 and 1.0 s (estimated). So ~9-14 min per partial/sparse row, ~2-3 min per
    # supervised and ~10-15 min per unimatch row of ssl.
    # The ssl rows train 3,000 iterations: at 600 every strategy tied supervised; at 3,000 (an independent run, AMD
    # EPYC, bfloat16) unimatch beat it by +0.134 at 3 labeled patients (supervised ~23 min, unimatch ~54 min).
    "default": Schedule("default", 2500, 3000, 8, None, "adamw", 3e-3, 3e-5, 0.99),
    "published": Schedule("published", 30000, 30000, 12, (256, 256), "sgd", 0.01, 1e-4, 0.9),
}


@dataclass(frozen=True)
class Row:
    """One trained and scored model: which collection (manifest) it learns from, with which loss and strategy."""

    experiment: str
    collection: str
    loss: str
    strategy: str
    options: tuple[tuple[str, Any], ...] = ()


def patient_of(case_id: str) -> str:
    """`patient038_frame11` -> `patient038`: both frames of a patient belong together."""
    return case_id.split("_frame")[0]


def by_patient(case_ids: list[str]) -> dict[str, list[str]]:
    """Cases grouped by patient, patients and their cases sorted."""
    groups: dict[str, list[str]] = {}
    for case_id in sorted(case_ids):
        groups.setdefault(patient_of(case_id), []).append(case_id)
    return groups


def assign_partial_sources(train_ids: list[str], full_ids: list[str], seed: int) -> dict[str, list[str]]:
    """full_src = `full_ids`; the other training patients (both frames together) alternate, in a seeded order,
    between the PARTIAL_SOURCES."""
    full = set(full_ids)
    groups = by_patient(train_ids)
    rest = [p for p, cases in groups.items() if not full & set(cases)]
    order = [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))]
    sources: dict[str, list[str]] = {"full_src": sorted(full_ids), **{name: [] for name in PARTIAL_SOURCES}}
    names = list(PARTIAL_SOURCES)
    for i, patient in enumerate(order):
        sources[names[i % len(names)]].extend(groups[patient])
    return {name: sorted(ids) for name, ids in sources.items()}


def every_nth_slices(label_path: Path, rng: np.random.Generator, every: int = SLICE_EVERY,
                     axis: int = SLICE_AXIS) -> list[int]:
    """Every `every`-th slice along `axis`, from a random offset among those whose slices hold some label
    (so each volume keeps at least one slice of heart); all offsets when no slice is labeled."""
    label = np.asanyarray(nib.load(str(label_path)).dataobj)
    labeled = np.moveaxis(label, axis, 0).reshape(label.shape[axis], -1).any(axis=1)
    offsets = [o for o in range(min(every, label.shape[axis])) if labeled[o::every].any()]
    offset = int(rng.choice(offsets or list(range(min(every, label.shape[axis])))))
    return list(range(offset, label.shape[axis], every))


def _case(data: Path, case_id: str, label: Path | None, split: str, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": case_id, "image": str((data / "imagesTr" / f"{case_id}_0000.nii.gz").resolve())}
    if label is not None:
        entry["label"] = str(label.resolve())
    entry["split"] = split
    entry.update(extra)
    return entry


def _limited(ids: list[str], limit: int | None) -> list[str]:
    """The first `limit` cases (all when None): keeps smoke runs short."""
    return sorted(ids)[:limit] if limit else sorted(ids)


def development_cases(candidates: list[str], patients: int, seed: int) -> list[str]:
    """Both frames of `patients` patients drawn (seeded) from `candidates`: the development split."""
    pool = sorted({patient_of(cid) for cid in candidates})
    chosen = {pool[i] for i in np.random.default_rng(seed).permutation(len(pool))[:patients]}
    return sorted(cid for cid in candidates if patient_of(cid) in chosen)


def write_manifests(data: Path, out: Path, seed: int, limit: int | None = None,
                    development: int = 0) -> dict[str, Any]:
    """Derived label files and one manifest per collection; returns the manifest paths and what went where.

    Collections: ssl3, ssl7 (labeled + unlabeled), partial (full_src + the partial sources), full (every training
    patient fully labeled), scribbles, slices (every 5th slice); each also holds the validation patients.
    `limit` keeps only the first N cases of every source (for smoke runs). `development` > 0: that many training
    patients outside both labeled sets (`train_unlabeled_given_7`) become the scored split instead of the
    validation patients, which are then left out entirely, and leave every training source: a development split for
    choosing options without looking at the reported patients."""
    splits = json.loads((data / "splits.json").read_text())
    train, validation = list(splits["train"]), list(splits["validation"])
    if development:
        validation = development_cases(splits["train_unlabeled_given_7"], development, seed)
        held = set(validation)
        train = [cid for cid in train if cid not in held]
        splits = {key: [cid for cid in ids if cid not in held] for key, ids in splits.items()}
    labels_dir = out / "data" / "labels"
    dense = {cid: data / "labelsTr" / f"{cid}.nii.gz" for cid in [*train, *validation]}
    all_labels: dict[int, Any] = dict(LABELS)

    def source(name: str, kind: str, cases: list[dict[str, Any]], labels: dict[int, Any] | None) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": name, "modality": MODALITY, "kind": kind}
        if labels is not None:
            spec["labels"] = dict(labels)  # a copy each: no YAML anchors between sources
        spec["cases"] = cases
        return spec

    def dense_cases(ids: list[str], split: str = "train") -> list[dict[str, Any]]:
        return [_case(data, cid, dense[cid], split) for cid in _limited(ids, limit)]

    validation_source = source("acdc_development" if development else "acdc_validation", "full",
                               dense_cases(validation, "validation"), all_labels)
    collections: dict[str, list[dict[str, Any]]] = {}
    for count in LABELED_COUNTS:
        labeled, unlabeled = splits[f"train_labeled_{count}_patients"], splits[f"train_unlabeled_given_{count}"]
        collections[f"ssl{count}"] = [
            source(f"labeled_{count}_patients", "full", dense_cases(labeled), all_labels),
            source(f"unlabeled_given_{count}", "unlabeled",
                   [_case(data, cid, None, "train") for cid in _limited(unlabeled, limit)], None),
            validation_source]

    assignment = assign_partial_sources(train, splits["train_labeled_3_patients"], seed)
    partial_specs = [source("full_src", "full", dense_cases(assignment["full_src"]), all_labels)]
    for name, values in PARTIAL_SOURCES.items():
        cases = [_case(data, cid, write_kept_label(dense[cid], values, labels_dir / f"{cid}.nii.gz"), "train")
                 for cid in _limited(assignment[name], limit)]
        partial_specs.append(source(name, "partial", cases, {v: LABELS[v] for v in values}))
    collections["partial"] = [*partial_specs, validation_source]
    collections["full"] = [source("all_full", "full", dense_cases(train), all_labels), validation_source]

    scribble_labels = {0: "background", **all_labels, SCRIBBLE_UNANNOTATED: "ignore"}
    collections["scribbles"] = [
        source("scribbles", "sparse", [_case(data, cid, data / "scribblesTr" / f"{cid}.nii.gz", "train")
                                       for cid in _limited(train, limit)], scribble_labels),
        validation_source]
    rng = np.random.default_rng(seed)
    slices = {cid: every_nth_slices(dense[cid], rng) for cid in _limited(train, limit)}
    collections["slices"] = [
        source("slices_20pct", "sparse", [_case(data, cid, dense[cid], "train", annotated_slices={SLICE_AXIS: s})
                                          for cid, s in slices.items()], all_labels),
        validation_source]

    project = {"name": "acdc-bench", "classes": [LABELS[v] for v in sorted(LABELS)]}
    header = (f"# ACDC benchmark ({{name}}), written by bench/acdc.py, seed {seed}.\n"
              f"# Images are read from {data.resolve()}; derived label files live in {labels_dir.resolve()}.\n")
    paths = write_manifest_files(out, collections, project, header)
    return {"manifests": paths, "partial_sources": assignment, "annotated_slices": slices,
            "scored_cases": validation}


def slice_wise_plan(plan: Plan, schedule: Schedule) -> Plan:
    """The plan with a 2D DynUNet (UniMatch's UNet widths) and an in-plane patch, so that training is slice-wise.

    Only `network`, `patch_size` and `batch_size` change: the preprocessing (and so the cache) stays the plan's."""
    from unimos.preprocess.plan import with_hashes

    levels = len(NETWORK_FILTERS)
    divisor = 2 ** (levels - 1)
    patch_xy = schedule.patch_xy or tuple(plan.patch_size[:2])
    network = {"name": "dynunet", "spatial_dims": 2, "kernel_size": [[3, 3]] * levels,
               "strides": [[1, 1]] + [[2, 2]] * (levels - 1), "filters": list(NETWORK_FILTERS),
               "deep_supervision": False}
    # The third entry is unused by a 2D network (it sees one slice); 1 says so to a reader of the plan.
    patch = [int(-(-int(p) // divisor) * divisor) for p in patch_xy] + [1]
    return with_hashes(plan.model_copy(update={"network": network, "patch_size": patch,
                                               "batch_size": schedule.batch_size}))


ALL_LABELED = "all_labeled"
"""The ssl ceiling row: supervised on every training patient with its labels, at the ssl rows' iterations."""


def option_suffix(options: dict[str, Any]) -> str:
    """`+key=value` per strategy option, sorted: the row name of a semi-supervised row trained with options other than
    its defaults says which (`ssl3_guided_cps+rectify_weight=0`), so that an ablation never overwrites the row."""
    return "".join(f"+{key}={value}" for key, value in sorted(options.items()))


def rows_for(experiments: list[str], strategies: list[str], counts: tuple[str, ...] = LABELED_COUNTS,
             options: dict[str, Any] | None = None) -> dict[str, Row]:
    """Every row the chosen experiments need, in run order; the upper bound appears once for partial and sparse.
    `options` (strategy options) go to every semi-supervised row and into its name, never to supervised rows."""
    options = options or {}
    rows: dict[str, Row] = {}
    if "ssl" in experiments:
        for count in counts:
            for strategy in strategies:
                if strategy == ALL_LABELED:
                    rows[f"ssl{count}_{strategy}"] = Row("ssl", "full", "partial", "supervised")
                elif strategy == "supervised" or not options:
                    rows[f"ssl{count}_{strategy}"] = Row("ssl", f"ssl{count}", "partial", strategy)
                else:
                    rows[f"ssl{count}_{strategy}{option_suffix(options)}"] = Row(
                        "ssl", f"ssl{count}", "partial", strategy, tuple(sorted(options.items())))
    if "partial" in experiments:
        rows["partial"] = Row("partial", "partial", "partial", "supervised")
        rows["naive"] = Row("partial", "partial", "naive", "supervised")
    if "partial" in experiments or "sparse" in experiments:
        rows["upper_bound"] = Row("partial", "full", "partial", "supervised")
    if "sparse" in experiments:
        rows["scribbles"] = Row("sparse", "scribbles", "partial", "supervised")
        rows["slices_20pct"] = Row("sparse", "slices", "partial", "supervised")
    return rows


EARLIER = "# Earlier run"


def kept_earlier_rows(path: Path) -> str:
    """The part of an existing acdc.md from its "# Earlier run" heading on (rows of experiments this invocation did not
    run, kept until they are rerun), or nothing."""
    text = path.read_text() if path.is_file() else ""
    return "\n" + text[text.index(EARLIER):] if EARLIER in text else ""


def can_continue(run_dir: Path, config: dict[str, Any]) -> bool:
    """Whether an interrupted row's checkpoint was made with exactly this training configuration."""
    saved = run_dir / "config.json"
    return (run_dir / "checkpoint_latest.json").exists() and saved.exists() and json.loads(saved.read_text()) == config


CLASS_TITLES = {"mean": "mean (RV, MYO, LV)"}


def experiment_rows(results: dict[str, Any], experiment: str) -> list[str]:
    """The rows of `results` in one experiment's table, in table order (the upper bound in partial and sparse)."""
    if experiment == "ssl":
        return sorted((r for r in results if r.startswith("ssl")), key=lambda r: (int(r[3:].split("_")[0]),
                                                                                  list(results).index(r)))
    order = {"partial": ("partial", "naive", "upper_bound"), "sparse": ("scribbles", "slices_20pct", "upper_bound")}
    return [r for r in order[experiment] if r in results]


def anchors_markdown(results: dict[str, Any]) -> str:
    """Our mean Dice (%) per labeled count beside the published numbers, which are on another patient set."""
    ours: dict[str, dict[str, float]] = {}
    for row, value in results.items():
        if row.startswith("ssl"):
            count, strategy = row[3:].split("_", 1)
            ours.setdefault(strategy, {})[count] = 100 * value["table"]["mean"]["dsc"]
    lines = ["Mean Dice (%) over RV, MYO, LV. Published rows: the data README's anchors (UniMatch's medical README), "
             "scored on the 20 HELD-BACK TEST patients with UniMatch's own split files and schedule; ours: the 10 "
             "validation patients, this run's budget. A rough guide only, not a like-for-like comparison.", "",
             "| method | 3 labeled | 7 labeled |", "|---|---|---|"]
    for name, values in PUBLISHED.items():
        lines.append(f"| {name} (published, test set) | {values['3']:.1f} | {values['7']:.1f} |")
    for strategy, values in ours.items():
        cells = [f"{values[c]:.1f}" if c in values else "-" for c in LABELED_COUNTS]
        lines.append(f"| unimos {strategy} (this run, validation) | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def summary_entries(results: dict[str, Any]) -> dict[str, Any]:
    """`acdc_ssl` {count: {strategy: mean Dice}}, `acdc_partial` and `acdc_sparse` {row: mean Dice}, for the
    experiments that have rows."""
    entries: dict[str, Any] = {}
    ssl: dict[str, dict[str, float]] = {}
    for row in experiment_rows(results, "ssl"):
        count, strategy = row[3:].split("_", 1)
        ssl.setdefault(count, {})[strategy] = results[row]["table"]["mean"]["dsc"]
    if ssl:
        entries["acdc_ssl"] = ssl
    for experiment in ("partial", "sparse"):
        rows = experiment_rows(results, experiment)
        if any(r != "upper_bound" for r in rows):
            entries[f"acdc_{experiment}"] = {r: results[r]["table"]["mean"]["dsc"] for r in rows}
    return entries


def parse_options(items: list[str], strategies: list[str]) -> dict[str, Any] | None:
    """--strategy-option KEY=VALUE items as a dict, checked against every chosen semi-supervised strategy; None (after
    printing every problem) when one is not KEY=VALUE or a strategy refuses it."""
    from unimos.cli.console import parse_key_values
    from unimos.errors import UnimosError
    from unimos.strategies.base import check_strategy_options

    options: dict[str, Any] = {}
    problems = []
    for item in items:  # one at a time, so that every malformed item is listed
        try:
            options.update(parse_key_values([item]))
        except UnimosError as err:
            problems.extend(str(p) for p in err.problems)
    for strategy in (s for s in strategies if s not in ("supervised", ALL_LABELED)):
        if options and not problems:
            try:
                check_strategy_options(strategy, options)
            except UnimosError as err:
                problems.extend(f"--strategy-option for {strategy}: {p}" for p in err.problems)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return None if problems else options


def main(argv: list[str] | None = None) -> int:
    from unimos.pipelines.demo import SSL_STRATEGIES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "acdc", help="the acdc folder of ../shared/data")
    parser.add_argument("--out", type=Path, required=True, help="new or empty folder (or an earlier one with --resume)")
    parser.add_argument("--experiments", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS))
    parser.add_argument("--labeled", nargs="+", choices=LABELED_COUNTS, default=list(LABELED_COUNTS),
                        help="ssl rows for these labeled-patient counts")
    parser.add_argument("--strategies", nargs="+", choices=[*SSL_STRATEGIES, ALL_LABELED],
                        default=list(DEFAULT_STRATEGIES),
                        help="strategies of the semi-supervised experiment (default: supervised unimatch)")
    parser.add_argument("--schedule", choices=sorted(SCHEDULES), default="default",
                        help="default: ~2-15 min per row on 2 CPU cores; published: UniMatch's ACDC schedule (GPU)")
    parser.add_argument("--budget", type=float, default=1.0, help="scales the iterations per row (1.0 = the "
                        f"schedule's: default {SCHEDULES['default'].ssl_iterations} for ssl rows and "
                        f"{SCHEDULES['default'].iterations} for the others, published "
                        f"{SCHEDULES['published'].iterations})")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="reuse rows already scored in OUT, continue an "
                        "interrupted one")
    parser.add_argument("--validate-every", type=int, default=0, metavar="N", help=(
        "log the mean Dice of the validation volumes every N steps into OUT/runs/ROW/log.csv: the curve that shows "
        "whether a row has plateaued (watching, not choosing: rows keep the same iterations); 0: never. It is part "
        "of a row's configuration: an interrupted row resumed with another value starts again"))
    parser.add_argument("--development", type=int, default=0, metavar="PATIENTS", help=(
        "score on this many training patients outside both labeled sets (a development split, removed from every "
        "training source) instead of the validation patients, which are left out; results go to OUT/results, "
        "never to bench/results. For choosing options; e.g. --development 10"))
    parser.add_argument("--strategy-option", nargs="+", default=[], metavar="KEY=VALUE", help=(
        "options of the semi-supervised strategies (as `unimos train --strategy-option`), e.g. rectify_weight=0; "
        "the rows' names carry them (ssl3_guided_cps+rectify_weight=0). Choose them on --development, never on the "
        "reported validation patients"))
    parser.add_argument("--limit-cases", type=int, default=None, metavar="N",
                        help="keep only the first N cases of every source (smoke runs; not a benchmark)")
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)

    from unimos.pipelines.demo import ensure_empty_output
    from unimos.pipelines.project import checked_manifest, plan_manifest
    from unimos.pipelines.run import train_and_score
    from unimos.preprocess.cache import preprocess_manifest
    from unimos.preprocess.plan import save_plan
    from unimos.training.config import TrainConfig

    if not (args.data / "scribblesTr").is_dir() or not (args.data / "splits.json").exists():
        print(f"error: {args.data}: no splits.json and scribblesTr/ here. Fix: give --data the acdc folder of "
              "../shared/data", file=sys.stderr)
        return 2
    if not args.resume:
        ensure_empty_output(args.out)
    started = time.perf_counter()
    schedule = SCHEDULES[args.schedule]
    if args.development:  # never into the reported tables
        args.results = args.out / "results"
    made = write_manifests(args.data, args.out, args.seed, args.limit_cases, args.development)
    manifests = {name: checked_manifest(path)[0] for name, path in made["manifests"].items()}
    # One plan for every row: the `fine` preset from every training image, made slice-wise.
    fine = plan_manifest(manifests["full"], args.out / "plan_fine.json", "fine", seed=args.seed)
    plan = slice_wise_plan(fine, schedule)
    save_plan(plan, args.out / "plan.json")
    organs = list(manifests["full"].taxonomy.names[1:])
    options = parse_options(args.strategy_option, args.strategies)
    if options is None:
        return 2
    rows = rows_for(args.experiments, args.strategies, tuple(args.labeled), options)
    results_path = args.out / "acdc_results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if args.resume and results_path.exists() else {}
    for name, row in rows.items():
        iterations = schedule.iterations_for(row.experiment, args.budget)
        if name in results:
            if (results[name]["iterations"], results[name]["schedule"]) != (iterations, schedule.name):
                print(f"error: {results_path}: row {name} was made with {results[name]['iterations']} iterations of "
                      f"the {results[name]['schedule']} schedule, this run asks for {iterations} of {schedule.name}. "
                      "Fix: give a new --out, or the same --schedule and --budget", file=sys.stderr)
                return 2
            print(f"{name}: reused from {results_path}", flush=True)
            continue
        twin = next((r for r, v in results.items() if row.strategy == "supervised" and row.collection == "full"
                     and v["collection"] == "full" and v["experiment"] == "ssl"
                     and v["iterations"] == iterations), None)
        if twin is not None:  # the all_labeled ceiling is one model for every labeled count
            results[name] = {**results[twin], "same_model_as": twin}
            write_json_atomic(results_path, results)
            continue
        cache = args.out / "cache" / row.collection
        preprocess_manifest(manifests[row.collection], plan, cache)
        config = TrainConfig(method=row.loss, strategy=row.strategy, strategy_options=dict(row.options),
                             iterations=iterations, seed=args.seed,
                             device=args.device, optimizer=schedule.optimizer, learning_rate=schedule.learning_rate,
                             weight_decay=schedule.weight_decay, momentum=schedule.momentum,
                             checkpoint_every=max(100, iterations // 10), deep_supervision=False,
                             validate_every=args.validate_every)
        resume = args.resume and can_continue(args.out / "runs" / name, config.to_json())
        clock = time.perf_counter()
        summary, train_s = train_and_score(name, cache, plan, manifests[row.collection], config, args.out,
                                           score_split="validation", resume=resume)
        results[name] = {"table": organ_table(summary, organs, {"mean": organs}), "train_s": train_s,
                         "row_s": time.perf_counter() - clock, "experiment": row.experiment,
                         "collection": row.collection, "loss": row.loss, "strategy": row.strategy,
                         "iterations": iterations, "schedule": schedule.name}
        write_json_atomic(results_path, results)
        print(f"{name}: mean Dice {results[name]['table']['mean']['dsc']:.3f} ({train_s / 60:.1f} min training)",
              flush=True)

    total_s = time.perf_counter() - started
    patch = plan.patch_size[:2]
    pace = {r: median_step_seconds(args.out / "runs" / v.get("same_model_as", r)) for r, v in results.items()}
    trainings = {r: max(1, len(run_logs(args.out / "runs" / v.get("same_model_as", r)))) for r, v in results.items()}
    counts = {("ssl" if v["experiment"] == "ssl" else "partial/sparse"): v["iterations"] for v in results.values()}
    header = (f"ACDC, 2D slice-wise, {machine_line()} (device {args.device}); seed {args.seed}; schedule "
              f"`{schedule.name}` (budget {args.budget}), iterations per row: "
              + ", ".join(f"{n} for {kind}" for kind, n in sorted(counts.items())) + "; "
              f"batch {schedule.batch_size} slices of {patch[0]} x {patch[1]} (+ {schedule.batch_size} unlabeled for "
              f"semi-supervised strategies), {schedule.optimizer} lr {schedule.learning_rate} poly; plan `fine` on the "
              f"data's 1 mm placeholder grid, 2D DynUNet filters {list(NETWORK_FILTERS)}; wall time of this "
              f"invocation {total_s / 60:.1f} min; per row, median seconds per training step and the training "
              "minutes at that pace (rows may have shared the cores or been paused, so their wall time is not "
              "a measure of cost): "
              + ", ".join(f"{r} n/a" if pace.get(r) is None else
                          f"{r} {pace[r]:.3f} s / {pace[r] * v['iterations'] * trainings[r] / 60:.0f} min"
                          for r, v in results.items())
              + f". Scored on the {len(manifests['full'].split('validation'))} validation volumes (10 patients x ED/ES "
              "in a full run), Dice per volume in 3D, then averaged. NSD and HD95 are in voxels (the spacing is a "
              "1 mm placeholder).")
    sections = [f"# ACDC benchmark\n\n{header}\n"]
    titles = {"ssl": "Semi-supervised: 3 and 7 labeled patients (rows sslN_STRATEGY)",
              "partial": "Partially labeled sources: full_src (3 patients) + lv_myo_src + rv_src",
              "sparse": "Sparse labels: scribbles and 20% of slices"}
    for experiment in EXPERIMENTS:
        members = experiment_rows(results, experiment)
        if not members or members == ["upper_bound"]:
            continue
        table = organ_markdown({r: results[r]["table"] for r in members}, organs, CLASS_TITLES,
                               f"## {titles[experiment]}")
        sections.append(table + ("\n" + anchors_markdown(results) if experiment == "ssl" else ""))
    markdown = "\n".join(sections)
    print(markdown)
    args.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results / "acdc.md", markdown + "\n" + kept_earlier_rows(args.results / "acdc.md"))
    for key, payload in summary_entries(results).items():
        merge_summary(key, payload, args.results)
    write_json_atomic(args.out / "acdc_meta.json", {
        "date": str(datetime.date.today()), "seed": args.seed, "schedule": asdict(schedule),
        "iterations_per_row": {r: v["iterations"] for r, v in results.items()}, "budget": args.budget,
        "plan_hash": plan.hash, "patch_size": plan.patch_size, "network": plan.network, "device": args.device,
        "limit_cases": args.limit_cases, "partial_sources": made["partial_sources"],
        "annotated_slices": made["annotated_slices"], "total_s": total_s,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
