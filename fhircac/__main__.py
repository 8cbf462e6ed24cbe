"""``python -m fhircac`` is the ``fhircac`` command."""

import sys

from fhircac.cli import main

sys.exit(main())
