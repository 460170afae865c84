"""Dataset readers: each turns local files into task sources (``.sample(batch_size, generator)``)."""
from .omniglot import OmniglotDataError, load_omniglot, omniglot_split
from .regression import SinusoidTasks
from .root import data_root

__all__ = ["OmniglotDataError", "SinusoidTasks", "data_root", "load_omniglot", "omniglot_split"]
