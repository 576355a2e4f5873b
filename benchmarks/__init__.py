"""Benchmarks: run by hand, print tables; never part of ./test.sh."""
