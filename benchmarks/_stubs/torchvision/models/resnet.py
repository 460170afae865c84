"""Stand-in for ``torchvision.models.resnet``: ``BasicBlock``, ``conv3x3``... are placeholders."""
from .._missing import module_getattr

__getattr__ = module_getattr(__name__)
