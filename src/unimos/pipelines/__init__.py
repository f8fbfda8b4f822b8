"""Pipelines: what one command runs end to end, as library calls the CLI and the demo use (`inspect` -> `plan` ->
`preprocess` -> ...), and work that runs the training loop more than once or around other steps. Above training and
inference, below the CLI.

- `project.py`: a manifest checked and its plan written; `run.py`: a run folder checked, training from a cache (one
  training or a registered pipeline), a comparison row trained and scored; `demo.py`: `unimos demo` (`run_demo`,
  `run_ssl_demo`). Import them as modules (`from unimos.pipelines.run import train_from_cache`).
- Multi-round pipelines (self-training rounds, progressive organ -> lesion stages; later cascade training): a new
  one is one module here decorated with `@PIPELINES.register("NAME")` (NAME is its strategy, registered with
  `multi_round = True` in strategies/) plus one import line below; `run.train_from_cache` runs it in place of one
  training."""

from unimos.pipelines import lesion_crops, progressive, self_training  # noqa: F401  (registers)
from unimos.pipelines.registry import PIPELINES

__all__ = ["PIPELINES"]
