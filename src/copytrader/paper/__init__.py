"""Paper mode: supervises the simulator, the daemon and a demo trader as processes, on demo
accounts, and sums up what was copied."""
