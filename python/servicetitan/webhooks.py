"""Receiving ServiceTitan webhooks (V2): verify the signature, handle each event once, acknowledge at once.

ServiceTitan signs a delivery with HMAC-SHA256 over the raw body, keyed with the app's HMAC key
(32 to 64 characters), and retries one that is not answered with a 2xx after 10, 30, 60 and 300
seconds; failed events can be replayed from the developer portal with the same id. So an endpoint
must check the raw bytes, answer quickly, and handle the same ``source`` + ``id`` once. Verifying
and deduplicating happen in the Rust engine, the same in Python, Node and Rust.

Three ways in, from the smallest::

    from servicetitan import webhooks

    event = webhooks.verify(body, headers, key)          # a dict, or WebhookVerificationError

    receiver = webhooks.Receiver(key)                     # + deduplication, for any framework
    receipt = receiver.receive(body, headers)             # answer receipt.status, then handle
    if receipt.event is not None:                         # receipt.event (None for a repeat)
        ...

    app = webhooks.asgi_app(on_event, key=key)            # an ASGI app (FastAPI, Starlette...)
    app = webhooks.wsgi_app(on_event, key=key)            # a WSGI app (Flask, Django...)

The apps answer 200 as soon as a delivery is verified and new (or a repeat), and only then call
``on_event(event)``; if it raises, the event is forgotten, so that a replay is handled again.
Events are remembered for 24 hours in the process, or in Redis with ``redis_url`` (or
``ST_REDIS_URL``), so that every worker behind a load balancer dedupes together.

Provisional: ServiceTitan publishes neither the signature header's name nor its encoding. The
defaults (``X-ServiceTitan-Signature``, hex or base64) are what public integrations use; both are
settings (``signature_header``, ``encoding``), as is ``envelope`` (``"cloudevents"`` or ``"any"``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from http import HTTPStatus
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    MutableMapping,
    NamedTuple,
    Optional,
    Tuple,
    Union,
)

from . import _native

__all__ = ["Headers", "Receipt", "Receiver", "WebhookEvent", "asgi_app", "sign", "verify", "wsgi_app"]

logger = logging.getLogger("servicetitan.webhooks")

#: An event: ``specversion``, ``id``, ``source``, ``type``, ``time``, ``data``, and any other
#: attribute of the CloudEvents envelope (``datacontenttype``, extensions...).
WebhookEvent = Dict[str, Any]

#: Request headers: a mapping (``dict``, Starlette, Flask or Django headers) or ``(name, value)``
#: pairs (ASGI's list), names and values ``str`` or ``bytes``.
Headers = Union[Mapping[str, str], Mapping[bytes, bytes], Iterable[Tuple[Union[str, bytes], Union[str, bytes]]]]

Body = Union[bytes, bytearray, memoryview, str]


def verify(
    body: Body,
    headers: Headers,
    key: str,
    *,
    signature_header: Optional[str] = None,
    encoding: Optional[str] = None,
    envelope: Optional[str] = None,
) -> WebhookEvent:
    """Checks a delivery's HMAC-SHA256 signature over the raw ``body`` and returns its event.

    Raises :class:`servicetitan.WebhookVerificationError` (no signature header, one that does not
    match, a signed body that is not an event) with a message that never contains the key or the
    expected signature; a key of the wrong length is a :class:`servicetitan.ConfigurationError`.

    Example::

        event = webhooks.verify(await request.body(), request.headers, key)
        print(event["type"], event["data"])
    """
    result: WebhookEvent = _native.verify_webhook(
        body, headers, key, signature_header=signature_header, encoding=encoding, envelope=envelope
    )
    return result


def sign(body: Body, key: str, *, encoding: str = "hex") -> str:
    """The signature of ``body`` under ``key`` (``"hex"`` or ``"base64"``), as ServiceTitan sends
    it: to test your own endpoint with signed deliveries."""
    return _native.sign_webhook(body, key, encoding=encoding)


class Receipt(NamedTuple):
    """What to answer a delivery, and what to handle."""

    #: 200 for a verified event (new or a repeat), 401 for a missing or wrong signature, 400 for a
    #: signed body that is not an event, 413 for a body over ``max_body_bytes``, 503 when Redis
    #: failed (the sender retries later).
    status: int
    #: The JSON body to answer with.
    body: bytes
    #: The event to handle: set only the first time it arrives.
    event: Optional[WebhookEvent]
    #: The event was handled before (a retry or a replay).
    duplicate: bool


class Receiver:
    """Verifies deliveries and lets each event (``source`` + ``id``) through once.

    Every setting is an argument, else an environment variable, else a default: ``key``
    (``ST_WEBHOOK_KEY``), ``signature_header`` (``ST_WEBHOOK_SIGNATURE_HEADER``, default
    ``X-ServiceTitan-Signature``), ``encoding`` (``ST_WEBHOOK_SIGNATURE_ENCODING``: ``"any"``,
    ``"hex"``, ``"base64"``), ``envelope`` (``ST_WEBHOOK_ENVELOPE``), ``dedupe_ttl`` in seconds
    (``ST_WEBHOOK_DEDUPE_TTL_SECS``, default one day), ``max_body_bytes``
    (``ST_WEBHOOK_MAX_BODY_BYTES``, default 1 MiB), ``redis_url`` and ``redis_key_prefix``
    (``ST_REDIS_URL``, ``ST_REDIS_KEY_PREFIX``: remember events in Redis, shared by every worker).

    Example, in a framework of your own::

        receiver = webhooks.Receiver(key)

        def endpoint(request):
            receipt = receiver.receive(request.body, request.headers)
            respond(receipt.status, receipt.body)
            if receipt.event is not None:
                handle(receipt.event)      # on failure: receiver.release(receipt.event)
    """

    def __init__(
        self,
        key: Optional[str] = None,
        *,
        signature_header: Optional[str] = None,
        encoding: Optional[str] = None,
        envelope: Optional[str] = None,
        dedupe_ttl: Optional[float] = None,
        max_body_bytes: Optional[int] = None,
        redis_url: Optional[str] = None,
        redis_key_prefix: Optional[str] = None,
    ) -> None:
        self._native = _native.WebhookReceiver(
            key,
            signature_header=signature_header,
            encoding=encoding,
            envelope=envelope,
            dedupe_ttl=dedupe_ttl,
            max_body_bytes=max_body_bytes,
            redis_url=redis_url,
            redis_key_prefix=redis_key_prefix,
        )

    @property
    def max_body_bytes(self) -> int:
        """The largest body accepted, in bytes."""
        return self._native.max_body_bytes

    def receive(self, body: Body, headers: Headers) -> Receipt:
        """Verifies and deduplicates one delivery. Never raises for a bad delivery: the receipt
        says what to answer."""
        return Receipt(*self._native.receive(body, headers))

    async def receive_async(self, body: Body, headers: Headers) -> Receipt:
        """:meth:`receive`, awaited (Redis is asked without blocking the event loop)."""
        return Receipt(*(await self._native.receive_async(body, headers)))

    def release(self, event: WebhookEvent) -> None:
        """Forgets that ``event`` was handled, so that a retry or replay is handed over again."""
        self._native.release(event)

    async def release_async(self, event: WebhookEvent) -> None:
        """:meth:`release`, awaited."""
        await self._native.release_async(event)

    def _too_large(self) -> Tuple[int, bytes]:
        status, body = self._native.too_large()
        return status, body

    def __repr__(self) -> str:
        return repr(self._native)


def _receiver(receiver: Optional[Receiver], key: Optional[str], settings: Dict[str, Any]) -> Receiver:
    if receiver is not None:
        if key is not None or settings:
            raise TypeError("give either receiver= or the receiver's settings, not both")
        return receiver
    return Receiver(key, **settings)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# ---------------------------------------------------------------------------------------------
# ASGI

ASGIScope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[ASGIMessage]]
ASGISend = Callable[[ASGIMessage], Awaitable[None]]
ASGIApp = Callable[[ASGIScope, ASGIReceive, ASGISend], Awaitable[None]]
OnEvent = Callable[[WebhookEvent], Any]


async def _respond(send: ASGISend, status: int, body: bytes, extra: Optional[List[Tuple[bytes, bytes]]] = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


def asgi_app(
    on_event: OnEvent,
    *,
    key: Optional[str] = None,
    receiver: Optional[Receiver] = None,
    **settings: Any,
) -> ASGIApp:
    """An ASGI 3 app for webhook deliveries: a route of FastAPI or Starlette
    (``app.add_route("/servicetitan/webhooks", webhooks.asgi_app(on_event), methods=["POST"])``),
    a mount, or an app of its own (``uvicorn module:app``).

    A POST is verified and deduplicated; the answer (200, or 401/400/413/503) goes out at once;
    then a new event goes to ``on_event(event)``: awaited if it is a coroutine function, else run
    in a worker thread. If it raises, the event is logged and released, so that a replay is
    handled again. ``settings`` are :class:`Receiver`'s.
    """
    return _WebhookASGIApp(on_event, _receiver(receiver, key, settings))


class _WebhookASGIApp:
    # A class, not a closure: Starlette's Route treats a callable object as an ASGI app (and a
    # function as a request handler).
    def __init__(self, on_event: OnEvent, receiver: Receiver) -> None:
        self.on_event = on_event
        self.receiver = receiver

    def __repr__(self) -> str:
        return f"asgi_app({self.on_event!r}, receiver={self.receiver!r})"

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        hooks, limit = self.receiver, self.receiver.max_body_bytes
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope.get("method") != "POST":
            await _respond(send, 405, b'{"error": "webhook deliveries are POSTed"}', [(b"allow", b"POST")])
            return
        headers = scope.get("headers") or []
        declared = next((v for k, v in headers if k.lower() == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _respond(send, *hooks._too_large())
            return
        chunks: List[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _respond(send, *hooks._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        receipt = await hooks.receive_async(b"".join(chunks), headers)
        await _respond(send, receipt.status, receipt.body)
        if receipt.event is not None:
            await _handle_async(hooks, self.on_event, receipt.event)


async def _handle_async(hooks: Receiver, on_event: OnEvent, event: WebhookEvent) -> None:
    try:
        if inspect.iscoroutinefunction(on_event):
            await on_event(event)
        else:
            result = await asyncio.get_running_loop().run_in_executor(None, on_event, event)
            if inspect.isawaitable(result):
                await result
    except Exception:
        logger.exception(
            "on_event failed for webhook event %s (%s); it will be handled again if redelivered",
            event.get("id"),
            event.get("type"),
        )
        await hooks.release_async(event)


# ---------------------------------------------------------------------------------------------
# WSGI

WSGIEnviron = Dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[WSGIEnviron, StartResponse], Iterable[bytes]]


class _ThenHandle:
    """The response body; ``close()``, which the server calls once the response is sent, hands
    the event over (PEP 3333), so the acknowledgement never waits for the handling."""

    def __init__(self, body: bytes, after: Optional[Callable[[], None]]) -> None:
        self._body = body
        self._after = after

    def __iter__(self) -> Iterator[bytes]:
        yield self._body

    def close(self) -> None:
        after, self._after = self._after, None
        if after is not None:
            after()


def wsgi_app(
    on_event: Callable[[WebhookEvent], Any],
    *,
    key: Optional[str] = None,
    receiver: Optional[Receiver] = None,
    **settings: Any,
) -> WSGIApp:
    """A WSGI app for webhook deliveries (Flask: ``app.wsgi_app = DispatcherMiddleware(...)``, or
    serve it alone with gunicorn or ``wsgiref``).

    A POST is verified and deduplicated, the answer is sent, then a new event goes to
    ``on_event(event)`` (from the response's ``close()``, once the server has written the
    answer). If it raises, the event is logged and released. ``settings`` are :class:`Receiver`'s.
    """
    hooks = _receiver(receiver, key, settings)
    limit = hooks.max_body_bytes

    def respond(
        start_response: StartResponse,
        status: int,
        body: bytes,
        after: Optional[Callable[[], None]] = None,
        extra: Optional[List[Tuple[str, str]]] = None,
    ) -> Iterable[bytes]:
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))] + (extra or [])
        start_response(f"{status} {_reason(status)}", headers)
        return _ThenHandle(body, after)

    def app(environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return respond(
                start_response, 405, b'{"error": "webhook deliveries are POSTed"}', extra=[("Allow", "POST")]
            )
        declared = str(environ.get("CONTENT_LENGTH") or "").strip()
        stream = environ["wsgi.input"]
        if declared.isdigit():
            if int(declared) > limit:
                return respond(start_response, *hooks._too_large())
            body = stream.read(int(declared))
        elif environ.get("wsgi.input_terminated"):
            body = stream.read(limit + 1)
            if len(body) > limit:
                return respond(start_response, *hooks._too_large())
        else:
            body = b""
        headers = [(name[5:].replace("_", "-"), value) for name, value in environ.items() if name.startswith("HTTP_")]
        if environ.get("CONTENT_TYPE"):
            headers.append(("Content-Type", environ["CONTENT_TYPE"]))
        receipt = hooks.receive(body, headers)
        event = receipt.event
        if event is None:
            return respond(start_response, receipt.status, receipt.body)

        def handle() -> None:
            try:
                on_event(event)
            except Exception:
                logger.exception(
                    "on_event failed for webhook event %s (%s); it will be handled again if redelivered",
                    event.get("id"),
                    event.get("type"),
                )
                hooks.release(event)

        return respond(start_response, receipt.status, receipt.body, handle)

    return app
