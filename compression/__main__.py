"""`python -m compression`: the CLI."""

import sys

from compression.cli import main

sys.exit(main())
