"""Kraken's private-call authentication: API-Key, API-Sign over the raw body, nonce, permissions.

Order of checks (each failing call stops at the first that fails):

1. API-Key missing or unknown     -> EAPI:Invalid key           (counts towards SOURCE lockout)
2. key (or source) locked out     -> EGeneral:Temporary lockout (nothing else is looked at)
3. body not a form / JSON object  -> EAPI:Bad request
4. API-Sign missing or wrong      -> EAPI:Invalid signature     (counts towards KEY lockout)
5. nonce missing, malformed, used,
   or too low for the window      -> EAPI:Invalid nonce         (counts towards KEY lockout)
   -- from here on the nonce is consumed --
6. key lacks the method's right   -> EGeneral:Permission denied (GetApiKeyInfo needs none)
7. REST counter over the maximum  -> EAPI:Rate limit exceeded

The signature is `base64(HMAC-SHA512(base64decode(secret), path + SHA256(nonce + body)))` over
the body bytes exactly as received; nothing is re-serialized.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kraken_sim import errors
from kraken_sim.accounts import ApiKeySpec, LockoutPolicy
from kraken_sim.errors import SimError
from kraken_sim.lockout import Lockouts
from kraken_sim.nonces import NonceGuard, parse_nonce
from kraken_sim.ratelimit import RestRateCounter

CANCEL_RIGHTS = frozenset({"cancel_orders", "create_orders"})

# Which key permission each private method needs (any one of the set; an empty set: none), per
# Kraken's spec. These are exactly the private methods the simulator serves: rest.py refuses any
# other before authentication, so an unknown method never uses up a nonce.
METHOD_PERMISSIONS: Mapping[str, frozenset[str]] = {
    "Balance": frozenset({"query_funds"}),
    "BalanceEx": frozenset({"query_funds"}),
    "TradeBalance": frozenset({"query_funds"}),
    "OpenOrders": frozenset({"query_orders"}),
    "ClosedOrders": frozenset({"query_orders"}),
    "QueryOrders": frozenset({"query_orders"}),
    "QueryTrades": frozenset({"query_orders"}),
    "TradesHistory": frozenset({"query_orders"}),
    "OrderAmends": frozenset({"query_orders"}),
    "Ledgers": frozenset({"query_funds"}),
    "QueryLedgers": frozenset({"query_funds"}),
    "TradeVolume": frozenset({"query_funds"}),
    "AddOrder": frozenset({"create_orders"}),
    "AddOrderBatch": frozenset({"create_orders"}),
    "AmendOrder": frozenset({"create_orders"}),
    "EditOrder": frozenset({"create_orders"}),
    "CancelOrder": CANCEL_RIGHTS,
    "CancelOrderBatch": CANCEL_RIGHTS,
    "CancelAll": CANCEL_RIGHTS,
    "CancelAllOrdersAfter": CANCEL_RIGHTS,
    "GetWebSocketsToken": frozenset({"websocket"}),
    "GetApiKeyInfo": frozenset(),  # any valid key may ask about itself
}


def kraken_signature(secret: bytes, urlpath: str, nonce: str, body: bytes) -> str:
    """The API-Sign value Kraken expects for this request (secret already base64-decoded)."""
    digest = hashlib.sha256(nonce.encode() + body).digest()
    mac = hmac.new(secret, urlpath.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def signature_matches(secret: bytes, urlpath: str, nonce: str, body: bytes, given: str) -> bool:
    """Constant-time comparison of the client's API-Sign with the expected one."""
    expected = kraken_signature(secret, urlpath, nonce, body).encode()
    return hmac.compare_digest(expected, given.encode("utf-8", "replace"))


def short_key(key: str) -> str:
    """A key shortened for logs and control output: never the full key."""
    return key[:4] + "…" if len(key) > 4 else "…"


@dataclass
class KeyState:
    """One API key at run time: its spec, its nonce state and its REST counter."""

    spec: ApiKeySpec
    nonces: NonceGuard
    rate: RestRateCounter

    @property
    def account(self) -> str:
        return self.spec.account


class Authenticator:
    """Runs the checks above for every private call."""

    def __init__(
        self,
        keys: Mapping[str, tuple[ApiKeySpec, str]],
        lockout: LockoutPolicy,
        clock: Callable[[], float],
    ) -> None:
        """`keys` maps each API key to its spec and the tier of its account."""
        self.keys: dict[str, KeyState] = {
            key: KeyState(
                spec=spec,
                nonces=NonceGuard(window=spec.nonce_window),
                rate=RestRateCounter(tier, clock),
            )
            for key, (spec, tier) in keys.items()
        }
        self.lockouts = Lockouts(lockout, clock)
        self.invalid_nonces = 0
        # Off only through /sim/limits, for stress tests about something else than limits.
        self.rest_limits = True

    def authenticate(
        self,
        *,
        method: str,
        urlpath: str,
        api_key: str | None,
        api_sign: str | None,
        body: bytes,
        params: Mapping[str, Any] | None,
        source: str,
    ) -> KeyState:
        """The calling key if every check passes; raises SimError with Kraken's string if not.

        `params` is the parsed body, or None when the body could not be parsed.
        """
        state = self.keys.get(api_key) if api_key else None
        if state is None:
            source_subject = f"source:{source}"
            if self.lockouts.is_locked(source_subject):
                raise SimError(errors.TEMPORARY_LOCKOUT)
            self.lockouts.record_failure(source_subject)
            raise SimError(errors.INVALID_KEY)
        key_subject = f"key:{state.spec.key}"
        if self.lockouts.is_locked(key_subject):
            raise SimError(errors.TEMPORARY_LOCKOUT)
        if params is None:
            raise SimError(errors.BAD_REQUEST)
        raw_nonce = params.get("nonce")
        # The client hashed the nonce text it put in the body: a form value or a JSON string
        # as is, a JSON integer in decimal.
        signed_nonce = (
            str(raw_nonce)
            if isinstance(raw_nonce, str | int) and not isinstance(raw_nonce, bool)
            else ""
        )
        if not api_sign or not signature_matches(
            state.spec.secret, urlpath, signed_nonce, body, api_sign
        ):
            self.lockouts.record_failure(key_subject)
            raise SimError(errors.INVALID_SIGNATURE)
        parsed = parse_nonce(raw_nonce)
        if parsed is None or not state.nonces.consume(parsed[0]):
            self.invalid_nonces += 1
            self.lockouts.record_failure(key_subject)
            raise SimError(errors.INVALID_NONCE)
        needed = METHOD_PERMISSIONS.get(method)
        if needed is None or (needed and not needed & state.spec.permissions):
            raise SimError(errors.PERMISSION_DENIED)
        if self.rest_limits and not state.rate.charge(method):
            raise SimError(errors.RATE_LIMIT)
        return state

    def is_key_locked(self, key: str) -> bool:
        return self.lockouts.is_locked(f"key:{key}")
