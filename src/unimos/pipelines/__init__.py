"""Pipelines: work that runs the training loop more than once or around other steps (self-training rounds; later
the demo, progressive stages and cascade training). Above training and inference, below the CLI."""
