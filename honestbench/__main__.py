"""``python -m honestbench`` (also what torchrun launches): the same CLI as the ``bench`` script."""

import sys

from honestbench.cli.main import main

sys.exit(main())
