"""Fixtures for the pure-python tests (the --runslow option lives in the root conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/zoo.py, tests/reference.py


from zoo import cifar_dir, need_shared  # noqa: E402,F401  (re-exported: tests/test_cli.py imports them from conftest)


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="session")
def sample_pixels():
    """~600 uint8 NHWC test images: 400 CIFAR-10 test images when available, plus 200 synthetic ones."""
    import zoo

    parts = [zoo.random_pixels(200, seed=12345)]
    d = cifar_dir()
    if d is not None:
        from rtlgen.data import load_test

        parts.insert(0, load_test(d, limit=400)[0])
    return np.concatenate(parts)
