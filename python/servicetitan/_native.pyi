# The native module's types, checked against the compiled module by mypy.stubtest
# (python/tests/test_stubs.py). Hand-written: keep it in step with bindings/python/src.
from collections.abc import AsyncIterator, Awaitable, Generator, Iterator, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any, Dict, List, Optional, Tuple, Union, final

from .api import AsyncModules as _AsyncModules
from .api import Modules as _Modules

__all__ = [
    "AsyncClient",
    "AsyncRecords",
    "AsyncTenant",
    "Client",
    "Ready",
    "Records",
    "Sandbox",
    "Tenant",
    "WebhookReceiver",
    "__version__",
    "_after_fork_in_child",
    "_at_exit",
    "_operations",
    "_panic_for_test",
    "error_codes",
    "run_cli",
    "settings",
    "sign_webhook",
    "verify_webhook",
]
__version__: str

# What a JSON body may hold (sent as JSON; dates and datetimes as ISO 8601).
_JSON = Any
# A query parameter value: str, number, bool (sent as true/false), date/datetime (ISO 8601), or a
# sequence of those (comma-separated); None leaves the parameter out.
_ParamScalar = Union[str, int, float, bool, date, datetime, time]
_ParamValue = Union[_ParamScalar, Sequence[_ParamScalar], None]
_Params = Mapping[str, _ParamValue]

@final
class Client:
    """A ServiceTitan API client for one app key, serving any number of tenants.

    Thread-safe: make one per app and share it. Calls block with the GIL released; Ctrl-C
    interrupts them. Every setting left out comes from its environment variable (``ST_APP_KEY``,
    ``ST_ENVIRONMENT``, ``ST_AUTH_URL``, ``ST_API_URL``, ...), else the default. Durations are
    in seconds.

    Many processes (workers, pods) share one token per credential and one rate budget per tenant
    with ``redis_url="redis://host:6379/0"`` (``ST_REDIS_URL``); ``redis_key_prefix`` separates
    deployments, the cached tokens are encrypted under a key derived from each client secret
    (``redis_token_key``, 32 bytes in hex or base64, adds a second key), and
    ``redis_fallback_share=0.25`` keeps calls going under a quarter of the budget while Redis is
    down (by default they wait up to 30 s for it, then raise APIConnectionError).

    >>> client = Client(app_key="ak1...", environment="integration")
    >>> tenant = client.tenant(1234567, client_id="cid...", client_secret="cs1...")
    >>> tenant.get("crm/customers", params={"page": 1, "pageSize": 50})
    """

    def __new__(
        cls,
        app_key: Optional[str] = None,
        *,
        environment: Optional[str] = None,
        auth_url: Optional[str] = None,
        api_url: Optional[str] = None,
        rate_limit_calls: Optional[int] = None,
        rate_limit_period: Optional[float] = None,
        rate_limit_margin: Optional[float] = None,
        rate_limit_margin_adaptive: Optional[bool] = None,
        report_rate_limit_calls: Optional[int] = None,
        report_rate_limit_period: Optional[float] = None,
        max_attempts: Optional[int] = None,
        backoff_base: Optional[float] = None,
        backoff_max: Optional[float] = None,
        timeout: Optional[float] = None,
        connect_timeout: Optional[float] = None,
        attempt_timeout: Optional[float] = None,
        max_retry_after: Optional[float] = None,
        ca_certificates: Optional[Sequence[str]] = None,
        redis_url: Optional[str] = None,
        redis_key_prefix: Optional[str] = None,
        redis_token_key: Optional[str] = None,
        redis_fallback_share: Optional[float] = None,
    ) -> Client: ...
    @classmethod
    def from_env(cls) -> Client:
        """A client configured from environment variables only."""

    def tenant(
        self,
        tenant_id: Optional[int] = None,
        *,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
    ) -> Tenant:
        """A handle on one tenant (credentials left out come from ST_TENANT_ID, ST_CLIENT_ID,
        ST_CLIENT_SECRET). Raises ConfigurationError for invalid ones."""

    def stats(self) -> Dict[str, Union[int, float]]:
        """``requests``, ``retries``, ``token_fetches``, ``rate_limited`` and ``throttle_wait_s``."""

@final
class Tenant(_Modules):
    """One tenant of a :class:`Client`; paths are relative to it (``"crm/customers"``).

    Every documented operation is an attribute path: ``tenant.crm.customers.get_list(page_size=5)``.
    """

    @property
    def id(self) -> int: ...
    def get(self, path: str, *, params: Optional[_Params] = None, timeout: Optional[float] = None) -> Any:
        """GET ``path`` and return the parsed JSON.

        >>> tenant.get("crm/customers", params={"page": 1, "pageSize": 50})["data"]
        """

    def post(
        self,
        path: str,
        *,
        params: Optional[_Params] = None,
        json: _JSON = None,
        safe_to_retry: bool = False,
        timeout: Optional[float] = None,
    ) -> Any:
        """POST ``json``; not resent after a 5xx/timeout/lost connection unless ``safe_to_retry``.

        >>> tenant.post("crm/customers", json={"name": "Ada", "type": "Residential", ...})
        """

    def put(
        self, path: str, *, params: Optional[_Params] = None, json: _JSON = None, timeout: Optional[float] = None
    ) -> Any: ...
    def patch(
        self,
        path: str,
        *,
        params: Optional[_Params] = None,
        json: _JSON = None,
        safe_to_retry: bool = False,
        timeout: Optional[float] = None,
    ) -> Any: ...
    def delete(self, path: str, *, params: Optional[_Params] = None, timeout: Optional[float] = None) -> Any: ...
    def paginate(self, path: str, *, params: Optional[_Params] = None, page_size: Optional[int] = None) -> Records:
        """Every record of a page-based list.

        >>> for customer in tenant.paginate("crm/customers", params={"active": "Any"}, page_size=500): ...
        """

    def export(
        self, path: str, *, since: Optional[Union[str, date, datetime]] = None, params: Optional[_Params] = None
    ) -> Records:
        """An export feed from ``since`` (a saved ``continue_from`` or a date) until caught up.

        >>> feed = tenant.export("crm/customers", since=saved)
        >>> for record in feed: ...
        >>> saved = feed.continue_from
        """

    def report(
        self, category: str, report_id: int, *, parameters: Optional[Mapping[str, _JSON]] = None
    ) -> List[Dict[str, Any]]:
        """Every row of a report as a dict keyed by field name.

        >>> tenant.report("operations", 175, parameters={"From": "2026-01-01"})
        """

    def report_categories(self) -> List[Dict[str, Any]]:
        """The report categories, as dicts with ``id`` and ``name``.

        >>> [c["id"] for c in tenant.report_categories()]
        ['operations', ...]
        """

    def reports(self, category: str) -> List[Dict[str, Any]]:
        """The reports of a category, as dicts with ``id``, ``name`` and ``description``.

        >>> tenant.reports("operations")[0]["id"]
        """

    def report_metadata(self, category: str, report_id: int) -> Dict[str, Any]:
        """A report's description: ``id``, ``name``, ``description``, ``parameters`` (each with
        ``name``, ``label``, ``dataType``, ``isArray``, ``isRequired``, ``acceptValues``) and
        ``fields`` (each with ``name``, ``label``, ``dataType``), keys as the API spells them.

        >>> [p["name"] for p in tenant.report_metadata("operations", 175)["parameters"] if p["isRequired"]]
        """

    def call(self, operation: str, params: Optional[Mapping[str, Any]] = None, body: _JSON = None) -> Any:
        """Calls the operation named ``operation`` (``"crm.customers.get_list"``) with its parameters
        by their Python names: the answer (one page for a list), ``bytes`` for a file, the URL
        (``str``) a download documented as a redirect points to (not followed), the feed
        (:class:`Records`) for an export.

        >>> tenant.call("crm.customers.get", {"id": 42})["name"]
        """

    def records(self, operation: str, params: Optional[Mapping[str, Any]] = None) -> Records:
        """Every record of a list operation (from its ``page``) or an export (from its ``since``)."""

@final
class Records:
    """The record stream of ``paginate()`` or ``export()``; iterate it.

    Threads may share one: each record goes to exactly one of them, and ``continue_from`` never
    passes a record not yet handed out (save it once every thread has processed what it took).
    """

    def __iter__(self) -> Iterator[Dict[str, Any]]: ...
    def __next__(self) -> Dict[str, Any]: ...
    @property
    def continue_from(self) -> Optional[str]:
        """Exports: the checkpoint after the last page fully handed out. ``None`` for lists."""

@final
class AsyncClient:
    """The asyncio client: the methods of :class:`Client`, awaited. Cancelling the awaiting
    task cancels the call."""

    def __new__(
        cls,
        app_key: Optional[str] = None,
        *,
        environment: Optional[str] = None,
        auth_url: Optional[str] = None,
        api_url: Optional[str] = None,
        rate_limit_calls: Optional[int] = None,
        rate_limit_period: Optional[float] = None,
        rate_limit_margin: Optional[float] = None,
        rate_limit_margin_adaptive: Optional[bool] = None,
        report_rate_limit_calls: Optional[int] = None,
        report_rate_limit_period: Optional[float] = None,
        max_attempts: Optional[int] = None,
        backoff_base: Optional[float] = None,
        backoff_max: Optional[float] = None,
        timeout: Optional[float] = None,
        connect_timeout: Optional[float] = None,
        attempt_timeout: Optional[float] = None,
        max_retry_after: Optional[float] = None,
        ca_certificates: Optional[Sequence[str]] = None,
        redis_url: Optional[str] = None,
        redis_key_prefix: Optional[str] = None,
        redis_token_key: Optional[str] = None,
        redis_fallback_share: Optional[float] = None,
    ) -> AsyncClient: ...
    @classmethod
    def from_env(cls) -> AsyncClient: ...
    def tenant(
        self,
        tenant_id: Optional[int] = None,
        *,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
    ) -> AsyncTenant: ...
    def stats(self) -> Dict[str, Union[int, float]]: ...

@final
class AsyncTenant(_AsyncModules):
    """One tenant of an :class:`AsyncClient`; ``await tenant.crm.customers.get_list(page_size=5)``."""

    @property
    def id(self) -> int: ...
    def get(self, path: str, *, params: Optional[_Params] = None, timeout: Optional[float] = None) -> Awaitable[Any]:
        """>>> page = await tenant.get("crm/customers", params={"pageSize": 50})"""

    def post(
        self,
        path: str,
        *,
        params: Optional[_Params] = None,
        json: _JSON = None,
        safe_to_retry: bool = False,
        timeout: Optional[float] = None,
    ) -> Awaitable[Any]: ...
    def put(
        self, path: str, *, params: Optional[_Params] = None, json: _JSON = None, timeout: Optional[float] = None
    ) -> Awaitable[Any]: ...
    def patch(
        self,
        path: str,
        *,
        params: Optional[_Params] = None,
        json: _JSON = None,
        safe_to_retry: bool = False,
        timeout: Optional[float] = None,
    ) -> Awaitable[Any]: ...
    def delete(
        self, path: str, *, params: Optional[_Params] = None, timeout: Optional[float] = None
    ) -> Awaitable[Any]: ...
    def paginate(self, path: str, *, params: Optional[_Params] = None, page_size: Optional[int] = None) -> AsyncRecords:
        """>>> async for customer in tenant.paginate("crm/customers", page_size=500): ..."""

    def export(
        self, path: str, *, since: Optional[Union[str, date, datetime]] = None, params: Optional[_Params] = None
    ) -> AsyncRecords:
        """>>> feed = tenant.export("crm/customers"); async for r in feed: ...; feed.continue_from"""

    def report(
        self, category: str, report_id: int, *, parameters: Optional[Mapping[str, _JSON]] = None
    ) -> Awaitable[List[Dict[str, Any]]]: ...
    def report_categories(self) -> Awaitable[List[Dict[str, Any]]]:
        """>>> categories = await tenant.report_categories()  # dicts with id, name"""

    def reports(self, category: str) -> Awaitable[List[Dict[str, Any]]]:
        """>>> reports = await tenant.reports("operations")  # dicts with id, name, description"""

    def report_metadata(self, category: str, report_id: int) -> Awaitable[Dict[str, Any]]:
        """>>> meta = await tenant.report_metadata("operations", 175)  # see Tenant.report_metadata"""

    def call(self, operation: str, params: Optional[Mapping[str, Any]] = None, body: _JSON = None) -> Awaitable[Any]:
        """Calls an operation by name (see :meth:`Tenant.call`), awaited."""

    def records(self, operation: str, params: Optional[Mapping[str, Any]] = None) -> AsyncRecords:
        """Every record of a list or export operation, as an async iterator."""

@final
class AsyncRecords:
    """The record stream of ``paginate()`` or ``export()`` on an :class:`AsyncTenant`; ``async for`` it.

    Coroutines may share one (each record goes to exactly one of them), as may tasks cancelled
    while they wait: a cancelled ``__anext__`` takes no record.

    >>> feed = tenant.export("crm/customers")
    >>> await asyncio.gather(*(worker(feed) for _ in range(8)))  # each: async for r in feed: ...
    >>> saved = feed.continue_from
    """

    def __aiter__(self) -> AsyncIterator[Dict[str, Any]]: ...
    def __anext__(self) -> Awaitable[Dict[str, Any]]: ...
    def _pop(self) -> Optional[Dict[str, Any]]:
        """The next buffered record, or None if a page must be loaded first (internal)."""
    def _fill(self) -> Awaitable[None]:
        """Waits until a record (or the end) is buffered (internal)."""
    @property
    def continue_from(self) -> Optional[str]: ...

@final
class Ready:
    """An already-completed awaitable (what ``AsyncRecords.__anext__`` returns for buffered records)."""

    def __await__(self) -> Generator[Any, None, Any]: ...
    def __iter__(self) -> Generator[Any, None, Any]: ...
    def __next__(self) -> None: ...

@final
class Sandbox:
    """A local ServiceTitan, started in-process on a free port; a context manager.

    Keyword options are the sandbox's settings (``records``, ``token_lifetime_secs``,
    ``rate_limit={"enabled": False}``, ``report_limit``, ``tenants``, ``latency_ms``, ...).

    >>> with Sandbox(records=100) as sandbox:
    ...     tenant = sandbox.client().tenant(**sandbox.credentials())
    """

    def __new__(cls, **options: Any) -> Sandbox: ...
    @property
    def base_url(self) -> str: ...
    @property
    def auth_url(self) -> str: ...
    @property
    def api_url(self) -> str: ...
    @property
    def app_key(self) -> str: ...
    @property
    def tenants(self) -> List[Dict[str, Any]]: ...
    @property
    def config(self) -> Dict[str, Any]: ...
    def credentials(self, tenant_id: Optional[int] = None) -> Dict[str, Any]:
        """``tenant_id``, ``client_id``, ``client_secret`` of a tenant, for ``client.tenant(**...)``."""

    def client(self, **settings: Any) -> Client:
        """A :class:`Client` for this sandbox (any Client keyword argument may be added)."""

    def async_client(self, **settings: Any) -> AsyncClient:
        """An :class:`AsyncClient` for this sandbox."""

    def stats(self) -> Dict[str, Any]: ...
    @staticmethod
    def implemented_operations() -> List[str]:
        """The operations the sandbox serves, as ``"METHOD route-template"``."""

    def reset_stats(self) -> None: ...
    def add_fault(self, **fault: Any) -> None:
        """Arms a fault: ``route``, ``method``, ``status``, ``count``, ``delay_ms``,
        ``drop_connection``, ``retry_after``, ``title``."""

    def clear_faults(self) -> None: ...
    def revoke_tokens(self) -> None: ...
    def register_webhook(
        self, url: str, key: str, *, tenant_id: Optional[int] = None, events: Optional[List[str]] = None
    ) -> int:
        """Subscribes ``url`` (``http://``) to a tenant's webhook events (default: the first
        tenant), signed with ``key``; customers created or updated are delivered as signed
        CloudEvents, failed deliveries retried after 10, 30, 60, 300 s times ``webhook_time_scale``."""

    def webhook_subscriptions(self) -> List[Dict[str, Any]]: ...
    def clear_webhooks(self) -> None: ...
    def webhook_deliveries(self) -> List[Dict[str, Any]]:
        """Every delivery: ``event_id``, ``type``, ``tenant``, ``url``, ``state`` (``pending``,
        ``delivered``, ``failed``), ``replay``, ``attempts`` (``at_ms``, ``status``, ``error``)."""

    def replay_webhook(self, event_id: str) -> int:
        """Sends an event again, same id and body, as a replay from the developer portal does."""

    def send_webhook_event(self, event_type: str, data: _JSON = None, *, tenant_id: Optional[int] = None) -> str:
        """Sends an event to a tenant's subscribers; returns its id."""

    @property
    def closed(self) -> bool: ...
    def close(self) -> None:
        """Stops the server (idempotent); leaving a ``with`` block does it too."""
    def __enter__(self) -> Sandbox: ...
    def __exit__(self, *_exc: object) -> bool: ...

_Body = Union[bytes, bytearray, memoryview, str]
_Headers = Any  # a mapping or (name, value) pairs, str or bytes: see servicetitan.webhooks.Headers

def verify_webhook(
    body: _Body,
    headers: _Headers,
    key: str,
    *,
    signature_header: Optional[str] = None,
    encoding: Optional[str] = None,
    envelope: Optional[str] = None,
) -> Dict[str, Any]: ...
def sign_webhook(body: _Body, key: str, *, encoding: Optional[str] = None) -> str: ...

@final
class WebhookReceiver:
    """Verifies and deduplicates webhook deliveries (see ``servicetitan.webhooks.Receiver``)."""

    def __new__(
        cls,
        key: Optional[str] = None,
        *,
        signature_header: Optional[str] = None,
        encoding: Optional[str] = None,
        envelope: Optional[str] = None,
        dedupe_ttl: Optional[float] = None,
        max_body_bytes: Optional[int] = None,
        redis_url: Optional[str] = None,
        redis_key_prefix: Optional[str] = None,
    ) -> WebhookReceiver: ...
    @property
    def max_body_bytes(self) -> int: ...
    def too_large(self) -> tuple[int, bytes]: ...
    def receive(self, body: _Body, headers: _Headers) -> tuple[int, bytes, Optional[Dict[str, Any]], bool]: ...
    def receive_async(
        self, body: _Body, headers: _Headers
    ) -> Awaitable[tuple[int, bytes, Optional[Dict[str, Any]], bool]]: ...
    def release(self, event: Mapping[str, Any]) -> None: ...
    def release_async(self, event: Mapping[str, Any]) -> Awaitable[None]: ...

def _after_fork_in_child() -> None: ...
def _panic_for_test(boundary: str) -> Any:
    """Panics on purpose at one boundary (``"wait"``, ``"asyncio"``, ``"into_python"``,
    ``"convert"``), for the test suite: each must raise ``InternalError`` (an awaitable does,
    when awaited) and leave the client usable."""

def _at_exit() -> None: ...
def error_codes() -> List[str]:
    """Every error code of the engine, in the order of the README's error table."""

def settings() -> List[Tuple[str, str]]:
    """``(keyword, environment variable)`` of every setting ``Client`` takes, from the engine's schema."""

def run_cli(argv: List[str]) -> int:
    """Runs the ``servicetitan`` command line ``argv`` (the program name first) with the GIL
    released; it prints to the process's standard output and error. Returns the exit code."""

def _operations() -> List[Tuple[Tuple[str, ...], str, Tuple[str, ...]]]:
    """Every operation: its name's parts, its kind (plain, list, export, binary) and the Python
    names of its path parameters in path order."""
