"""Stand-in for ``torchvision.datasets``: every public name is a placeholder class."""
from .._missing import module_getattr

__getattr__ = module_getattr(__name__)
