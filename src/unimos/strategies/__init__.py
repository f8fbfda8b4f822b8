"""Strategies: how one training step computes its loss (supervised, semi-supervised methods)."""
