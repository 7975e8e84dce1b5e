"""`python -m compression`: the CLI."""

import sys

from .commands import main

sys.exit(main())
