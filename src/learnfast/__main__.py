"""``python -m learnfast ...`` (and ``torchrun -m learnfast ...``): the ``learnfast`` command."""
import sys

from .cli import main

sys.exit(main())
