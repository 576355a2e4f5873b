"""GetApiKeyInfo: what the calling key may do, in the shape of Kraken's reply.

Kraken's documented example:
`{"apiKeyName", "apiKey", "nonce", "nonceWindow", "permissions": ["query-funds",
"withdraw-funds", "query-open-trades", "modify-trades"], "iban", "validUntil", "queryFrom",
"queryTo", "createdTime", "modifiedTime", "ipAllowlist", "lastUsed"}`; numbers other than
`nonceWindow` are strings. The permission names in that example are used as given; the others
(`query-closed-trades`, `cancel-close-trades`, `access-websockets`) follow the same pattern and
are the simulator's choice. `withdraw-funds` appears only for a key whose accounts-file
permissions include `withdraw`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kraken_sim.accounts import ApiKeySpec

# The accounts file's permission -> Kraken's names for it, in Kraken's order.
KRAKEN_PERMISSION_NAMES: dict[str, tuple[str, ...]] = {
    "query_funds": ("query-funds",),
    "withdraw": ("withdraw-funds",),
    "query_orders": ("query-open-trades", "query-closed-trades"),
    "create_orders": ("modify-trades",),
    "cancel_orders": ("cancel-close-trades",),
    "websocket": ("access-websockets",),
}
_IBAN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def iban(account: str) -> str:
    """A stable Kraken-style account IIBAN (`AA88 N84G WOAK NMOI`) derived from the name."""
    digest = hashlib.sha256(account.encode()).digest()
    chars = "".join(_IBAN_ALPHABET[b % len(_IBAN_ALPHABET)] for b in digest[:14])
    return f"AA{chars[:2]} {chars[2:6]} {chars[6:10]} {chars[10:14]}"


def api_key_info(spec: ApiKeySpec, nonce: int, created: float, now: float) -> dict[str, Any]:
    permissions = [name for own, names in KRAKEN_PERMISSION_NAMES.items()
                   if own in spec.permissions for name in names]  # fmt: skip
    return {
        "apiKeyName": f"{spec.account}:{spec.key[:4]}",
        "apiKey": spec.key,
        "nonce": str(nonce),
        "nonceWindow": spec.nonce_window,
        "permissions": permissions,
        "iban": iban(spec.account),
        "validUntil": "0",
        "queryFrom": "0",
        "queryTo": "0",
        "createdTime": str(int(created)),
        "modifiedTime": str(int(created)),
        "ipAllowlist": [],
        "lastUsed": str(int(now)),
    }
