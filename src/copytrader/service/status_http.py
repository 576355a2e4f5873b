"""The daemon's read-only HTTP surface and the thread that watches whether it copies.

    with status_surface(board, settings.status):   # in the daemon, around its whole run
        ...

- A monitor thread, always on (with or without a port): every few seconds it decides (the
  rule in `status_verdict`), rewrites `<data_dir>/health.json` for the health command, and logs
  `daemon.not_copying` after N minutes of not copying.
- With a port (`PORT` on Railway, or `COPYTRADER_STATUS_PORT`), a stdlib `ThreadingHTTPServer`
  in a thread of its own, read-only (GET and HEAD only):
  - `/healthz`: 200 and "copying: ..." while copying (or "kill_switch: ..." while the
    operator's kill switch pauses it), else 503 and the state and reason, as text. Open to
    anyone: it tells nothing secret, and Railway's and Docker's checks call it without
    credentials.
  - `/status` (the page) and `/metrics` (Prometheus): only with `COPYTRADER_STATUS_TOKEN` set
    (else 404), and only for a request that presents it: `Authorization: Bearer <token>`
    (scripts, Prometheus' `authorization` setting) or HTTP Basic with the token as the password
    and any user name (a browser asks for it in its own login box and remembers it for the
    tab; the token never goes into the URL, so it stays out of browser history, proxy logs and
    Referer headers). Compared in constant time; never logged.
  The stdlib server is enough: a handful of requests a minute from one operator and one
  scraper, no dependency, and it stops with the daemon (`shutdown()`, bounded).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from copytrader.config.credentials import SecretStr
from copytrader.config.types import StatusSettings
from copytrader.ledger import LEDGER_FILE_NAME
from copytrader.ledger.view import LedgerView
from copytrader.logs import get_logger, redact_text
from copytrader.service.status_metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from copytrader.service.status_metrics import StatusMetrics
from copytrader.service.status_page import LedgerRows, render_status_page
from copytrader.service.status_state import StatusBoard
from copytrader.service.status_verdict import (
    HEALTH_FILE_INTERVAL_S,
    NotCopyingAlarm,
    write_health_file,
)

log = get_logger(__name__)

RECENT_MASTER_ORDERS = 10
RECENT_COPY_ORDERS = 10  # the copies of this many master orders
REQUEST_TIMEOUT_S = 10.0  # a client that sends nothing for this long is dropped
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
}
REALM = 'Basic realm="kraken-copytrader status", charset="UTF-8"'


def token_matches(header: str | None, token: SecretStr) -> bool:
    """True when an Authorization header carries the token (Bearer, or Basic with the token as
    the password). Constant-time in the token's content."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        value = decoded.partition(":")[2]
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.encode("utf-8"), token.get_secret_value().encode("utf-8"))


def read_ledger_rows(board: StatusBoard) -> LedgerRows:
    path = board.data_dir / LEDGER_FILE_NAME
    if not path.exists():
        return LedgerRows(problem="no ledger yet: the daemon has not started copying")
    try:
        view = LedgerView(path)
    except Exception as error:  # noqa: BLE001 - the page says why, and still shows the rest
        return LedgerRows(problem=f"the ledger cannot be read now: {error}")
    try:
        return LedgerRows(
            master_orders=view.recent_master_orders(RECENT_MASTER_ORDERS),
            copies=view.recent_copies(RECENT_COPY_ORDERS),
        )
    except Exception as error:  # noqa: BLE001 - e.g. a ledger with no tables yet
        return LedgerRows(problem=f"the ledger cannot be read now: {error}")
    finally:
        view.close()


class StatusServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, settings: StatusSettings, board: StatusBoard) -> None:
        assert settings.port is not None
        self.board = board
        self.token = settings.token
        self.metrics = StatusMetrics(board)
        super().__init__((settings.host, settings.port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: StatusServer
    timeout = REQUEST_TIMEOUT_S
    server_version = "kraken-copytrader"

    def version_string(self) -> str:
        return self.server_version  # no Python version on the wire

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _not_allowed(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only: GET and HEAD only\n",
                   extra={"Allow": "GET, HEAD"})  # fmt: skip

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

    def _answer(self, *, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                self._healthz(with_body)
            elif path in ("/status", "/", "/metrics"):
                self._protected(path, with_body)
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", with_body=with_body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:
            log.exception("status.request_failed", message=f"answering {path} failed", path=path)
            with contextlib.suppress(OSError):
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n")

    def _healthz(self, with_body: bool) -> None:
        verdict = self.server.board.snapshot().verdict
        status = HTTPStatus.OK if verdict.healthy else HTTPStatus.SERVICE_UNAVAILABLE
        text = f"{verdict.state.value}: {redact_text(verdict.reason)}\n"
        self._send(status, text.encode("utf-8"), with_body=with_body)

    def _protected(self, path: str, with_body: bool) -> None:
        token = self.server.token
        if token is None:
            self._send(
                HTTPStatus.NOT_FOUND,
                b"not found: set COPYTRADER_STATUS_TOKEN to turn on /status and /metrics\n",
                with_body=with_body,
            )
            return
        if not token_matches(self.headers.get("Authorization"), token):
            self._send(
                HTTPStatus.UNAUTHORIZED,
                b"the status token is needed (Authorization: Bearer <token>, or the browser's"
                b" login box with the token as the password)\n",
                extra={"WWW-Authenticate": REALM},
                with_body=with_body,
            )
            return
        if path == "/":
            self._send(HTTPStatus.FOUND, b"", extra={"Location": "/status"}, with_body=with_body)
        elif path == "/metrics":
            body = self.server.metrics.render()
            self._send(HTTPStatus.OK, body, content_type=METRICS_CONTENT_TYPE,
                       with_body=with_body)  # fmt: skip
        else:
            board = self.server.board
            page = render_status_page(board.snapshot(), read_ledger_rows(board))
            self._send(HTTPStatus.OK, page.encode("utf-8"),
                       content_type="text/html; charset=utf-8", with_body=with_body)  # fmt: skip

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        *,
        content_type: str = "text/plain; charset=utf-8",
        extra: dict[str, str] | None = None,
        with_body: bool = True,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path only: never a header (the token), never the query string.
        log.debug(
            "status.request",
            message=f"{self.command} {self.path.split('?', 1)[0]} -> {code}",
            path=self.path.split("?", 1)[0],
            status=int(code) if str(code).isdigit() else str(code),
        )

    def log_message(self, format: str, *args: Any) -> None:
        # Malformed requests and timeouts: the text names the problem, not the request's headers.
        log.debug("status.http_message", message=format % args if args else format)


class StatusMonitor:
    """Decides every `interval_s`: rewrites health.json and sounds the not-copying alarm."""

    def __init__(self, board: StatusBoard, alarm: NotCopyingAlarm, *, interval_s: float) -> None:
        self.board = board
        self.alarm = alarm
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="status-monitor", daemon=True)
        self._failed_write = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.board.nudge()
        self._thread.join(timeout=5.0)
        self.check()  # the last word in health.json: stopping

    def check(self) -> None:
        snapshot = self.board.snapshot()
        self.alarm.observe(snapshot.verdict)
        try:
            write_health_file(self.board.data_dir, snapshot.facts)
            self._failed_write = False
        except OSError as error:
            if not self._failed_write:
                log.warning(
                    "daemon.health_file_failed",
                    message=f"could not write the health file in {self.board.data_dir}:"
                    f" {error.strerror}; the health command will call the daemon unhealthy",
                )
            self._failed_write = True

    def _loop(self) -> None:
        while True:
            try:
                self.check()
            except Exception:
                log.exception("daemon.status_check_failed", message="the status check failed")
            self.board.wait_for_change(self.interval_s)
            if self._stop.is_set():
                return


@contextlib.contextmanager
def status_surface(
    board: StatusBoard,
    settings: StatusSettings,
    *,
    check_interval_s: float = HEALTH_FILE_INTERVAL_S,
) -> Iterator[StatusServer | None]:
    """Run the monitor, and the HTTP server when a port is configured, for the block."""
    monitor = StatusMonitor(
        board, NotCopyingAlarm(settings.not_copying_minutes * 60), interval_s=check_interval_s
    )
    monitor.start()
    server: StatusServer | None = None
    thread: threading.Thread | None = None
    try:
        if settings.port is not None:
            try:
                server = StatusServer(settings, board)
            except OSError as error:
                # Copying matters more than the page: go on without it, loudly.
                log.error(
                    "status.listen_failed",
                    message=f"the status server cannot listen on {settings.host}:{settings.port}"
                    f" ({error.strerror or error}); running without /healthz, /status, /metrics",
                    host=settings.host,
                    port=settings.port,
                )
        if server is not None:
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.2},
                name="status-http", daemon=True,
            )  # fmt: skip
            thread.start()
            log.info(
                "status.listening",
                message=f"status server on {server.url}: /healthz"
                + (
                    ", /status and /metrics (with the token)"
                    if settings.token is not None
                    else " only (set COPYTRADER_STATUS_TOKEN for /status and /metrics)"
                ),
                host=settings.host,
                port=server.server_address[1],
                pages_enabled=settings.token is not None,
            )
        yield server
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
            if thread is not None:
                thread.join(timeout=5.0)
        monitor.stop()
