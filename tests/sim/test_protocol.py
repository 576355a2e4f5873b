"""Requests a client should not send still get Kraken's envelope, never a traceback or a 500."""

from __future__ import annotations

import socket

import pytest
import requests

from kraken_sim import errors
from tests.sim.conftest import SimAccounts, client
from tests.sim.kraken_http import TIMEOUT_S, public
from tests.simproc import SimProcess


def _envelope(response: requests.Response) -> list[str]:
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert "result" not in body
    errors_: list[str] = body["error"]
    return errors_


def test_public_endpoints_answer_get_only(sim: SimProcess) -> None:
    """A POST to a public endpoint gets HTTP 405 with EGeneral:Unknown method, as Kraken does
    since 2024-01-31; GET works."""
    reply = requests.post(f"{sim.url}/0/public/Time", timeout=TIMEOUT_S)
    assert reply.status_code == 405
    assert _envelope(reply) == [errors.UNKNOWN_METHOD]
    assert public(sim.url, "Time")["error"] == []


def test_private_endpoints_answer_post_only(sim: SimProcess) -> None:
    """A GET to a private endpoint gets HTTP 405 with EGeneral:Unknown method."""
    reply = requests.get(f"{sim.url}/0/private/Balance", timeout=TIMEOUT_S)
    assert reply.status_code == 405
    assert _envelope(reply) == [errors.UNKNOWN_METHOD]


def test_unknown_methods_and_paths(sim: SimProcess, keys: SimAccounts) -> None:
    """Unknown methods get EGeneral:Unknown method (HTTP 200); unknown paths the same with 404."""
    assert public(sim.url, "Nope")["error"] == [errors.UNKNOWN_METHOD]
    assert client(sim, keys.misc).call("Withdraw", asset="XBT")["error"] == [errors.UNKNOWN_METHOD]
    for path in ("/", "/0/", "/0/private/", "/1/public/Time", "/0/public/Time/extra"):
        reply = requests.get(sim.url + path, timeout=TIMEOUT_S)
        assert reply.status_code == 404, path
        assert _envelope(reply) == [errors.UNKNOWN_METHOD]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{not json"),
        ("application/json", b"[1, 2, 3]"),
        ("application/json", b""),
        ("application/x-www-form-urlencoded", b"nonce=\xff\xfe"),
    ],
)
def test_unreadable_bodies_are_bad_requests(
    sim: SimProcess, keys: SimAccounts, content_type: str, body: bytes
) -> None:
    """A body that is neither a form nor a JSON object gets EAPI:Bad request."""
    misc = client(sim, keys.misc)
    reply = misc.post_raw("Balance", body, nonce_text="1", content_type=content_type)
    assert reply.status_code == 200
    assert _envelope(reply) == [errors.BAD_REQUEST]


def test_oversized_body_is_refused_with_an_envelope(sim: SimProcess, keys: SimAccounts) -> None:
    """A body beyond the server's limit gets HTTP 413 with EAPI:Bad request."""
    misc = client(sim, keys.misc)
    reply = misc.post_raw("Balance", b"nonce=1&pad=" + b"x" * 2_000_000, nonce_text="1")
    assert reply.status_code == 413
    assert _envelope(reply) == [errors.BAD_REQUEST]


def test_garbage_on_the_socket_does_not_stop_the_server(sim: SimProcess) -> None:
    """Bytes that are not HTTP get an HTTP error from the server, which keeps serving."""
    host, port = sim.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as raw:
        raw.sendall(b"\x00\x01garbage\r\n\r\n")
        answer = raw.recv(1024)
    assert answer.startswith(b"HTTP/1.")
    assert public(sim.url, "Time")["error"] == []
