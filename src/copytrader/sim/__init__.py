"""A Kraken-compatible exchange: an in-memory engine plus a real HTTP server on loopback.

Nothing in this package imports from the daemon side of `copytrader`.
"""
