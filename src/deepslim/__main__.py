"""``python -m deepslim``: the same as the ``deepslim`` command."""

import sys

from .cli.main import main

sys.exit(main())
