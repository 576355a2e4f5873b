"""A deliberately small Kraken REST client for tests: signs independently of the simulator's code
and lets a test send exactly the bytes and headers it wants."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import requests

TIMEOUT_S = 10.0

# The last nonce sent per API key, shared by every RawClient of this test session, so that two
# clients of one key never send the same millisecond twice.
_last_nonce: dict[str, int] = {}


def sign(secret_b64: str, urlpath: str, nonce: str, body: bytes) -> str:
    """Kraken's API-Sign, written out from the documentation (not imported from the simulator)."""
    sha = hashlib.sha256(nonce.encode() + body).digest()
    mac = hmac.new(base64.b64decode(secret_b64), urlpath.encode() + sha, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


@dataclass
class RawClient:
    """Sends private calls as a client would, with hooks to break any part of them."""

    base_url: str
    key: str
    secret: str = field(repr=False)
    session: requests.Session = field(default_factory=requests.Session)

    def next_nonce(self) -> int:
        nonce = max(int(time.time() * 1000), _last_nonce.get(self.key, 0) + 1)
        _last_nonce[self.key] = nonce
        return nonce

    def post_raw(
        self,
        method: str,
        body: bytes,
        *,
        nonce_text: str,
        content_type: str = "application/x-www-form-urlencoded",
        headers: dict[str, str] | None = None,
        signature: str | None = None,
        timeout: float | tuple[float, float] = TIMEOUT_S,
    ) -> requests.Response:
        """POST these exact bytes, signed over `nonce_text` + body unless `signature` is given."""
        path = f"/0/private/{method}"
        sent = {
            "API-Key": self.key,
            "API-Sign": signature or sign(self.secret, path, nonce_text, body),
            "Content-Type": content_type,
        }
        sent.update(headers or {})
        return self.session.post(self.base_url + path, data=body, headers=sent, timeout=timeout)

    def call(self, method: str, nonce: int | None = None, **params: Any) -> dict[str, Any]:
        """A normal form-encoded private call; returns the decoded envelope."""
        nonce = self.next_nonce() if nonce is None else nonce
        body = urllib.parse.urlencode({"nonce": nonce, **params}).encode()
        response = self.post_raw(method, body, nonce_text=str(nonce))
        result: dict[str, Any] = response.json()
        return result

    def call_json(self, method: str, **params: Any) -> dict[str, Any]:
        """A JSON-bodied private call with the nonce as a JSON string, as ccxt sends batches."""
        nonce = str(self.next_nonce())
        body = json.dumps({"nonce": nonce, **params}, separators=(",", ":")).encode()
        response = self.post_raw(method, body, nonce_text=nonce, content_type="application/json")
        result: dict[str, Any] = response.json()
        return result


def public(base_url: str, method: str, **params: Any) -> dict[str, Any]:
    response = requests.get(f"{base_url}/0/public/{method}", params=params, timeout=TIMEOUT_S)
    result: dict[str, Any] = response.json()
    return result
