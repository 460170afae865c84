"""Stand-in for ``torchvision.datasets.folder``."""
from .._missing import module_getattr

__getattr__ = module_getattr(__name__)
