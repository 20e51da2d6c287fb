"""``python -m bench`` (also what torchrun launches): the same CLI as the ``bench`` script."""

import sys

from bench.commands.cli import main

sys.exit(main())
