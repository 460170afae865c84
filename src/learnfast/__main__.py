"""``python -m learnfast ...`` (and ``torchrun -m learnfast ...``): the ``learnfast`` command."""
import sys

from .cli import main
from .train.distributed import exit_rank

exit_rank(main())
