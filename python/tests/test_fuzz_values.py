"""Property test of the value converter: arbitrary nested Python values as a `json=` body.

Each value is either sent (the sandbox answers, whatever it thinks of it) or refused with a
ConfigurationError naming `json`, exactly when a plain-Python model of the rules says so; never
another exception, never a crash. Bounded for CI (FUZZ_EXAMPLES, default 300, a few seconds);
inputs that once broke the converter are pinned with @example, so the corpus lives here.
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import enum
import math
import os
from typing import Any, Callable, Dict, Iterator, List, Set

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as hs

import servicetitan as st

MAX_DEPTH = 128
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    pass


class Opaque:
    pass


def nested(depth: int) -> Any:
    value: Any = 0
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


class Lazy:
    """A value built when the test runs, shown by a short description: a value nested thousands
    deep would overflow the stack of Hypothesis's own printer."""

    def __init__(self, description: str, make: Callable[[], Any]) -> None:
        self.description = description
        self.make = make

    def __repr__(self) -> str:
        return self.description


def deep(depth: int) -> Lazy:
    return Lazy(f"nested({depth})", lambda: nested(depth))


def self_looped() -> Dict[str, Any]:
    d: Dict[str, Any] = {}
    d["self"] = d
    return d


# -- the model ----------------------------------------------------------------------------------


def has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def refused(value: Any, open_ids: Set[int]) -> bool:
    """Whether the converter must refuse `value` (with `open_ids` the containers around it)."""
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, str):
        return has_surrogate(value)
    if isinstance(value, int):
        return not -(2**63) <= value <= 2**64 - 1
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (dict, list, tuple)):
        if id(value) in open_ids or len(open_ids) >= MAX_DEPTH:
            return True
        inner = open_ids | {id(value)}
        if isinstance(value, dict):
            for key, item in list(value.items()):
                if not isinstance(key, str) or has_surrogate(key) or refused(item, inner):
                    return True
            return False
        return any(refused(item, inner) for item in value)
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return False
    return True


# -- the strategies -----------------------------------------------------------------------------

zones = (
    hs.none()
    | hs.just(dt.timezone.utc)
    | hs.builds(dt.timezone, hs.timedeltas(-dt.timedelta(hours=23), dt.timedelta(hours=23)))
)
texts = hs.text(max_size=8) | hs.builds(
    lambda a, s, b: a + s + b,
    hs.text(max_size=3),
    hs.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    hs.text(max_size=3),
)
scalars = hs.one_of(
    hs.none(),
    hs.booleans(),
    hs.integers(-(2**63), 2**64 - 1),
    hs.integers(),  # beyond 64 bits too
    hs.sampled_from([2**64, -(2**63) - 1, 10**400, Color.RED]),
    hs.floats(),  # nan and infinities included
    texts,
    texts.map(Name),
    hs.binary(max_size=4),
    hs.dates(),
    hs.datetimes(timezones=zones),
    hs.times(timezones=zones),
    hs.sampled_from([Opaque(), object(), {1, 2}, frozenset(), 1j, decimal.Decimal("1.5"), bytearray(b"x"), range(3)]),
)
keys = hs.one_of(texts, hs.integers(), hs.none(), hs.booleans(), hs.floats(allow_nan=False), hs.tuples(hs.integers()))
values = hs.recursive(
    scalars,
    lambda children: hs.one_of(
        hs.lists(children, max_size=4),
        hs.lists(children, max_size=4).map(tuple),
        hs.dictionaries(texts, children, max_size=4),
        hs.dictionaries(keys, children, max_size=3),
        hs.dictionaries(texts, children, max_size=3).map(collections.OrderedDict),
    ),
    max_leaves=25,
)


@hs.composite
def with_self_reference(draw: hs.DrawFn) -> Any:
    """A list or dict in which some container, down a random path, refers back to one above it."""
    root: Any = draw(hs.lists(values, min_size=1, max_size=3) | hs.dictionaries(texts, values, min_size=1, max_size=3))
    path: List[Any] = [root]
    node = root
    while True:
        children = [c for c in (node.values() if isinstance(node, dict) else node) if isinstance(c, (list, dict))]
        if not children or not draw(hs.booleans()):
            break
        node = draw(hs.sampled_from(children))
        path.append(node)
    target = draw(hs.sampled_from(path))
    if isinstance(node, dict):
        node[draw(texts)] = target
    else:
        node.append(target)
    return root


bodies = hs.one_of(values, with_self_reference(), hs.integers(MAX_DEPTH - 2, 3000).map(deep))


# -- the property -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_tenant(sandbox: st.Sandbox) -> Iterator[st.Tenant]:
    # No client-side limiter: hundreds of examples go out in a few seconds.
    client = sandbox.client(rate_limit_calls=0, max_attempts=1)
    yield client.tenant(**sandbox.credentials(1001))


SEEN = collections.Counter[str]()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=bodies)
# Pinned: each crashed the interpreter (stack overflow) before the depth limit and cycle check.
@example(body=self_looped())
@example(body=Lazy("[nested(5000)]", lambda: [nested(5000)]))
@example(body={"a": [1, 2, 3, {"b": self_looped()}]})
# Pinned: refused with a TypeError or a ValueError before every refusal was a ConfigurationError.
@example(body={1: "int key"})
@example(body={"nan": float("nan")})
@example(body={"big": 2**64})
@example(body={"surrogate": "\ud800"})
# Pinned: a dict key holding a surrogate made pyo3 raise UnicodeEncodeError.
@example(body={"\udfff": 0})
def test_a_value_is_sent_or_refused_as_the_model_says(fuzz_tenant: st.Tenant, body: Any) -> None:
    if isinstance(body, Lazy):
        body = body.make()
    must_refuse = refused(body, set())
    try:
        fuzz_tenant.post("crm/customers", json=body)
        outcome = "sent"
    except st.ConfigurationError as e:
        assert e.argument == "json", repr(e)
        assert str(e).startswith("json"), str(e)
        outcome = "refused"
    except st.ServiceTitanError as e:
        # The server answered (it rarely likes these customers): the value was sent.
        assert e.status is not None, repr(e)
        outcome = "sent"
    SEEN[outcome] += 1
    assert outcome == ("refused" if must_refuse else "sent")


def test_the_fuzzer_tried_both_outcomes() -> None:
    # Runs after the property (file order): a strategy that only ever made one kind would
    # test little.
    if sum(SEEN.values()) >= 50:
        assert SEEN["sent"] > 0 and SEEN["refused"] > 0, SEEN
