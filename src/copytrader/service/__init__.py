"""The process: the daemon loop, start-up and the account probe, `check`, the lifecycle (data
folder lock, signals, heartbeat) and the health check."""
