"""Stand-in for ``torchvision.datasets.omniglot``."""
from .._missing import module_getattr

__getattr__ = module_getattr(__name__)
