"""The checks every configured value passes before anything uses it: text an operator can have
meant, and numbers that are plain ASCII decimals of a sane size.

These are shared by the config file readers (`accounts_file`) and the environment reader
(`settings`). Each returns a short problem description (or raises ValueError with one) so that
the caller can wrap it in a ConfigError naming the file or variable, the entry and the field.

Text: no control characters (line breaks and tabs included), no invisible format characters
(zero-width spaces, bidirectional overrides), no line or paragraph separators, no unassigned or
private-use code points. Such a character in a name, an id or a path is never meant, and it
would break the one-line error and log formats (or hide what a line says).

Decimals: ASCII digits with an optional sign and decimal point, nothing else. Python's Decimal
also accepts other scripts' digits ("١٢", full-width "１２"), underscores ("1_000"), exponents
("1e999999"), "NaN" and "Infinity"; none of those is a believable copy size, and some would
make every later computation fail.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

# Unicode categories refused in any text value: control (Cc: \n, \t, \x00...), format (Cf:
# zero-width and bidirectional marks), surrogate, private use, unassigned, line and paragraph
# separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_EXPONENT = re.compile(r"[+-]?[0-9.]+[eE][+-]?[0-9]+")
MAX_DECIMAL_CHARS = 24
MAX_FRACTION_DIGITS = 8
_SHOWN_CHARS = 40


def shown(value: object) -> str:
    """A value as an error message may quote it: one line, at most ~40 characters, and only
    scalars (a nested array is named, not printed)."""
    if isinstance(value, str):
        text = repr(value[:_SHOWN_CHARS])
        return text if len(value) <= _SHOWN_CHARS else f"{text}… ({len(value)} characters)"
    if isinstance(value, bool | int | float):
        text = repr(value)
        return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}…"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def refused_character(value: str) -> str | None:
    """Why `value` holds a character no configuration value can mean, or None.

    Names the character by its code point and position, never by showing it (a control
    character would break the message, and the value may be a secret)."""
    for index, char in enumerate(value):
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES:
            kind = "a line break" if char in "\r\n\x85\u2028\u2029" else "a control character"
            if category in ("Cf", "Co", "Cn", "Cs"):
                kind = "an invisible or unassigned character"
            return f"contains {kind} (U+{ord(char):04X} at position {index + 1})"
    return None


def text_problem(value: str, *, max_chars: int) -> str | None:
    """Why `value` cannot be a name, id or path as written, or None: empty, spaces around it,
    a refused character, or longer than `max_chars`."""
    if not value.strip():
        return "must not be empty"
    refused = refused_character(value)
    if refused is not None:
        return refused
    if value != value.strip():
        return f"has spaces around it: write {value.strip()!r}"
    if len(value) > max_chars:
        return f"is {len(value)} characters long; at most {max_chars} are allowed"
    return None


def parse_decimal(text: str) -> Decimal:
    """A plain ASCII decimal string ("0.10", "-1", "25") as a Decimal.

    Raises ValueError with the reason for anything else: other scripts' digits, exponents,
    underscores, NaN/Infinity, more than MAX_FRACTION_DIGITS decimal places or more than
    MAX_DECIMAL_CHARS characters.
    """
    if len(text) > MAX_DECIMAL_CHARS:
        raise ValueError(f"too long for a decimal number (at most {MAX_DECIMAL_CHARS} characters)")
    if not _PLAIN_DECIMAL.fullmatch(text):
        if any(char.isdigit() and not ("0" <= char <= "9") for char in text):
            raise ValueError("use the ASCII digits 0-9")
        if _EXPONENT.fullmatch(text):
            raise ValueError("write the number out in full, without an exponent")
        raise ValueError("not a decimal number")
    _, _, fraction = text.partition(".")
    if len(fraction) > MAX_FRACTION_DIGITS:
        raise ValueError(f"at most {MAX_FRACTION_DIGITS} decimal places")
    return Decimal(text)
