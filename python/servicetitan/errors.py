"""The exceptions of the client: one class per error code, all under :class:`ServiceTitanError`.

The same codes, and the same fields, exist in the Rust and Node packages::

    try:
        tenant.get("crm/customers/42")
    except st.NotFoundError:
        ...
    except st.ServiceTitanError as e:
        print(e.code, e.status, e.trace_id, e.errors)

Every exception pickles (for multiprocessing and task queues) and never carries a secret.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Type

__all__ = [
    "CLASSES_BY_CODE",
    "APIConnectionError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "DecodeError",
    "InternalError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RedirectError",
    "ServerError",
    "ServiceTitanError",
    "WebhookVerificationError",
]


class ServiceTitanError(Exception):
    """A failed call or a refused setting.

    Attributes:
        code: the stable error code (``"not_found"``, ``"rate_limited"``, ...).
        status: the HTTP status of the response, if there was one.
        title: the RFC 7807 ``title`` of the error body (or the OAuth ``error_description``).
        trace_id: the server's ``traceId``, to quote to ServiceTitan support.
        errors: field errors, field name -> messages (RFC 7807 ``errors``).
        method: the HTTP method of the failed request.
        url: the URL of the failed request (never carries a secret).
        argument: for configuration errors, the argument or environment variable at fault.
        retry_after: for rate limit errors, the wait the server asked for, in seconds.
    """

    code: str = "unknown"

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        title: Optional[str] = None,
        trace_id: Optional[str] = None,
        errors: Optional[Dict[str, List[str]]] = None,
        method: Optional[str] = None,
        url: Optional[str] = None,
        argument: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.title = title
        self.trace_id = trace_id
        self.errors: Dict[str, List[str]] = dict(errors) if errors else {}
        self.method = method
        self.url = url
        self.argument = argument
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuilt from the message, then the fields: the keyword-only fields are not in args.
        return (type(self), (self.message,), dict(self.__dict__))

    def __repr__(self) -> str:
        parts = [repr(self.message)]
        for name in ("status", "trace_id", "method", "url"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


class AuthenticationError(ServiceTitanError):
    """The token was refused (invalid_client...), or a 401 came back even with a fresh token.

    Credentials are environment specific: integration ones do not work in production."""

    code = "authentication"


class PermissionDeniedError(ServiceTitanError):
    """403: a scope is not granted, or the app is not connected to the tenant.

    New scopes take effect only after the tenant admin accepts the new app version."""

    code = "permission_denied"


class NotFoundError(ServiceTitanError):
    """404: no such record or route."""

    code = "not_found"


class BadRequestError(ServiceTitanError):
    """400 (and other refusals): see ``errors`` for the fields at fault."""

    code = "bad_request"


class ConflictError(ServiceTitanError):
    """409."""

    code = "conflict"


class RateLimitError(ServiceTitanError):
    """429 still after the retries, or a ``Retry-After`` longer than allowed."""

    code = "rate_limited"


class ServerError(ServiceTitanError):
    """5xx after the retries (or at once, for a call that is not safe to resend)."""

    code = "server"


class APITimeoutError(ServiceTitanError):
    """A deadline passed (one attempt's, or the whole call's)."""

    code = "timeout"


class APIConnectionError(ServiceTitanError):
    """DNS, connect, TLS, or a lost connection."""

    code = "connection"


class ConfigurationError(ServiceTitanError):
    """Bad input from the caller, refused before any request: see ``argument``."""

    code = "configuration"


class DecodeError(ServiceTitanError):
    """A 2xx whose body is not the JSON promised."""

    code = "decode"


class RedirectError(ServiceTitanError):
    """A 3xx from the API or the token service. Redirects are never followed, not even to the
    same host: the message names the status and the target's scheme and host, and nothing (no
    app key, token, body or client secret) was sent there. Check ``api_url`` / ``auth_url`` and
    any proxy in between."""

    code = "redirect"


class InternalError(ServiceTitanError):
    """A bug in the client, caught: this call failed, the client stays usable."""

    code = "internal"


class WebhookVerificationError(ServiceTitanError):
    """A webhook delivery failed verification: no signature header, a signature that does not
    match the body (changed on the way, or signed with another key), or a signed body that is
    not an event. The message says which; it never contains the key or the expected signature."""

    code = "webhook"


CLASSES_BY_CODE: Dict[str, Type[ServiceTitanError]] = {
    cls.code: cls
    for cls in (
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        BadRequestError,
        ConflictError,
        RateLimitError,
        ServerError,
        APITimeoutError,
        APIConnectionError,
        ConfigurationError,
        DecodeError,
        RedirectError,
        InternalError,
        WebhookVerificationError,
    )
}
