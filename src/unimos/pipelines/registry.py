"""The registry of multi-round pipelines, by the name of the strategy they run (`--strategy self_training`).

A pipeline is `run(cases, plan, config, run_dir, validation_cases=..., resume=..., progress=..., runtime=...)`
returning a result with the training loop's fields (`runtime`: the device and precision resolved once for the
run); `pipelines.run.train_from_cache` runs it in place of a single training.
"""

from __future__ import annotations

from typing import Any

from unimos.utils.registry import Registry

PIPELINES = Registry[Any]("multi-round pipeline")
