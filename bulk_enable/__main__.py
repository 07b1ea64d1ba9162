"""`python -m bulk_enable ...` is `bulk-enable ...`."""

import sys

from ._entry import main

sys.exit(main())
