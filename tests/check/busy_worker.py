"""Stands in for the running daemon: keeps every configured account busy with private calls.

    python tests/check/busy_worker.py STOP_FILE

Reads its accounts exactly as the daemon does (`load_settings()`: config file + environment, so
the credentials never appear in argv), one KrakenBroker per account on the shared data folder,
one thread per account calling Balance/OpenOrders/TradeBalance until STOP_FILE exists. Prints
`ready` once every account has made a call, and at the end one JSON line:
{"calls": {account: n}, "errors": {"Class: message": n}}.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from pathlib import Path

from copytrader.config.settings import load_settings
from copytrader.errors import KrakenError
from copytrader.kraken.broker import KrakenBroker

MAX_CALLS_PER_ACCOUNT = 20_000


def main(stop_file: Path) -> int:
    settings = load_settings()
    brokers = [
        KrakenBroker(
            spec.account_id,
            spec.credentials,
            api_url=settings.api_url,
            data_dir=settings.data_dir,
            timeout_s=5.0,
            retry_waits=False,
            client_rate_limit=False,
        )
        for spec in settings.accounts
        if spec.credentials is not None
    ]
    calls: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    started = threading.Barrier(len(brokers) + 1)

    def work(broker: KrakenBroker) -> None:
        made = 0
        while made < MAX_CALLS_PER_ACCOUNT and (made == 0 or not stop_file.exists()):
            try:
                (broker.balances, broker.open_orders, broker.trade_balance)[made % 3]()
            except KrakenError as exc:
                with lock:
                    errors[f"{type(exc).__name__}: {exc}"] += 1
            made += 1
            if made == 1:
                started.wait()
        with lock:
            calls[broker.account_id] += made

    threads = [threading.Thread(target=work, args=(broker,)) for broker in brokers]
    for thread in threads:
        thread.start()
    started.wait()
    print("ready", flush=True)
    for thread in threads:
        thread.join()
    print(json.dumps({"calls": dict(calls), "errors": dict(errors)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
