"""A process that takes nonces from one NonceStore in a loop, for the multi-process tests.

    python tests/nonce/nonce_worker.py DATA_DIR ACCOUNT_ID LOG_FILE COUNT [--wait-for-go]
        [--lock-timeout SECONDS]

Each nonce is appended to LOG_FILE while the account's lock is still held, as "<pid> <nonce>", so
the file's line order is the order in which nonces were handed out (and would reach Kraken).
COUNT < 0 loops until the process is killed. With --wait-for-go, it sets up (store made, lock
file open), prints "ready" and starts when a byte arrives on stdin, so that several workers start
together. A lock timeout (RetryLaterError) ends the process with LOCK_TIMEOUT_EXIT.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from copytrader.errors import RetryLaterError
from copytrader.nonce.store import DEFAULT_LOCK_TIMEOUT_S, NonceStore

LOCK_TIMEOUT_EXIT = 3


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("account_id")
    parser.add_argument("log_file")
    parser.add_argument("count", type=int)
    parser.add_argument("--wait-for-go", action="store_true")
    parser.add_argument("--lock-timeout", type=float, default=DEFAULT_LOCK_TIMEOUT_S)
    args = parser.parse_args(argv)
    store = NonceStore(args.account_id, args.data_dir, lock_timeout_s=args.lock_timeout)
    fd = os.open(args.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    if args.wait_for_go:
        store.peek()  # opens the files, so that the workers start on an equal footing
        print("ready", flush=True)
        sys.stdin.buffer.read(1)
    pid = os.getpid()
    taken = 0
    try:
        while args.count < 0 or taken < args.count:
            with store.locked() as next_nonce:
                nonce = next_nonce()
                os.write(fd, f"{pid} {nonce}\n".encode())
            taken += 1
    except RetryLaterError:
        return LOCK_TIMEOUT_EXIT
    finally:
        os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
