"""CIFAR-10 loader for the standard ``cifar-10-batches-py`` layout (the project's one data loader).

The dataset folder is given explicitly or through ``$RTLGEN_CIFAR10``. Images come back as uint8 NHWC
``[N, 32, 32, 3]`` arrays (RGB), labels as int64 ``[N]``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from .errors import DatasetError

ENV_VAR = "RTLGEN_CIFAR10"


def dataset_dir(path: str | os.PathLike | None = None) -> Path:
    if path is None:
        path = os.environ.get(ENV_VAR)
        if not path:
            raise DatasetError(f"no dataset given: pass --dataset DIR or set ${ENV_VAR} to a cifar-10-batches-py folder")
    p = Path(path)
    if not p.is_dir():
        raise DatasetError(f"dataset folder {str(p)!r} does not exist or is not a directory")
    return p


def _load_batch(f: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(f, "rb") as fh:
            d = pickle.load(fh, encoding="latin1")
        data = np.asarray(d["data"], dtype=np.uint8)
        labels = np.asarray(d["labels"], dtype=np.int64)
    except FileNotFoundError:
        raise DatasetError(f"dataset file {str(f)!r} is missing (expected the cifar-10-batches-py layout)") from None
    except Exception as e:  # noqa: BLE001 - any unpickling problem is a bad dataset
        raise DatasetError(f"dataset file {str(f)!r} is not a CIFAR-10 python batch ({type(e).__name__})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DatasetError(f"dataset file {str(f)!r} has unexpected shape {data.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def load_test(path=None, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    x, y = _load_batch(dataset_dir(path) / "test_batch")
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x, y


def load_train(path=None) -> tuple[np.ndarray, np.ndarray]:
    d = dataset_dir(path)
    parts = [_load_batch(d / f"data_batch_{i}") for i in range(1, 6)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def default_shared_dir() -> Path | None:
    """``../shared/data/cifar-10-batches-py`` beside a source checkout, if present (used by tests and tools)."""
    p = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cifar-10-batches-py"
    return p if p.is_dir() else None
