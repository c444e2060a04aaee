"""What every request must pass before a route sees it, and the headers every answer carries.

`Guard` is plain ASGI middleware (not Starlette's `BaseHTTPMiddleware`, which would hide a
client's disconnect from the routes, see `InferencePool.run`). In order, it refuses:

1. a `Host` header the server does not answer to (400). A web page on another site can
   point a DNS name of its own at 127.0.0.1 (DNS rebinding); the browser then sends that
   name as `Host`, which is how the server tells such a request from its own page's.
2. a state-changing request sent by a page of another site (403): the browser says so in
   `Origin` and `Sec-Fetch-Site`. Without this, any web page could make a local server
   burn its CPU with a cross-site form post; a JSON `fetch` would be stopped by the
   browser's CORS preflight, a form is not. Programs such as curl send neither header and
   pass. `cors_origins` lets named sites in.
3. a request with a body (POST) beyond `max_client_requests` handled at once for its
   client's address (429), or beyond `max_requests` in all (503), both with `Retry-After`
   and before the body is read. Pages, health and the model list (GET) carry no body and
   are never counted, so a crowd of uploads cannot lock them out.
4. a body that has not fully arrived `body_timeout` seconds after the request began (408):
   a client that sends a few bytes and then waits would otherwise hold its slot for ever.
5. a JSON body over `max_json_bytes` (413); uploads to `/api/upscale` are bounded by that
   route, which counts them while it reads.

A refused request's connection is closed: its unread body is not drained.

Every answer, refusals included, carries `SECURITY_HEADERS`: no MIME sniffing, no framing
(click-jacking), no referrer, and a Content-Security-Policy that fits the page (its script
and style are files of this server; its images are `data:` and `blob:` URLs).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from kerasr.errors import shorten
from kerasr.serve.settings import ServeSettings
from kerasr.serve.uploads import human_bytes

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What a browser says in Sec-Fetch-Site for the app's own page, and for an address typed in.
SAME_ORIGIN_FETCHES = frozenset({"same-origin", "none"})
RETRY_AFTER_SECONDS = 5

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        # Drawn images arrive as data: URLs; the upload's preview and result are blob: URLs.
        "img-src 'self' data: blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)


def host_name(header: str) -> str:
    """The name in a `Host` header, lower case, without port or trailing dot."""
    value = header.strip().lower()
    if value.startswith("["):  # [::1]:8000
        end = value.find("]")
        value = value[1:end] if end > 0 else ""
    elif value.count(":") == 1:
        value = value.rsplit(":", 1)[0]
    return value.rstrip(".")


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    """Which `Host` headers a server bound to `bound` answers to.

    Loopback names, the bound address itself and `allowed` names always; on a wildcard
    address also any IP address (a DNS-rebinding page always uses a name, never an IP).
    `.example.org` in `allowed` stands for example.org and its subdomains, `*` for any.
    """

    def __init__(self, bound: str, allowed: Iterable[str] = ()):
        self.bound = host_name(bound)
        self.allowed = tuple(host_name(name) if name != "*" else name for name in allowed)
        self.wildcard = self.bound in WILDCARD_ADDRESSES

    def allows(self, header: str) -> bool:
        name = host_name(header)
        if not name:
            return False
        if name in LOOPBACK_NAMES or name == self.bound:
            return True
        if self.wildcard and _is_ip_address(name):
            return True
        for pattern in self.allowed:
            if pattern == "*" or name == pattern:
                return True
            if pattern.startswith(".") and (name.endswith(pattern) or name == pattern[1:]):
                return True
        return False


def cross_site_reason(headers: Headers, cors_origins: frozenset[str]) -> str | None:
    """Why a state-changing request comes from another site's page, or None if it does not."""
    origin = headers.get("origin")
    if origin is not None:
        if "*" in cors_origins or origin in cors_origins:
            return None
        parts = urlsplit(origin)
        own = headers.get("host", "").strip().lower()
        if parts.scheme in ("http", "https") and parts.netloc.lower() == own:
            return None
        return f"a page of {shorten(origin)} may not call this API"
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() not in SAME_ORIGIN_FETCHES:
        return f"a {shorten(site)} page may not call this API"
    return None


class RequestSlots:
    """The requests with a body being handled, in all and per client address.

    Only the event loop's thread touches the counts, so they need no lock.
    """

    def __init__(self, max_requests: int, max_client_requests: int):
        self.max_requests = max_requests
        self.max_client_requests = max_client_requests
        self.total = 0
        self._by_client: dict[str, int] = {}

    def take(self, client: str) -> tuple[int, str] | None:
        """Takes a slot for `client`, or returns the (status, message) that refuses it."""
        held = self._by_client.get(client, 0)
        if held >= self.max_client_requests:
            return 429, (
                f"too many requests from your address at once (at most "
                f"{self.max_client_requests}); wait for an answer before sending more"
            )
        if self.total >= self.max_requests:
            return 503, "the server is busy; try again in a few seconds"
        self._by_client[client] = held + 1
        self.total += 1
        return None

    def release(self, client: str) -> None:
        self.total -= 1
        held = self._by_client.pop(client) - 1
        if held:
            self._by_client[client] = held


class BodyTimeout(HTTPException):
    """The request body had not fully arrived by its deadline (408, connection closed)."""

    def __init__(self, seconds: float):
        super().__init__(
            408,
            f"the request body did not arrive within this server's limit of {seconds:g} s",
            headers={"connection": "close"},
        )


class Guard:
    """ASGI middleware: Host, Origin, load, body-time and body-size checks, security headers.

    Args:
        app: the ASGI app to protect.
        settings: `host`, `allowed_hosts`, `cors_origins`, `max_requests`,
            `max_client_requests`, `body_timeout` and `max_json_bytes` are used.
        slots: the request counts, shared with whoever reports them (`/healthz`); new ones
            from `settings` when None.
        streamed_paths: paths whose routes read and bound their bodies themselves.
    """

    def __init__(
        self,
        app,
        settings: ServeSettings,
        slots: RequestSlots | None = None,
        streamed_paths: Iterable[str] = (),
    ):
        self.app = app
        self.hosts = HostPolicy(settings.host, settings.allowed_hosts)
        self.cors_origins = frozenset(settings.cors_origins)
        if slots is None:
            slots = RequestSlots(settings.max_requests, settings.max_client_requests)
        self.slots = slots
        self.body_timeout = settings.body_timeout
        self.max_json_bytes = settings.max_json_bytes
        self.streamed_paths = frozenset(streamed_paths)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send)
        headers = Headers(scope=scope)
        host = headers.get("host")
        if host is not None and not self.hosts.allows(host):
            name = shorten(host_name(host) or host)
            await _refuse(
                send,
                400,
                f"this server does not answer to the host name {name!r}; its operator can "
                f"allow it with --allowed-host {name}",
            )
            return
        if scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        reason = cross_site_reason(headers, self.cors_origins)
        if reason is not None:
            await _refuse(
                send,
                403,
                f"cross-site request refused: {reason} (the server's operator can "
                "allow a site with --cors-origin)",
            )
            return
        client = (scope.get("client") or ("",))[0]
        refusal = self.slots.take(client)
        if refusal is not None:
            await _refuse(send, *refusal)
            return
        try:
            receive = _with_deadline(receive, self.body_timeout)
            if scope["path"] not in self.streamed_paths:
                try:
                    body = await _read_body(receive, headers, self.max_json_bytes)
                except _Gone:
                    return  # nobody is left to answer
                except BodyTimeout as timeout:
                    await _refuse(send, timeout.status_code, timeout.detail)
                    return
                if body is None:
                    limit = human_bytes(self.max_json_bytes)
                    await _refuse(
                        send, 413, f"the request body is larger than this server's limit of {limit}"
                    )
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, send)
        finally:
            self.slots.release(client)


class _Gone(Exception):
    """The client disconnected while its request body was being read."""


def _with_security_headers(send):
    async def send_with_headers(message):
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", ())}
            extra = [
                (name.encode(), value.encode())
                for name, value in SECURITY_HEADERS
                if name.encode() not in present
            ]
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return send_with_headers


async def _refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    if status in (429, 503):
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive, headers: Headers, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is (or says it will be) over `limit` bytes."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Gone
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return bytes(body)


def _with_deadline(receive, seconds: float):
    """A `receive` that raises `BodyTimeout` if the body is not complete `seconds` from now.

    Once the body is complete it passes messages on as they come: a route waiting for a
    model listens on it for the client's disconnect, for as long as the model takes.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    complete = False

    async def receive_by_deadline():
        nonlocal complete
        if complete:
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
        except TimeoutError:
            raise BodyTimeout(seconds) from None
        complete = message["type"] != "http.request" or not message.get("more_body", False)
        return message

    return receive_by_deadline


def _replay(body: bytes, receive):
    """A `receive` that gives `body` once, then passes on what the client says next."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay():
        if pending:
            return pending.pop()
        return await receive()

    return replay
