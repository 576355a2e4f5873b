"""An account's API key and secret, made so that printing them never shows the secret.

    >>> ApiCredentials("abcdEFGHijkl...", "c2VjcmV0...")
    ApiCredentials(key='abcd…', secret=<SECRET>)

The key is public-ish (Kraken shows it in its UI) but still never printed in full: its first
four characters are enough for an operator to tell keys apart. The secret is only readable
through `SecretStr.get_secret_value()`, which the signer calls and nothing else should.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

KEY_PREFIX_LEN = 4
SECRET_MASK = "<SECRET>"  # noqa: S105 - the mask printed instead of a secret


class SecretStr:
    """A string that prints as `<SECRET>` in str(), repr() and f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return SECRET_MASK

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return SECRET_MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the secret into whatever stores the pickle: refuse.
        raise TypeError("SecretStr cannot be pickled")


def key_hint(key: str) -> str:
    """The first characters of an API key, enough to tell keys apart in logs: 'abcd…'."""
    return f"{key[:KEY_PREFIX_LEN]}…" if key else "<no key>"


@dataclass(frozen=True, init=False, repr=False)
class ApiCredentials:
    """One API key and its secret. `secret` may be given as a plain str; it is wrapped."""

    key: str
    secret: SecretStr

    def __init__(self, key: str, secret: str | SecretStr) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(
            self, "secret", secret if isinstance(secret, SecretStr) else SecretStr(secret)
        )

    def __repr__(self) -> str:
        return f"ApiCredentials(key={key_hint(self.key)!r}, secret={SECRET_MASK})"

    __str__ = __repr__

    @property
    def key_hint(self) -> str:
        return key_hint(self.key)

    def decoded_secret(self) -> bytes:
        """The secret as the bytes HMAC needs; ValueError (naming nothing secret) if malformed."""
        try:
            decoded = base64.b64decode(self.secret.get_secret_value(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the API secret is not valid base64") from None
        if not decoded:
            raise ValueError("the API secret is empty")
        return decoded
