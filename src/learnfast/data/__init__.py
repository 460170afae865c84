"""Dataset readers: each turns local files into task sources (``.sample(batch_size, generator)``)."""
from .folders import image_folder
from .hf import load_hf_dataset
from .labelled import DataError, LabelledData, array_dataset, load_npz
from .omniglot import OmniglotDataError, load_omniglot, omniglot_split
from .regression import SinusoidTasks
from .root import data_root
from .text import text_classification

__all__ = ["DataError", "LabelledData", "OmniglotDataError", "SinusoidTasks", "array_dataset", "data_root", "image_folder",
           "load_hf_dataset", "load_npz", "load_omniglot", "omniglot_split", "text_classification"]
