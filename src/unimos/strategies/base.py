"""The strategy interface: how one training step's loss is computed; the loop, sampler and checkpoints stay shared."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from unimos.errors import Problem, UnimosError, ValidationFailed
from unimos.utils.registry import Registry


@dataclass
class StepOutput:
    """A step's loss to back-propagate and the numbers worth logging."""

    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


class Strategy(nn.Module):
    """Owns the networks it trains in `nets` ("main" is the one used for prediction).

    Subclasses implement `step` (and `after_step` for work after the optimiser step, such as an EMA update).
    `needs_unlabeled` tells the loop to draw unlabeled batches too; `extra_networks` names networks built besides
    "main" (each with its own seed); `defaults` lists the options a strategy takes, with their default values, and
    `limits` their valid ranges (checked when the run starts). `summary`, `source` and `option_help` are what
    `unimos strategies NAME` prints: one line on the method, the paper and released code it follows, and one line per
    option on what it does and where its default comes from.
    """

    needs_unlabeled: bool = False
    extra_networks: tuple[str, ...] = ()
    defaults: dict[str, Any] = {}
    limits: dict[str, Limit] = {}  # valid ranges or choices of options, checked with their default's type
    summary: str = ""
    source: str = ""
    option_help: dict[str, str] = {}

    def __init__(self, nets: dict[str, nn.Module], loss: nn.Module, options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.nets = nn.ModuleDict(nets)
        self.loss = loss
        self.options = resolve_options(type(self).__name__, self.defaults, options or {}, self.limits)

    def setup(self, class_names: list[str]) -> None:
        """Settle options that depend on the project's classes (e.g. whether flips are safe); nothing by default."""

    def describe(self) -> dict[str, Any]:
        """What the run used, for RUN/strategy.json: the resolved options and why any automatic choice was made."""
        return {"options": dict(self.options), "notes": list(getattr(self, "notes", []))}

    @property
    def main(self) -> nn.Module:
        return self.nets["main"]

    def step(self, labeled: dict[str, torch.Tensor], unlabeled: dict[str, torch.Tensor] | None,
             step: int, total_steps: int) -> StepOutput:
        raise NotImplementedError

    def after_step(self, step: int, total_steps: int) -> None:
        """Called after each optimiser step; nothing by default."""

    def extra_state(self) -> dict[str, torch.Tensor]:
        """State besides the networks' weights that a resumed run needs (saved in checkpoints); none by default."""
        return {}

    def load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what `extra_state` returned; a key it lacks keeps its fresh value."""


@dataclass(frozen=True)
class Limit:
    """The valid values of one strategy option beyond its default's type: a closed range or a list of choices."""

    low: float | None = None
    high: float | None = None
    choices: tuple[str | bool, ...] = ()

    def describe(self, noun: str = "a number") -> str:
        if self.choices:
            return "one of " + ", ".join(_yaml(c) for c in self.choices)
        if self.low is not None and self.high is not None:
            return f"{noun} in [{self.low:g}, {self.high:g}]"
        return f"{noun} >= {self.low:g}" if self.low is not None else f"{noun} <= {self.high:g}"


PROBABILITY = Limit(0.0, 1.0)  # thresholds, decays, momenta, and ramp-up lengths as a fraction of the run
NON_NEGATIVE = Limit(0.0)  # loss weights, noise levels


def option_problem(name: str, key: str, value: Any, default: Any, limit: Limit | None) -> Problem | None:
    """Why `value` is not valid for option `key` (typed like its default, within `limit`), or None."""
    where = f"--strategy-option {key}"
    if isinstance(default, bool):
        ok, expected = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        expected = "a number"
    else:
        ok, expected = isinstance(value, str), "a word"
    if limit is not None and limit.choices:  # the choices decide alone (they may mix words and true/false)
        ok = any(value == c and type(value) is type(c) for c in limit.choices)
        expected = limit.describe(expected)
    elif limit is not None:
        ok = ok and (limit.low is None or value >= limit.low) and (limit.high is None or value <= limit.high)
        expected = limit.describe(expected)
    if ok:
        return None
    return Problem(where, f"{name} needs {expected}, got {value!r}", f"give e.g. {key}={_yaml(default)} (the default)")


def _yaml(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def resolve_options(name: str, defaults: dict[str, Any], given: dict[str, Any],
                    limits: dict[str, Limit] | None = None) -> dict[str, Any]:
    """The defaults updated with the given options, checked before any work: an unknown option (naming the known
    ones), a value of the wrong type or out of its range (naming the valid range); every problem at once."""
    problems = []
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        known = ", ".join(f"{k}={_yaml(v)}" for k, v in defaults.items()) or "none"
        problems.append(Problem("--strategy-option", f"{name} has no option {unknown}", f"use one of: {known}"))
    for key in sorted(set(given) & set(defaults)):
        problem = option_problem(name, key, given[key], defaults[key], (limits or {}).get(key))
        if problem is not None:
            problems.append(problem)
    if len(problems) == 1:
        raise UnimosError(problems[0].where, problems[0].problem, problems[0].fix)
    if problems:
        raise ValidationFailed(problems)
    return {**defaults, **given}


def check_strategy_options(strategy: str, options: dict[str, Any]) -> dict[str, Any]:
    """A strategy's options with defaults, refused when the run starts (not at its first step) if any is invalid."""
    cls = STRATEGIES.get(strategy)
    return resolve_options(cls.__name__, cls.defaults, options, cls.limits)


@dataclass(frozen=True)
class OptionDoc:
    """One strategy option as `unimos strategies NAME` lists it."""

    key: str
    default: str
    valid: str
    meaning: str


def valid_values(default: Any, limit: Limit | None) -> str:
    """The values an option accepts, in words (its default's type narrowed by its limit)."""
    noun = ("true or false" if isinstance(default, bool) else "a whole number" if isinstance(default, int)
            else "a number" if isinstance(default, float) else "a path (empty: none)" if default == "" else "a word")
    return noun if limit is None else limit.describe(noun)


def option_docs(strategy: str) -> list[OptionDoc]:
    """Every option of a registered strategy with its default, valid values and meaning, in declaration order."""
    cls = STRATEGIES.get(strategy)
    return [OptionDoc(key, _yaml(default) if default != "" else "(empty)", valid_values(default, cls.limits.get(key)),
                      cls.option_help.get(key, ""))
            for key, default in cls.defaults.items()]


STRATEGIES: Registry[Strategy] = Registry("strategy")
