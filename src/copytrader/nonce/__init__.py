"""One nonce store per account: its file, its thread and OS lock, strictly increasing nonces."""
