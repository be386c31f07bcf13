"""``python -m nanhu``: the ``nanhu`` command, for where the console script is not on PATH."""

import sys

from nanhu.cli import main

sys.exit(main())
