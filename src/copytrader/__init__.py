"""kraken-copytrader: mirror one MASTER Kraken account's orders onto several USER accounts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kraken-copytrader")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
