"""`python -m streams.demo`: see streams.demo."""

import sys

from streams.demo import main

sys.exit(main())
