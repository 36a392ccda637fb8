"""The API by name: ``tenant.crm.customers.get_list(page_size=5)``.

``tenant.crm`` is a module, ``.customers`` one of its resources, ``.get_list`` an operation; the
names come from the engine's table of the 563 documented operations. A call maps its positional
arguments onto the path parameters (in path order) and hands everything to the engine, which
checks it (unknown, missing, mistyped or unaccepted arguments are a ``ConfigurationError``
naming them) before anything is sent. The types live in :mod:`servicetitan.api`.

Results: the decoded answer; for a list, a :class:`Page` whose iteration yields every record of
it and of the pages after it (through the engine's paginator); for an export, the engine's feed
(``continue_from``); for a file, ``bytes``.
"""

from __future__ import annotations

import difflib
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Dict,
    Generic,
    Iterator,
    List,
    Mapping,
    Optional,
    Protocol,
    Tuple,
    TypeVar,
    Union,
    cast,
)

from . import _native
from .errors import ConfigurationError

__all__ = ["AsyncFeed", "AsyncPage", "Feed", "Page", "module"]

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)


class Feed(Protocol[_T_co]):
    """An export's records until the feed has caught up; ``continue_from`` is the checkpoint."""

    def __iter__(self) -> Iterator[_T_co]: ...
    def __next__(self) -> _T_co: ...
    @property
    def continue_from(self) -> Optional[str]: ...


class AsyncFeed(Protocol[_T_co]):
    """An export's records as an async iterator; ``continue_from`` is the checkpoint."""

    def __aiter__(self) -> AsyncIterator[_T_co]: ...
    def __anext__(self) -> Awaitable[_T_co]: ...
    @property
    def continue_from(self) -> Optional[str]: ...


class _Operation:
    __slots__ = ("kind", "name", "path")

    def __init__(self, name: str, kind: str, path: Tuple[str, ...]) -> None:
        self.name = name
        self.kind = kind
        self.path = path


# module → resource (None for an operation without one) → action → operation
_Tree = Dict[str, Dict[Optional[str], Dict[str, _Operation]]]
_tree_cache: List[_Tree] = []


def _tree() -> _Tree:
    if not _tree_cache:
        tree: _Tree = {}
        for parts, kind, path in _native._operations():
            resource = parts[1] if len(parts) == 3 else None
            actions = tree.setdefault(parts[0], {}).setdefault(resource, {})
            actions[parts[-1]] = _Operation(".".join(parts), kind, tuple(path))
        _tree_cache.append(tree)
    return _tree_cache[0]


def _no_attribute(owner: str, name: str, known: List[str]) -> AttributeError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return AttributeError(f"{owner} has no attribute {name!r}{hint}")


_Tenant = Union[_native.Tenant, _native.AsyncTenant]


def module(tenant: _Tenant, name: str) -> Module:
    """``tenant.<name>``: the module's resources and operations (``AttributeError`` otherwise)."""
    tree = _tree()
    if name.startswith("_") or name not in tree:
        raise _no_attribute(type(tenant).__name__, name, sorted(tree))
    return Module(tenant, name, tree[name])


class Module:
    """The operations of one API module (``tenant.crm``), by resource: ``tenant.crm.customers``."""

    __slots__ = ("_entries", "_name", "_tenant")

    def __init__(self, tenant: _Tenant, name: str, entries: Dict[Optional[str], Dict[str, _Operation]]) -> None:
        self._tenant = tenant
        self._name = name
        self._entries = entries

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_"):
            if name in self._entries:
                return Resource(self._tenant, f"{self._name}.{name}", self._entries[name])
            top = self._entries.get(None, {})
            if name in top:
                return _bind(self._tenant, top[name])
        raise _no_attribute(f"module {self._name}", name, self.__dir__())

    def __dir__(self) -> List[str]:
        return sorted([r for r in self._entries if r is not None] + list(self._entries.get(None, {})))

    def __repr__(self) -> str:
        return f"<servicetitan module {self._name}: {', '.join(self.__dir__())}>"


class Resource:
    """The operations on one resource (``tenant.crm.customers``): ``.get_list(...)``, ``.get(id)``..."""

    __slots__ = ("_actions", "_name", "_tenant")

    def __init__(self, tenant: _Tenant, name: str, actions: Dict[str, _Operation]) -> None:
        self._tenant = tenant
        self._name = name
        self._actions = actions

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and name in self._actions:
            return _bind(self._tenant, self._actions[name])
        raise _no_attribute(f"resource {self._name}", name, sorted(self._actions))

    def __dir__(self) -> List[str]:
        return sorted(self._actions)

    def __repr__(self) -> str:
        return f"<servicetitan resource {self._name}: {', '.join(sorted(self._actions))}>"


def _bind(tenant: _Tenant, op: _Operation) -> Any:
    if isinstance(tenant, _native.AsyncTenant):
        return AsyncCall(tenant, op)
    return Call(tenant, op)


def _arguments(op: _Operation, args: Tuple[Any, ...], params: Dict[str, Any]) -> Dict[str, Any]:
    """The path parameters given by position, joined to the keyword ones."""
    if len(args) > len(op.path):
        takes = f"{len(op.path)} positional argument{'s' if len(op.path) != 1 else ''}"
        names = f" ({', '.join(op.path)})" if op.path else ""
        raise ConfigurationError(
            f"invalid arguments: {op.name} takes {takes}{names}, got {len(args)}; query parameters go by keyword",
            argument=op.name,
        )
    for name, value in zip(op.path, args):
        if name in params:
            raise ConfigurationError(f"invalid {name}: given by position and by keyword", argument=name)
        params[name] = value
    return params


class Call:
    """One operation of a :class:`Tenant`: call it with its parameters."""

    __slots__ = ("_op", "_tenant")

    def __init__(self, tenant: _native.Tenant, op: _Operation) -> None:
        self._tenant = tenant
        self._op = op

    def __call__(self, *args: Any, body: Any = None, **params: Any) -> Any:
        op = self._op
        params = _arguments(op, args, params)
        answer = self._tenant.call(op.name, params, body)
        if op.kind == "list":
            return Page(self._tenant, op.name, params, answer)
        return answer

    def __repr__(self) -> str:
        return f"<servicetitan operation {self._op.name} ({self._op.kind})>"


class AsyncCall:
    """One operation of an :class:`AsyncTenant`: call it with its parameters and await it."""

    __slots__ = ("_op", "_tenant")

    def __init__(self, tenant: _native.AsyncTenant, op: _Operation) -> None:
        self._tenant = tenant
        self._op = op

    async def __call__(self, *args: Any, body: Any = None, **params: Any) -> Any:
        op = self._op
        params = _arguments(op, args, params)
        answer = await self._tenant.call(op.name, params, body)
        if op.kind == "list":
            return AsyncPage(self._tenant, op.name, params, answer)
        return answer

    def __repr__(self) -> str:
        return f"<servicetitan operation {self._op.name} ({self._op.kind}, async)>"


class _PageBase(Generic[_T]):
    __slots__ = ("_name", "_params", "data", "has_more", "page", "page_size", "total_count")

    def __init__(self, name: str, params: Mapping[str, Any], answer: Any) -> None:
        body: Dict[str, Any] = answer if isinstance(answer, dict) else {}
        self._name = name
        self._params = dict(params)
        #: The records of this page.
        self.data: List[_T] = list(body.get("data") or [])
        #: Whether another page follows.
        self.has_more: bool = bool(body.get("hasMore"))
        #: The total, when asked for with ``include_total=True``.
        self.total_count: Optional[int] = body.get("totalCount")
        #: This page's number, from 1.
        self.page: int = int(body.get("page") or params.get("page") or 1)
        #: The page size the server used.
        self.page_size: int = int(body.get("pageSize") or params.get("page_size") or len(self.data) or 50)

    def _rest(self) -> Optional[Dict[str, Any]]:
        """The arguments of the pages after this one, if there are any."""
        if not (self.has_more and self.data):
            return None
        return dict(self._params, page=self.page + 1, page_size=self.page_size)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._name}, page={self.page}, records={len(self.data)}, "
            f"has_more={self.has_more}, total_count={self.total_count})"
        )


class Page(_PageBase[_T]):
    """One page of a list: ``data``, ``has_more``, ``total_count``, ``page``, ``page_size``.

    Iterating it yields its records, then every record of the pages after it, through the
    engine's paginator (the next page is fetched while this one is consumed)::

        for customer in tenant.crm.customers.get_list(page_size=500, active="Any"):
            ...
    """

    __slots__ = ("_tenant",)

    def __init__(self, tenant: _native.Tenant, name: str, params: Mapping[str, Any], answer: Any) -> None:
        super().__init__(name, params, answer)
        self._tenant = tenant

    def __iter__(self) -> Iterator[_T]:
        yield from self.data
        rest = self._rest()
        if rest is not None:
            # The engine's records are the page's record type, decoded the same way.
            yield from cast(Iterator[_T], self._tenant.records(self._name, rest))


class AsyncPage(_PageBase[_T]):
    """One page of a list on an :class:`AsyncTenant`; ``async for`` yields every record from it on."""

    __slots__ = ("_tenant",)

    def __init__(self, tenant: _native.AsyncTenant, name: str, params: Mapping[str, Any], answer: Any) -> None:
        super().__init__(name, params, answer)
        self._tenant = tenant

    async def __aiter__(self) -> AsyncIterator[_T]:
        for record in self.data:
            yield record
        rest = self._rest()
        if rest is not None:
            async for record in cast(AsyncIterator[_T], self._tenant.records(self._name, rest)):
                yield record
