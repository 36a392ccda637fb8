"""ServiceTitan API client: tokens, rate limits, retries, paging, exports and reports.

The work is done by a Rust engine shared with the Rust and Node packages; this package is its
Python face. Quick start against the bundled sandbox::

    import servicetitan as st

    with st.Sandbox() as sandbox:
        client = st.Client(app_key=sandbox.app_key, auth_url=sandbox.auth_url, api_url=sandbox.api_url)
        # or simply: client = sandbox.client()
        tenant = client.tenant(**sandbox.credentials())
        print(tenant.get("crm/customers", params={"pageSize": 5}))
"""

from __future__ import annotations

from . import errors, webhooks
from ._native import AsyncClient, AsyncRecords, AsyncTenant, Client, Records, Sandbox, Tenant, __version__
from .errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    DecodeError,
    InternalError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RedirectError,
    ServerError,
    ServiceTitanError,
    WebhookVerificationError,
)

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncRecords",
    "AsyncTenant",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConfigurationError",
    "ConflictError",
    "DecodeError",
    "InternalError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Records",
    "RedirectError",
    "Sandbox",
    "ServerError",
    "ServiceTitanError",
    "Tenant",
    "WebhookVerificationError",
    "__version__",
    "errors",
    "webhooks",
]
