"""The `unimos` command: make-demo-data, inspect, plan, preprocess, demo."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console

from unimos.cli.render import coverage_table, geometry_tables, print_problems, progress_bars
from unimos.errors import UnimosError, ValidationFailed

app = typer.Typer(
    name="unimos",
    help="Train ONE multi-organ segmentation model from datasets annotated differently (full, partial, sparse, "
         "unlabeled).\n\nStart with:  unimos demo --out /tmp/unimos-demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Logs and pipes get a wide fixed width so the coverage table is not squeezed to 80 columns.
console = Console(highlight=False, width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, highlight=False, width=None if Console(stderr=True).is_terminal else 160)
F = TypeVar("F", bound=Callable[..., Any])

ManifestArg = Annotated[Path, typer.Argument(help="A manifest.yaml, or an nnU-Net v2 raw folder or MSD task folder.")]
WorkersOpt = Annotated[int, typer.Option(min=1, help="Parallel workers (processes or threads).")]


def friendly_errors(command: F) -> F:
    """Print UnimosErrors as readable paragraphs (no traceback) and exit non-zero."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ValidationFailed as err:
            print_problems(err_console, err.problems)
            raise typer.Exit(code=1) from None
        except UnimosError as err:
            err_console.print(f"[bold red]error:[/] {err}", soft_wrap=True)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: finished files are kept; nothing half-written is left.")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


@app.command("make-demo-data")
@friendly_errors
def make_demo_data_command(
    out: Annotated[Path, typer.Argument(help="New or empty folder to write the collection into.")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer, coarser cases (for smoke tests).")] = False,
) -> None:
    """Write the built-in synthetic abdominal CT/MR collection and its manifest.

    Sources: fully, partially and sparsely labeled CT, a partial MR set, unlabeled CT and a held-out test set
    (complete labels kept in labels_complete/).

    Example:  unimos make-demo-data /tmp/d && unimos inspect /tmp/d/manifest.yaml
    """
    from unimos.data.demo import make_demo_data

    manifest = make_demo_data(out, seed=seed, quick=quick)
    console.print(f"wrote [bold]{manifest}[/]")


@app.command("inspect")
@friendly_errors
def inspect_command(manifest: ManifestArg, workers: WorkersOpt = 2) -> None:
    """Check every file of a manifest before any work and print coverage, modalities, spacing and sizes.

    All problems are listed at once (file, problem, fix); the exit code is 1 if there is any. Writes nothing.

    Example:  unimos inspect /tmp/d/manifest.yaml
    """
    from unimos.data.manifest import load_manifest
    from unimos.data.validation import inspect_manifest

    loaded = load_manifest(manifest)
    with progress_bars(err_console) as bars:
        report = inspect_manifest(loaded, workers=workers, progress=bars("inspect"))
    console.print(f"[bold]{loaded.name}[/]: {len(loaded.sources)} sources, {len(loaded.cases)} cases, "
                  f"{loaded.taxonomy.num_classes - 1} classes")
    console.print(coverage_table(report))
    for table in geometry_tables(report):
        console.print(table)
    if not report.ok:
        raise ValidationFailed(report.problems)
    console.print("[green]no problems found[/]")


@app.command("plan")
@friendly_errors
def plan_command(
    manifest: ManifestArg,
    out: Annotated[Path, typer.Option(help="Where to write the plan JSON.")] = Path("unimos_work/plan_3mm.json"),
    preset: Annotated[str, typer.Option(help="'3mm' (fast, 3 mm isotropic) or 'fine' (median spacing).")] = "3mm",
    seed: Annotated[int, typer.Option(help="Seed for intensity sampling.")] = 0,
    workers: WorkersOpt = 2,
) -> None:
    """Derive a plan (target spacing, patch size, normalisation, network size) from the data fingerprint.

    The manifest is inspected first; the plan is a JSON file you may read and edit, with a hash.

    Example:  unimos plan /tmp/d/manifest.yaml --out work/plan_3mm.json --preset 3mm
    """
    from unimos.workflow import checked_manifest, plan_manifest

    with progress_bars(err_console) as bars:
        loaded, _ = checked_manifest(manifest, workers=workers, progress=bars("inspect"))
        plan = plan_manifest(loaded, out, preset, seed=seed, workers=workers, progress=bars("fingerprint"))  # type: ignore[arg-type]
    console.print(f"wrote [bold]{out}[/] (hash {plan['hash']}): spacing {plan['target_spacing_mm']} mm, "
                  f"patch {plan['patch_size']}, {len(plan['network']['strides'])} stages, "
                  f"filters {plan['network']['filters']}")


@app.command("preprocess")
@friendly_errors
def preprocess_command(
    manifest: ManifestArg,
    plan: Annotated[Path, typer.Option(help="Plan JSON written by `unimos plan`.")] = Path("unimos_work/plan_3mm.json"),
    cache: Annotated[Path, typer.Option(help="Cache folder (arrays are stored under its plan key).")] = Path("unimos_work/cache"),
    workers: WorkersOpt = 2,
) -> None:
    """Reorient, resample, crop and normalise every case into the on-disk cache; cached cases are skipped.

    Example:  unimos preprocess /tmp/d/manifest.yaml --plan work/plan_3mm.json --cache work/cache
    """
    from unimos.preprocess.cache import preprocess_manifest
    from unimos.preprocess.plan import load_plan
    from unimos.workflow import checked_manifest

    loaded_plan = load_plan(plan)
    with progress_bars(err_console) as bars:
        loaded, _ = checked_manifest(manifest, workers=workers, progress=bars("inspect"))
        done, skipped = preprocess_manifest(loaded, loaded_plan, cache, workers=workers,
                                            progress=bars("preprocess"))
    console.print(f"preprocessed {done} case(s), {skipped} already cached, in "
                  f"[bold]{Path(cache) / loaded_plan['cache_key']}[/]")


@app.command("demo")
@friendly_errors
def demo_command(
    out: Annotated[Path, typer.Option(help="New or empty folder for everything the demo writes.")] = Path("unimos-demo"),
    quick: Annotated[bool, typer.Option("--quick", help="Smaller data for a smoke test.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for the data and every later stage.")] = 0,
    workers: WorkersOpt = 2,
) -> None:
    """Run unimos end to end on built-in synthetic data.

    Today: make data -> inspect -> plan (3 mm) -> preprocess. Training, prediction and evaluation join as they
    land.

    Example:  unimos demo --out /tmp/unimos-demo --quick
    """
    from unimos.workflow import run_demo

    with progress_bars(err_console) as bars:
        result = run_demo(out, quick=quick, seed=seed, workers=workers, progress_factory=bars)
    console.print(coverage_table(result.report))
    done, skipped = result.preprocessed
    console.print(f"data: [bold]{result.manifest_path}[/]\nplan: [bold]{result.plan_path}[/]\n"
                  f"cache: [bold]{result.cache_dir}[/] ({done} cases preprocessed, {skipped} reused)")
    console.print(f"[green]demo stages done:[/] {' -> '.join(result.stages_done)}. "
                  "[yellow]Training, prediction and evaluation are not built yet[/] (next issue).")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
