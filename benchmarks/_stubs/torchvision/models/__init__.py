"""Stand-in for ``torchvision.models`` (easyfsl 1.5.0 imports its ResNet blocks at import time)."""
from .._missing import module_getattr

__getattr__ = module_getattr(__name__)
