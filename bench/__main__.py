"""``python -m bench`` (also what torchrun launches): the same CLI as the ``bench`` script."""

import sys

from bench.cli import main

sys.exit(main())
