"""A Kraken-compatible exchange: an in-memory engine served over HTTP and WebSocket on loopback
(`python -m kraken_sim`, server.py) or in-process through a `requests` adapter (inprocess.py).

It imports nothing from `copytrader` (tests/test_architecture.py checks), so it can be lifted
out and run against any Kraken client.
"""
