"""A process that takes nonces from one NonceStore in a loop, for the multi-process tests.

    python tests/nonce/nonce_worker.py DATA_DIR ACCOUNT_ID LOG_FILE COUNT [GO_FILE]

Each nonce is appended to LOG_FILE while the account's lock is still held, as "<pid> <nonce>", so
the file's line order is the order in which nonces were handed out (and would reach Kraken).
COUNT < 0 loops until the process is killed. With GO_FILE, it starts once that file exists, so
several workers start together.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from copytrader.nonce import NonceStore


def main(argv: list[str]) -> int:
    data_dir, account_id, log_file, count_text, *go_file = argv
    count = int(count_text)
    deadline = time.monotonic() + 30
    while go_file and not Path(go_file[0]).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    store = NonceStore(account_id, Path(data_dir))
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    pid = os.getpid()
    taken = 0
    while count < 0 or taken < count:
        with store.locked() as next_nonce:
            nonce = next_nonce()
            os.write(fd, f"{pid} {nonce}\n".encode())
        taken += 1
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
