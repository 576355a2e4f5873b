"""Reading request bodies the way Kraken does: form-encoded or JSON, chosen by Content-Type."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any


def parse_body(content_type: str, body: bytes) -> dict[str, Any] | None:
    """The body's parameters, or None if it is not a form or a JSON object.

    A Content-Type containing "json" means JSON (values keep their JSON types); anything else is
    read as a form (values are strings; a repeated name keeps its last value). An empty body is
    an empty form.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "json" in content_type.lower():
        try:
            parsed = json.loads(text) if text.strip() else None
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    try:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
    except ValueError:
        return None
    return dict(pairs)
