"""Everything about talking to Kraken for one account: the KrakenBroker and its parts."""
