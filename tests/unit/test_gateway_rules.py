"""The gateway's local rules: circuit breaker, rate limiter, reply validation policy, and how
the outbound hop classifies a provider's failures."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bus.forward import Forwarder, ForwardError, ForwardFailure
from bus.gateway import Breaker, ProviderUnavailableError, RateLimitedError, RateLimiter, _sampled
from domain.route_policy import check_timeout, parse_validation
from gembus.errors import InvalidValueError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_suspends_after_consecutive_failures_with_doubling_pauses() -> None:
    clock = Clock()
    breaker = Breaker(threshold=3, base_s=1.0, max_s=4.0, clock=clock)
    for _ in range(2):
        breaker.failure("http://p")
    breaker.check("http://p")  # two failures: still called
    breaker.failure("http://p")
    with pytest.raises(ProviderUnavailableError, match=r"suspended for 1\.0 s after 3"):
        breaker.check("http://p")
    clock.now += 1.01
    breaker.check("http://p")  # the pause is over: one trial call
    breaker.failure("http://p")  # it failed again: twice the pause
    with pytest.raises(ProviderUnavailableError, match=r"2\.0 s"):
        breaker.check("http://p")
    for _ in range(5):
        breaker.failure("http://p")
    with pytest.raises(ProviderUnavailableError, match=r"4\.0 s"):  # capped
        breaker.check("http://p")
    breaker.success("http://p")
    breaker.check("http://p")
    breaker.check("http://other")  # endpoints are independent


def test_the_rate_limiter_allows_a_burst_of_one_second_then_refills() -> None:
    limiter = RateLimiter(5.0)
    for _ in range(5):
        limiter.take("tnm", now=10.0)
    with pytest.raises(RateLimitedError, match="5 calls per second"):
        limiter.take("tnm", now=10.0)
    limiter.take("ice", now=10.0)  # per partner
    limiter.take("tnm", now=10.25)  # 0.25 s refilled one call (and a quarter)
    with pytest.raises(RateLimitedError):
        limiter.take("tnm", now=10.25)
    RateLimiter(0).take("tnm")  # 0 = no limit


def test_a_routes_validation_policy_overrides_the_deployment_default() -> None:
    assert _sampled("always", "off") and not _sampled("off", "always")
    assert _sampled(None, "always") and not _sampled(None, "off")
    hits = sum(_sampled("sample:0.25", "off") for _ in range(4000))
    assert 800 < hits < 1200


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("always", "always"),
        (" OFF ", "off"),
        ("sample:0.1", "sample:0.1"),
        ("sample:1", "sample:1"),
    ],
)
def test_validation_modes_are_normalised(given: str, normalised: str) -> None:
    assert parse_validation(given) == normalised


@pytest.mark.parametrize("bad", ["", "sometimes", "sample:", "sample:0", "sample:-1", "sample:2"])
def test_impossible_validation_modes_are_refused(bad: str) -> None:
    with pytest.raises(InvalidValueError):
        parse_validation(bad)


def test_timeouts_are_bounded() -> None:
    assert check_timeout(1) == 1 and check_timeout(120_000) == 120_000
    for bad in (0, -5, 120_001):
        with pytest.raises(InvalidValueError):
            check_timeout(bad)


class _Provider(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/slow":
            time.sleep(1.0)
        reply = body * 100 if self.path == "/big" else body.upper()
        self.send_response(200 if self.path != "/busy" else 503)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_forwarder_passes_bytes_and_headers_through(provider: str) -> None:
    reply = Forwarder(1024).post(f"{provider}/ok", b"<x/>", "text/xml", '"urn:a/B"', 2.0)
    assert (reply.status, reply.content_type, reply.body) == (
        200,
        "text/xml; charset=utf-8",
        b"<X/>",
    )
    assert Forwarder(1024).post(f"{provider}/busy", b"<x/>", "text/xml", None, 2.0).status == 503


def test_the_forwarder_tells_timeout_unreachable_and_too_large_apart(provider: str) -> None:
    forwarder = Forwarder(1024)
    with pytest.raises(ForwardError) as raised:
        forwarder.post(f"{provider}/slow", b"<x/>", "text/xml", None, 0.2)
    assert raised.value.kind is ForwardFailure.TIMEOUT
    with pytest.raises(ForwardError) as raised:
        forwarder.post(f"http://127.0.0.1:{_closed_port()}/", b"<x/>", "text/xml", None, 1.0)
    assert raised.value.kind is ForwardFailure.UNREACHABLE
    with pytest.raises(ForwardError) as raised:
        forwarder.post(f"{provider}/big", b"<0123456789/>", "text/xml", None, 2.0)
    assert raised.value.kind is ForwardFailure.TOO_LARGE
    assert forwarder.post(f"{provider}/ok", b"<y/>", "text/xml", None, 2.0).body == b"<Y/>"
