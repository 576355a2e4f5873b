import sys

from kraken_sim.cli import main

sys.exit(main())
