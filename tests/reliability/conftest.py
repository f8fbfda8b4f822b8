"""Fixtures shared by the reliability tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.helpers import train_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny trained checkpoint (liver only), one per test module."""
    return train_tiny_checkpoint(tmp_path_factory.mktemp("model"))
