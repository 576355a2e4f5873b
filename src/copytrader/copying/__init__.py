"""Copying: every master order mirrored onto every enabled user, exactly once.

- `lanes`: the Copier, one lane per user, all users in parallel (the entry point);
- `placing`: one planned copy sized and sent; `gates`: why a copy must not be sent now;
- `resolving`: copies left `submitting`, looked up on Kraken before anything else;
- `cancelling`: copies of cancelled master orders cancelled;
- `outcomes`: each copy's end written, logged, counted and summed up per master order;
- `accounts`, `kill_switch`, `snapshots`, `order_request`, `exchange_index`: what those work
  with (accounts and settings, the kill switch, cached balances, the copy's AddOrder, the
  user's orders on the exchange by `cl_ord_id`).
"""
