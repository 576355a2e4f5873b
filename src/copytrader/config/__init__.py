"""Configuration: config/accounts.toml and the environment (and .env) become frozen, typed
settings. The only reader of os.environ."""
