"""``python -m services.cli`` runs the ``runlog`` command line."""

import sys

from . import main

sys.exit(main())
