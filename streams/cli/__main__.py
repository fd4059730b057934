"""`python -m streams.cli`: the `streetwatch` command without its console script."""

import sys

from streams.cli import main

sys.exit(main())
