"""``python -m pixelrnn``: the command line (also under ``torchrun ... -m pixelrnn``)."""

import sys

from .cli import main

sys.exit(main())
