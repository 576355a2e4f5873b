"""A Kraken-compatible exchange: an in-memory engine plus a real HTTP server on loopback.

It imports nothing from `copytrader` (tests/test_architecture.py checks), so it can be lifted
out and run against any Kraken client.
"""
