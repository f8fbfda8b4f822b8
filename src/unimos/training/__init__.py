"""The one training loop: samplers, augmentation, checkpoints."""
