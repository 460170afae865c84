"""A stand-in for ``torchvision``, for the speed benchmarks only.

learn2learn 0.2.0 imports torchvision when it is imported (for its datasets and image transforms),
and no CPU build of torchvision matches torch 2.13 here. The benchmarks use none of it: they put
this folder on ``sys.path`` only when the real package is missing. Anything that touches a name
from here fails loudly instead of doing something plausible.
"""
from . import datasets, transforms

__version__ = "0.0.0+learnfast.stub"
__all__ = ["datasets", "transforms"]
