"""Reading a backbone's output shape off one dummy forward pass, for algorithms that size their own layers."""
from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

DEFAULT_IMAGE_SIZE = (28, 28)  # Omniglot, as train/build.py builds image backbones
M = TypeVar("M", bound=nn.Module)


def guess_in_shape(model: nn.Module) -> tuple[int, ...]:
    """The shape of one input item, read off the model's first layer.

    ``(1,)`` (one token id) when it is an ``nn.Embedding`` / ``nn.EmbeddingBag``; ``(in_features,)``
    when it is an ``nn.Linear``; ``(in_channels, 28, 28)`` when it is an ``nn.Conv2d`` (Omniglot size: a convolution does not fix its input size). Raises ``ValueError``
    for anything else.
    """
    for module in model.modules():
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            return (1,)  # one token id (text encoders); output_shape feeds ids, not floats
        if isinstance(module, nn.Linear):
            return (module.in_features,)
        if isinstance(module, nn.Conv2d):
            return (module.in_channels, *DEFAULT_IMAGE_SIZE)
    raise ValueError(
        f"cannot tell the input shape of {type(model).__name__} (its first layer is neither nn.Linear nor nn.Conv2d); "
        f"pass in_shape=<shape of one input item>, e.g. in_shape=(1, 28, 28)"
    )


def output_shape(model: nn.Module, in_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The shape of ``model``'s output for one item of shape ``in_shape`` (default: :func:`guess_in_shape`).

    Runs the model once on a batch of two zero inputs, without gradients and in eval mode (so no
    BatchNorm running statistics are updated), then restores the model's training flag.

    Returns: the output shape without the batch dimension, e.g. ``(64, 7, 7)`` or ``(64,)``.
    """
    shape = tuple(int(s) for s in (guess_in_shape(model) if in_shape is None else in_shape))
    like = _first_float_parameter(model)
    dtype = like.dtype if like is not None else torch.get_default_dtype()
    if any(isinstance(m, (nn.Embedding, nn.EmbeddingBag)) for m in model.modules()):
        dtype = torch.long  # a text encoder reads token ids
    device = like.device if like is not None else None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *shape, dtype=dtype, device=device))
    except RuntimeError as err:
        raise ValueError(
            f"{type(model).__name__} fails on a dummy input of shape {shape} ({err}); pass in_shape=<shape of one input item>"
        ) from err
    finally:
        model.train(was_training)
    return tuple(out.shape[1:])


def like_model(module: M, model: nn.Module) -> M:
    """``module`` moved to the dtype and device of ``model``'s parameters (unchanged for a parameter-free model)."""
    like = _first_float_parameter(model)
    return module.to(dtype=like.dtype, device=like.device) if like is not None else module


def _first_float_parameter(model: nn.Module) -> torch.Tensor | None:
    return next((p for p in model.parameters() if p.is_floating_point()), None)
