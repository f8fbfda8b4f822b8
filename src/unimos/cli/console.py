"""What every command shares: the consoles (wide and plain when the output is not a terminal), KEY=VALUE options,
and `friendly_errors`, which turns every error into one readable message and a non-zero exit."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from unimos.cli.render import print_problems
from unimos.errors import UnimosError, ValidationFailed

# Logs and pipes get a wide fixed width so the coverage table is not squeezed to 80 columns.
console = Console(highlight=False, width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, highlight=False, width=None if Console(stderr=True).is_terminal else 160)
F = TypeVar("F", bound=Callable[..., Any])


def parse_key_values(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE strings to a dict; values read as YAML scalars (0.9 -> float, true -> bool, text stays text)."""
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UnimosError("--strategy-option", f"'{item}' is not KEY=VALUE", "write it like tau=0.9")
        options[key.strip()] = yaml.safe_load(value)
    return options


TRACEBACK_ENV = "UNIMOS_TRACEBACK"  # set to 1 to see the traceback of an unexpected error


def _unexpected(err: Exception) -> str:
    """One line for an error no check foresaw: what happened and what to do."""
    if isinstance(err, MemoryError):
        return ("ran out of memory. Fix: run it on a machine with more memory, or lower its size (--batch-size, "
                "--memory-budget-gib, a smaller plan)")
    if isinstance(err, OSError):
        return (f"the system refused an operation ({err.strerror or err}{f': {err.filename}' if err.filename else ''})"
                ". Fix: check free disk space and permissions of the files and folders named")
    return (f"unexpected {type(err).__name__}: {err}. Fix: this is a bug in unimos; please report it with the "
            f"command line, and run it again with {TRACEBACK_ENV}=1 to see where it happened")


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
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: finished files are kept; nothing half-written is left.")
            raise typer.Exit(code=130) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as err:  # a bug or the machine, not the user's input: still one message, no traceback
            if os.environ.get(TRACEBACK_ENV):
                raise
            err_console.print("[bold red]error:[/] unimos "
                              f"{command.__name__.removesuffix('_command').replace('_', '-')}"
                              f": {escape(_unexpected(err))}", soft_wrap=True)
            raise typer.Exit(code=1) from None

    return wrapper  # type: ignore[return-value]
