"""`python -m bulk_enable ...` is `bulk-enable ...`."""

import sys

from ._cli import main

sys.exit(main())
