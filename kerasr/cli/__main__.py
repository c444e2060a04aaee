"""`python -m kerasr.cli ...`: the same as the `kerasr` console script."""

import sys

from kerasr.cli import main

sys.exit(main())
