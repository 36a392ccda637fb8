"""``python -m servicetitan``: the ``servicetitan`` command."""

import sys

from ._cli import main

sys.exit(main())
