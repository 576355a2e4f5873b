"""`python -m copytrader` is the same as the `copytrader` command."""

import sys

from copytrader.cli import main

sys.exit(main())
