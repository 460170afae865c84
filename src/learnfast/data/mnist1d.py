"""MNIST-1D (Greydanus 2020): 40-sample 1-d signals of the ten digits, generated locally.

The ``mnist1d`` package builds the data set from ten templates with seeded transformations
(shift, scale, shear, noise); nothing is downloaded. Generation takes ~2 s and is cached for the
life of the process. It seeds NumPy's and Python's global generators internally; their states are
restored afterwards, so reading the data leaves global randomness untouched.
"""
from __future__ import annotations

import functools
import random
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

FEATURES, CLASSES = 40, 10


class MNIST1D(NamedTuple):
    """The package's default split: ``x_train (4000, 40)`` float32, ``y_train (4000,)`` int64, ``x_test (1000, 40)``, ``y_test (1000,)``."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


@functools.lru_cache(maxsize=1)
def mnist1d() -> MNIST1D:
    """The MNIST-1D arrays, generated offline by ``mnist1d.data.make_dataset`` with its default arguments (seed 42)."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise ImportError("MNIST-1D problems need the mnist1d package: pip install mnist1d (or pip install 'learnfast[l2o]')") from err
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    arrays = MNIST1D(*(torch.as_tensor(np.asarray(data[k]), dtype=torch.float32 if k.startswith("x") else torch.int64)
                       for k in ("x", "y", "x_test", "y_test")))
    if arrays.x_train.shape[1:] != (FEATURES,) or not (0 <= int(arrays.y_train.min()) and int(arrays.y_train.max()) < CLASSES):
        raise ValueError(f"mnist1d generated data of shape {tuple(arrays.x_train.shape)} with labels outside 0..9; "
                         f"this learnfast expects 40-d signals of 10 classes (mnist1d 0.0.2)")
    return arrays
