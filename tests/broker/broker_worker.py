"""A process that makes private calls through a KrakenBroker, for the multi-process tests.

    BROKER_KEY=... BROKER_SECRET=... python tests/broker/broker_worker.py URL DATA_DIR ACCOUNT \
        CALLS THREADS

Each of THREADS threads makes CALLS private calls (CALLS < 0: until killed). The credentials come
from the environment, not argv, so they never show in a process list. At the end it prints one
JSON line: {"calls": n, "errors": {"ErrorClass": count}}.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import Counter
from pathlib import Path

from copytrader.config.credentials import ApiCredentials
from copytrader.errors import KrakenError
from copytrader.kraken.broker import KrakenBroker


def main(argv: list[str]) -> int:
    url, data_dir, account_id, calls_text, threads_text = argv
    calls, threads = int(calls_text), int(threads_text)
    credentials = ApiCredentials(os.environ["BROKER_KEY"], os.environ["BROKER_SECRET"])
    broker = KrakenBroker(
        account_id,
        credentials,
        api_url=url,
        data_dir=Path(data_dir),
        timeout_s=5.0,
        retry_waits=False,
        client_rate_limit=False,
    )
    errors: Counter[str] = Counter()
    done = Counter[str]()
    lock = threading.Lock()

    def work() -> None:
        made = 0
        while calls < 0 or made < calls:
            try:
                broker.balances() if made % 2 else broker.open_orders()
            except KrakenError as exc:
                with lock:
                    errors[type(exc).__name__] += 1
            made += 1
        with lock:
            done["calls"] += made

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps({"calls": done["calls"], "errors": dict(errors)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
