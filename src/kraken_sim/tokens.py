"""WebSocket tokens handed out by GetWebSocketsToken, remembered for the private WS feed."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from dataclasses import dataclass

TOKEN_LIFETIME_S = 900


@dataclass(frozen=True)
class IssuedToken:
    account: str
    expires_at: float
    # The issuing key's permissions: trading over the socket needs the same rights as REST.
    permissions: frozenset[str] = frozenset()


class WsTokens:
    """Tokens by value; each belongs to one account and must be used within 15 minutes."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, account: str, permissions: frozenset[str]) -> dict[str, object]:
        """A new token for this account and the issuing key's permissions, shaped like Kraken's
        GetWebSocketsToken result."""
        self._forget_expired()
        # Kraken's tokens are 43 characters of base64url-like text.
        token = secrets.token_urlsafe(32)
        self._tokens[token] = IssuedToken(
            account, self._clock() + TOKEN_LIFETIME_S, frozenset(permissions)
        )
        return {"token": token, "expires": TOKEN_LIFETIME_S}

    def account_for(self, token: str) -> str | None:
        """The account a still-valid token belongs to, or None."""
        issued = self.issued(token)
        return None if issued is None else issued.account

    def issued(self, token: str) -> IssuedToken | None:
        """A still-valid token's account and permissions, or None."""
        issued = self._tokens.get(token)
        if issued is None or issued.expires_at <= self._clock():
            return None
        return issued

    def keep_alive(self, token: str) -> None:
        """A token in use by a live private subscription does not expire (Kraken's rule)."""
        issued = self._tokens.get(token)
        if issued is not None:
            self._tokens[token] = dataclasses.replace(
                issued, expires_at=self._clock() + TOKEN_LIFETIME_S
            )

    def _forget_expired(self) -> None:
        now = self._clock()
        for token in [t for t, issued in self._tokens.items() if issued.expires_at <= now]:
            del self._tokens[token]
