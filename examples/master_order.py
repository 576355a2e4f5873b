"""Place one order on the example simulator's MASTER account, as the master's own trading app
would (with the master's second key, examples/sim-accounts.toml), and print Kraken's answer.

    .venv/bin/python examples/master_order.py buy 0.01              # a market buy of 0.01 BTC
    .venv/bin/python examples/master_order.py sell 0.01 --limit 61000
    .venv/bin/python examples/master_order.py cancel OXXXXX-XXXXX-XXXXXX

It talks to KRAKEN_API_URL (default http://127.0.0.1:8765), never to the real Kraken: the key is
refused anywhere but the simulator started with examples/sim-accounts.toml.
"""

from __future__ import annotations

import argparse
import json
import os

import krakenex

KEY = "example-master-trader"
# A made-up key of examples/sim-accounts.toml: it exists in that simulator and nowhere else.
SECRET = "c2ltdWxhdG9yLW9ubHkgc2VjcmV0IGZvciB0aGUgZXhhbXBsZSB0cmFkZXIga2V5LCBub3QgYSByZWFsIG9uZSE="  # noqa: S105


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("side", choices=["buy", "sell", "cancel"])
    parser.add_argument("volume_or_txid", help="volume in BTC, or the txid to cancel")
    parser.add_argument("--limit", help="a limit price in USD (default: a market order)")
    parser.add_argument("--pair", default="XBTUSD")
    args = parser.parse_args()
    api = krakenex.API(KEY, SECRET)
    api.uri = os.environ.get("KRAKEN_API_URL", "http://127.0.0.1:8765")
    if args.side == "cancel":
        reply = api.query_private("CancelOrder", {"txid": args.volume_or_txid})
    else:
        order = {"pair": args.pair, "type": args.side, "volume": args.volume_or_txid}
        if args.limit:
            order |= {"ordertype": "limit", "price": args.limit}
        else:
            order["ordertype"] = "market"
        reply = api.query_private("AddOrder", order)
    print(json.dumps(reply))  # noqa: T201 - the script's output is Kraken's answer


if __name__ == "__main__":
    main()
