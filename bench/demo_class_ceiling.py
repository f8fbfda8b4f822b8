"""The upper bound with one class labeled only where `partial` sees it labeled: is a class annotated in a few
training cases learned at the demo's budget when every other class is labeled everywhere? A ceiling for `partial`
on that class: if this row misses the class too, its few labeled cases and the budget miss it, not the candidate-set
losses.

Writes DEMO/scarce_CLASS/: a copy of every training label map of the complete labels with CLASS removed (its voxels
0) in every source but --keep, a manifest in which those sources are `partial` (every class but CLASS) and the kept
ones and the test cases are unchanged, and its cache (the demo's plan). Trains the upper bound's recipe
(`demo_row_config("upper_bound")`) on it as row `upper_bound_scarce_CLASS` and scores it on the demo's held-out test
CTs beside the demo's other rows. The demo folder's data are only read.

Example: .venv/bin/python bench/demo_class_ceiling.py /work/demo_seed0 --class gallbladder \\
    --keep btcv_like ct_sparse --name demo_gallbladder_ceiling_seed0
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    finished_demo,
    machine_line,
    merge_summary,
    scored_rows,
    write_demo_table,
    write_kept_label,
)

from unimos.pipelines.demo import (  # noqa: E402
    DEMO_METHODS,
    demo_iterations,
    demo_results_table,
    demo_row_config,
    organs_and_lesions,
)
from unimos.pipelines.run import resolved_precision_name, train_and_score  # noqa: E402


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--class", dest="name_of_class", required=True, help="the class to make scarce")
    parser.add_argument("--keep", nargs="+", required=True, help="sources that keep the class's labels")


def scarce_sources(sources: list[dict[str, Any]], name: str, keep: set[str], data: Path,
                   labels_out: Path) -> list[dict[str, Any]]:
    """The complete manifest's sources with class `name` removed from every source with a training case that is not
    in `keep` (label copies under `labels_out`, absolute paths); the others unchanged, with absolute paths."""
    changed = []
    for source in sources:
        source = copy.deepcopy(source)  # the parsed manifest is not modified
        for case in source["cases"]:
            case["image"] = str(data / case["image"])
            case["label"] = str(data / case["label"])
        train = any(case.get("split", "train") == "train" for case in source["cases"])
        values = {int(v): n for v, n in source["labels"].items()}
        if train and source["name"] not in keep and name in values.values():
            kept = {v: n for v, n in values.items() if n != name}
            source["kind"], source["labels"] = "partial", kept
            for case in source["cases"]:
                target = labels_out / Path(case["label"]).name
                case["label"] = str(write_kept_label(Path(case["label"]), set(kept), target))
        changed.append(source)
    return changed


def main() -> None:
    import yaml

    from unimos.data.manifest import load_manifest
    from unimos.preprocess.cache import preprocess_manifest
    from unimos.utils.atomic import write_text_atomic

    args, meta, manifest, plan = finished_demo(__doc__.splitlines()[0], "demo_class_ceiling", _arguments)
    name, keep = args.name_of_class, set(args.keep)
    if name not in manifest.taxonomy.names:
        sys.exit(f"error: {name!r} is not a class of {args.demo}/data/manifest.yaml. Fix: give one of "
                 f"{', '.join(manifest.taxonomy.names[1:])}")
    complete = yaml.safe_load((args.demo / "data" / "manifest_complete.yaml").read_text())
    unknown = keep - {s["name"] for s in complete["sources"]}
    if unknown:
        sys.exit(f"error: --keep {', '.join(sorted(unknown))}: no such source in {args.demo}/data/"
                 "manifest_complete.yaml. Fix: name sources of that manifest")
    folder = args.demo / f"scarce_{name}"
    sources = scarce_sources(complete["sources"], name, keep, args.demo / "data", folder / "labels")
    manifest_path = write_text_atomic(folder / "manifest.yaml", (
        f"# The demo's complete labels with {name} kept only in {', '.join(sorted(keep))} "
        "(bench/demo_class_ceiling.py).\n") + yaml.safe_dump({"project": complete["project"], "sources": sources},
                                                             sort_keys=False))
    scarce = load_manifest(manifest_path)
    clock = time.perf_counter()
    preprocess_manifest(scarce, plan, folder / "cache", workers=2)
    print(f"preprocessed in {time.perf_counter() - clock:.0f} s", flush=True)
    seed, quick = int(meta["seed"]), bool(meta["quick"])
    config = demo_row_config("upper_bound", demo_iterations(quick), seed, quick, args.device, args.precision)
    row = f"upper_bound_scarce_{name}"
    summary, seconds = train_and_score(row, folder / "cache", plan, scarce, config, args.demo)
    earlier = scored_rows(args.demo, [r for base in DEMO_METHODS for r in (base, f"{base}_focal")])
    table = demo_results_table({**earlier, row: summary}, *organs_and_lesions(manifest))
    labeled = sum(1 for s in sources if s["name"] in keep for c in s["cases"] if c.get("split", "train") == "train")
    write_demo_table(args.name, [
        f"Machine: {machine_line()}; ran in {resolved_precision_name(args.precision, args.device)}", "",
        f"Demo {args.demo} (seed {seed}, {config.iterations} iterations, loss {config.method}): `{row}` is the upper "
        f"bound with {name} labeled only in {', '.join(sorted(keep))} ({labeled} training cases), every other class "
        f"in every case (trained in {seconds:.0f} s). Held-out test CTs, DSC (0-1)."], table)
    merge_summary(args.name, {"demo": str(args.demo), "seed": seed, "machine": machine_line(), "row": row,
                              "class": name, "kept_in": sorted(keep), "labeled_training_cases": labeled,
                              "loss": config.method, "train_s": seconds,
                              "dsc": {r: {k: v["dsc"] for k, v in cols.items()} for r, cols in table.items()}})


if __name__ == "__main__":
    main()
