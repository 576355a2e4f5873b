"""Reading request parameters the way Kraken reads them.

Values arrive as strings (form bodies, query strings) or JSON scalars (JSON bodies). Every parse
failure is Kraken's `EGeneral:Invalid arguments:<field>`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from kraken_sim.errors import SimError, invalid_arguments

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}
_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^\d+(\.\d*)?$|^\.\d+$")


def text(params: Mapping[str, Any], name: str) -> str | None:
    """The parameter as text, or None when absent; JSON numbers are written back as text."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | str):
        return str(value).strip()
    raise SimError(invalid_arguments(name))


def required_text(params: Mapping[str, Any], name: str) -> str:
    value = text(params, name)
    if value is None or value == "":
        raise SimError(invalid_arguments(name))
    return value


def boolean(params: Mapping[str, Any], name: str, default: bool = False) -> bool:
    """Kraken's clients send True/False, true/false, 1/0; all are accepted, case-insensitively."""
    value = text(params, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SimError(invalid_arguments(name))


def integer(params: Mapping[str, Any], name: str) -> int | None:
    value = text(params, name)
    if value is None or value == "":
        return None
    if not _INTEGER.match(value):
        raise SimError(invalid_arguments(name))
    return int(value)


def int32(params: Mapping[str, Any], name: str) -> int | None:
    value = integer(params, name)
    if value is not None and not INT32_MIN <= value <= INT32_MAX:
        raise SimError(invalid_arguments(name))
    return value


def positive_decimal(params: Mapping[str, Any], name: str) -> Decimal | None:
    """A plain non-negative decimal ("0.25", "60000", JSON 1.25); None when absent.

    Signs, exponents, NaN and infinities are refused: Kraken reads a leading +/- as a relative
    price, which the simulator does not offer.
    """
    raw = params.get(name)
    if isinstance(raw, float):
        number = Decimal(repr(raw))
        if not number.is_finite() or number < 0:
            raise SimError(invalid_arguments(name))
        return number
    value = text(params, name)
    if value is None or value == "":
        return None
    if not _DECIMAL.match(value):
        raise SimError(invalid_arguments(name))
    try:
        return Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes these
        raise SimError(invalid_arguments(name)) from exc


def time_spec(params: Mapping[str, Any], name: str, now: float) -> float:
    """`starttm`/`expiretm`: 0 (none), a unix time, or `+n` seconds from now."""
    value = text(params, name)
    if value is None or value in ("", "0"):
        return 0.0
    relative = value.startswith("+")
    number = value[1:] if relative else value
    try:
        seconds = float(number)
    except ValueError as exc:
        raise SimError(invalid_arguments(name)) from exc
    if seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        raise SimError(invalid_arguments(name))
    return now + seconds if relative else seconds


def comma_list(params: Mapping[str, Any], name: str) -> list[str]:
    value = text(params, name)
    if value is None:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def timestamp_or_id(params: Mapping[str, Any], name: str) -> float | str | None:
    """`start`/`end` of the history calls: a unix time, or the id of an order or trade."""
    value = text(params, name)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        return value
