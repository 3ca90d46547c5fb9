"""``python -m aod_core.cli``: the same as the ``aod`` command."""

import sys

from aod_core.cli import main

sys.exit(main())
