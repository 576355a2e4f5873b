"""Logging for the whole project: structlog, configured once at the entry point.

Convention everywhere:

    log = get_logger(__name__)
    log.info("copy.placed", message="copied buy 0.01 XBTUSD to Daivon", account="USER:daivon")

The first argument is a stable event name (what dashboards and Railway filters key on); `message`
is the sentence for a human and is derived from the event name when the caller gives none.

Off a terminal every line is one JSON object on stdout with `level`, `event`, `message`,
`timestamp` and the fields; on a terminal it is structlog's console renderer. Railway reads
stdout as `info` and stderr as `error`, so everything goes to stdout and the level is in the JSON.

`redact` runs last, just before rendering, on every line (also stdlib `logging` records from
libraries). It is the last line of defence, not the first: code must not log secrets at all.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO, cast

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

REDACTED = "<REDACTED>"

LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
FORMATS = ("json", "console")

# Field names whose values are never printed, whatever they look like: API secrets and keys,
# request signatures, passwords, one-time passwords and tokens.
_SENSITIVE_FIELD = re.compile(
    r"(^|_)(secret|secrets|api_sign|sign|signature|key|password|passwd|otp|token)($|_)",
    re.IGNORECASE,
)
# Field names that end like a sensitive one but name something harmless: the variable that holds
# a key (`key_var`), or how many keys there are.
_HARMLESS_FIELD = re.compile(r"(_var|_vars|_name|_names|_count|_set|_file|_hint)$", re.IGNORECASE)
# A run of the base64 alphabet long enough to be a Kraken API key (56 chars) or secret (88).
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
_BASE64_RUN_MIN = 40  # the {40,} above: shorter text cannot hold a base64 run
_MIN_REGISTERED_LEN = 6
# The characters of standard and url-safe base64 (padding included). A registered secret made
# only of these can only occur inside a maximal run of them, so `redact_text` finds such runs
# with one regex and checks only them, instead of searching the whole text for every secret.
# Every _BASE64_RUN match also lies inside one such run.
_RUN_CHARS = "A-Za-z0-9+/=_-"
_RUN = re.compile(f"[{_RUN_CHARS}]+")


class _Secrets:
    """The registered secrets, arranged for `redact_text`; immutable, replaced on register.

    Readers take the module's current instance without a lock (one reference read), so a log
    line never waits for a registration and never sees a half-built one.
    """

    def __init__(self, values: frozenset[str]) -> None:
        longest_first = sorted(values, key=len, reverse=True)
        # Secrets with a character outside the run alphabet: searched for in the whole text.
        self.other = tuple(v for v in longest_first if _RUN.fullmatch(v) is None)
        # Secrets of the run alphabet, longest first (a longer one is replaced before a shorter
        # one it contains), and as a set for the common case of a run that is exactly a secret.
        self.run = tuple(v for v in longest_first if _RUN.fullmatch(v) is not None)
        self.run_set = frozenset(self.run)
        self.run_min = len(self.run[-1]) if self.run else sys.maxsize
        # Text shorter than this holds neither a registered secret nor a base64 run.
        self.text_min = min([_BASE64_RUN_MIN, *(len(v) for v in values)])
        # Maximal runs (the lookbehind starts a match only at a run's first character, so a
        # short run is scanned once) long enough for a registered secret or a base64 run.
        self.runs = re.compile(
            f"(?<![{_RUN_CHARS}])[{_RUN_CHARS}]{{{min(self.run_min, _BASE64_RUN_MIN)},}}"
        )

    def redact_run(self, match: re.Match[str]) -> str:
        run = match.group(0)
        if run in self.run_set:
            return REDACTED
        if len(run) > self.run_min:
            for secret in self.run:
                if len(secret) <= len(run) and secret in run:
                    run = run.replace(secret, REDACTED)
        if len(run) >= _BASE64_RUN_MIN:
            run = _BASE64_RUN.sub(_redact_base64_run, run)
        return run


_secrets_lock = threading.Lock()
_registered_secrets: set[str] = set()
_secrets = _Secrets(frozenset())


def register_secret(value: str) -> None:
    """Make `redact` replace this exact string wherever it appears in a log line.

    Config registers every API key and secret it loads. Very short strings are ignored: they
    would blank out ordinary words and they are not secrets anyway.
    """
    global _secrets
    if len(value) >= _MIN_REGISTERED_LEN:
        with _secrets_lock:
            if value not in _registered_secrets:
                _registered_secrets.add(value)
                _secrets = _Secrets(frozenset(_registered_secrets))


def forget_registered_secrets() -> None:
    """Drop every registered secret (tests only)."""
    global _secrets
    with _secrets_lock:
        _registered_secrets.clear()
        _secrets = _Secrets(frozenset())


def _looks_like_base64_secret(run: str) -> bool:
    # Random base64 of this length has upper, lower and digits, and few slashes; file paths
    # (also made of letters and '/') have many slashes and are left alone.
    body = run.rstrip("=")
    return (
        any(c.isupper() for c in body)
        and any(c.islower() for c in body)
        and any(c.isdigit() for c in body)
        and body.count("/") * 10 <= len(body)
    )


def _redact_base64_run(match: re.Match[str]) -> str:
    run = match.group(0)
    return REDACTED if _looks_like_base64_secret(run) else run


def redact_text(text: str) -> str:
    """`text` with registered secrets and secret-looking base64 runs replaced by <REDACTED>."""
    known = _secrets
    if len(text) < known.text_min:
        return text
    # Secrets outside the run alphabet first: one of them may contain a run-alphabet secret,
    # never the other way round, and it must be replaced whole.
    for secret in known.other:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return known.runs.sub(known.redact_run, text)


@functools.lru_cache(maxsize=4096)
def _is_sensitive_field(name: str) -> bool:
    # Cached: field names repeat on every line, and the answer depends on the name alone.
    return bool(_SENSITIVE_FIELD.search(name)) and not _HARMLESS_FIELD.search(name)


def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    if depth > 6:
        # Deeper than any real field (or a cycle): its text, redacted, is what gets printed.
        return redact_text(str(value))
    if isinstance(value, Mapping):
        return {
            k: (
                REDACTED
                if isinstance(k, str) and _is_sensitive_field(k) and v not in (None, "")
                else _redact_value(v, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v, depth + 1) for v in value)
    # Anything else is rendered with repr/str by the renderer: redact that text instead.
    return redact_text(str(value))


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Processor: blank sensitive fields and anything that looks like a key or secret."""
    for name in list(event_dict):
        value = event_dict[name]
        if name not in ("event", "message") and _is_sensitive_field(name):
            if value not in (None, ""):
                event_dict[name] = REDACTED
        else:
            event_dict[name] = _redact_value(value)
    return event_dict


def add_message(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Processor: give every line a human `message` (from the event name when none was given)."""
    message = event_dict.get("message")
    event = event_dict.get("event")
    if message in (None, ""):
        event_dict["message"] = _sentence(str(event)) if event is not None else ""
    elif not isinstance(message, str):
        event_dict["message"] = str(message)
    if event is None:
        event_dict["event"] = "log"
    return event_dict


def _sentence(event: str) -> str:
    if " " in event:
        return event
    return event.replace(".", ": ", 1).replace(".", " ").replace("_", " ")


def _drop_color_message(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    # uvicorn/aiohttp-style records carry a duplicate colored message; it is noise in JSON.
    event_dict.pop("color_message", None)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        add_message,
    ]


def resolve_format(fmt: str | None, stream: TextIO) -> str:
    """`json` or `console`: the explicit choice, else console on a terminal and json elsewhere."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        return fmt
    try:
        return "console" if stream.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


def configure_logging(
    level: str = "info",
    fmt: str | None = None,
    *,
    stream: TextIO | None = None,
    static_fields: Mapping[str, str] | None = None,
) -> None:
    """Set up structlog (and route stdlib `logging` into it). Call once, at the entry point.

    `level` is a name from LEVELS; `fmt` is `json`, `console` or None for "console on a terminal,
    json otherwise"; `stream` defaults to stdout; `static_fields` go on every line (for example
    the Railway deployment id).
    """
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    numeric_level = LEVELS[level.lower()]
    out = stream if stream is not None else sys.stdout
    chosen = resolve_format(fmt, out)

    renderer: Processor
    tail: list[Processor]
    # Tracebacks become plain text before `redact` sees the event, in both formats: a renderer
    # that formats them itself (the console one, with `rich` installed) would print each frame's
    # local variables — a signed request's headers among them — after redaction.
    tail = [structlog.processors.format_exc_info]
    if chosen == "json":
        renderer = structlog.processors.JSONRenderer(default=str)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=_colors_ok(out), exception_formatter=structlog.dev.plain_traceback
        )

    statics: list[Processor] = []
    if static_fields:
        fields = dict(static_fields)

        def add_static(_l: WrappedLogger, _m: str, event_dict: EventDict) -> EventDict:
            for name, value in fields.items():
                event_dict.setdefault(name, value)
            return event_dict

        statics.append(add_static)

    structlog.configure(
        processors=[
            _add_logger_name,
            *_shared_processors(),
            *statics,
            structlog.processors.StackInfoRenderer(),
            *tail,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=_NamedPrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(numeric_level, out, [*statics, *tail], renderer)


def _colors_ok(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _route_stdlib_logging(
    level: int, out: TextIO, extra: list[Processor], renderer: Processor
) -> None:
    """Library records (urllib3, aiohttp, ...) come out in the same format, redacted too."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            _drop_color_message,
            *_shared_processors(),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *extra,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_copytrader", False):
            root.removeHandler(old)
    handler._copytrader = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # Libraries are chatty at info (every HTTP connection); keep them at warning and above
    # unless the operator asked for debug.
    root.setLevel(level if level <= logging.DEBUG else max(level, logging.WARNING))


def get_logger(name: str | None = None, **initial: Any) -> FilteringBoundLogger:
    """A structlog logger; `name` becomes the `logger` field. Safe to call at import time."""
    args = (name,) if name else ()
    return cast(FilteringBoundLogger, structlog.get_logger(*args, **initial))


class _NamedPrintLogger(structlog.PrintLogger):
    """A PrintLogger that remembers the name given to `get_logger`, for the `logger` field."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedPrintLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedPrintLogger:
        return _NamedPrintLogger(self._file, str(args[0]) if args else "")


def _add_logger_name(logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    name = getattr(logger, "name", "")
    if name:
        event_dict.setdefault("logger", name)
    return event_dict
