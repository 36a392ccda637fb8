"""The API by name: every one of the 563 operations called as ``tenant.<module>.<resource>.<action>``
against the sandbox, names derived by the rules, results as pages, feeds and bytes, arguments
checked before anything is sent, types checked by mypy."""

from __future__ import annotations

import asyncio
import json
import keyword
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

import servicetitan as st
from servicetitan import _native
from servicetitan._operations import AsyncPage, Page

ROOT = Path(__file__).resolve().parents[2]
TABLE: Dict[str, Any] = json.loads((ROOT / "crates/servicetitan/src/operations/table.json").read_text())
CATALOGUE: Dict[str, Any] = json.loads((ROOT / "crates/servicetitan-sandbox/catalogue.json").read_text())
SCHEMAS: Dict[str, Any] = CATALOGUE["schemas"]
SPECS = {(op["method"], op["path"]): op for op in CATALOGUE["operations"]}


# ---------------------------------------------------------------------------------------------
# Schemas: a minimal instance of a request schema, and the violations of a response


def resolve(schema: Any) -> Any:
    for _ in range(16):
        if isinstance(schema, dict) and "$ref" in schema:
            schema = SCHEMAS[schema["$ref"]]
        elif isinstance(schema, dict) and len(schema.get("oneOf") or ()) == 1:
            schema = schema["oneOf"][0]
        else:
            break
    return schema


GUID_0 = "00000000-0000-0000-0000-000000000000"


def example(schema: Any, depth: int = 0) -> Any:
    """What the sandbox's own example generator makes: required properties, first enum values."""
    schema = resolve(schema)
    if not isinstance(schema, dict) or depth > 24:
        return None
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("oneOf", "anyOf", "allOf"):
        if schema.get(key):
            return example(schema[key][0], depth + 1)
    t = schema.get("type") or ("object" if "properties" in schema else None)
    fmt = str(schema.get("format"))
    if t == "object":
        props = schema.get("properties") or {}
        return {k: example(props[k], depth + 1) for k in schema.get("required") or () if k in props}
    if t == "array":
        return []
    if t == "string":
        text = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "uuid": GUID_0, "guid": GUID_0}.get(fmt, "")
        return text.ljust(int(schema.get("minLength") or 0), "x")
    return {"integer": 0, "number": 0, "boolean": False}.get(str(t))


def violations(schema: Any, value: Any, path: str = "$") -> List[str]:
    if value is None and isinstance(schema, dict) and schema.get("nullable"):
        return []
    schema = resolve(schema)
    if not isinstance(schema, dict):
        return []
    if value is None:
        return [] if schema.get("nullable") or not schema.get("type") else [f"{path}: null"]
    for key in ("oneOf", "anyOf"):
        if schema.get(key):
            found = [violations(alt, value, path) for alt in schema[key]]
            return [] if any(not v for v in found) else found[0]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} not in {schema['enum']}"]
    t = schema.get("type")
    checks = {
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    if t in checks and not checks[t](value):
        return [f"{path}: {type(value).__name__} is not {t}"]
    out: List[str] = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            out += violations(schema.get("items"), item, f"{path}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        out += [f"{path}.{k}: missing" for k in schema.get("required") or () if k not in value]
        for k, v in value.items():
            if k in props:
                out += violations(props[k], v, f"{path}.{k}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{path}.{k}: not in the schema")
    return out


def record_schema(op: Dict[str, Any]) -> Any:
    """The schema of a list's or an export's records."""
    success = success_schema(op)
    return ((resolve(success) or {}).get("properties") or {}).get("data", {}).get("items")


def success_schema(op: Dict[str, Any]) -> Any:
    responses = SPECS[(op["method"], op["path"])]["responses"]
    codes = sorted(c for c in responses if c.startswith("2"))
    return responses[codes[0]] if codes else None


# ---------------------------------------------------------------------------------------------
# Arguments for any operation


def python_name(p: Dict[str, Any]) -> str:
    return str(p.get("python", p["name"]))


GUID_1 = "00000000-0000-4000-8000-000000000001"  # the sandbox's record 1 where ids are GUIDs


def example_arg(p: Dict[str, Any]) -> Any:
    first = p["enum"][0] if p.get("enum") else None
    scalar: Any = {"integer": 1, "number": 1, "boolean": True}.get(p.get("items") or p["type"])
    if scalar is None:
        formats = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "uuid": GUID_1, "guid": GUID_1}
        scalar = formats.get(p.get("format", ""), "1")
    if p["type"] == "array":
        return [first if first is not None else scalar]
    if p["type"] == "object":
        return {}
    return first if first is not None else scalar


def operation(tenant: Any, op: Dict[str, Any]) -> Any:
    target = tenant
    for part in op["python"]:
        target = getattr(target, part)
    return target


def first_record(tenant: st.Tenant, list_path: str, chosen: Dict[str, Any]) -> Any:
    """The first record of the list at ``list_path`` (a template), with the path values chosen so far."""
    lists = [o for o in TABLE["operations"] if o["path"] == list_path and o["method"] == "GET"]
    if not lists:
        return None
    kwargs: Dict[str, Any] = {}
    for p in lists[0]["params"]:
        if p["in"] == "path":
            if p["name"] not in chosen:
                return None
            kwargs[python_name(p)] = chosen[p["name"]]
        elif p["name"] == "pageSize":
            kwargs["page_size"] = 1
        elif p["name"] == "active":
            kwargs["active"] = "Any"  # the first record whatever its state
        elif p.get("required"):
            kwargs[python_name(p)] = example_arg(p)
    try:
        answer = tenant.call(".".join(lists[0]["python"]), kwargs)
    except st.ServiceTitanError:
        return None
    records = answer.get("data") if isinstance(answer, dict) else answer
    return records[0] if isinstance(records, list) and records and isinstance(records[0], dict) else None


def arguments(tenant: st.Tenant, op: Dict[str, Any]) -> Tuple[List[Any], Dict[str, Any]]:
    """Path parameters by position (in path order), required query parameters by keyword, body.

    A path parameter right after a list's path takes the id of that list's first record (its
    field named like the parameter, or its ``id``), as a caller would."""
    params = {p["name"]: p for p in op["params"] if p["in"] == "path"}
    segments = op["path"].split("/")
    chosen: Dict[str, Any] = {}
    for i, segment in enumerate(segments):
        name = segment[1:-1] if segment.startswith("{") else None
        if name is None or name not in params:
            continue
        special = {"report_category": "operations", "reportId": 175, "dynamicSetId": "business-units"}
        if name in special:
            chosen[name] = special[name]
            continue
        record = first_record(tenant, "/".join(segments[:i]), chosen)
        found = record.get(name, record.get("id")) if record else None
        chosen[name] = found if found is not None else example_arg(params[name])
    positional = list(chosen.values())
    keywords = {python_name(p): example_arg(p) for p in op["params"] if p["in"] == "query" and p.get("required")}
    spec = SPECS[(op["method"], op["path"])]
    if op["id"] == "ReportCategoryReports_GetData":
        keywords["body"] = {
            "parameters": [{"name": "From", "value": "2026-01-01"}, {"name": "To", "value": "2026-01-31"}]
        }
    elif spec["body"] is not None:
        keywords["body"] = example(spec["body"])
    return positional, keywords


def routes(sandbox: st.Sandbox) -> Dict[str, int]:
    return dict(sandbox.stats()["routes"])


# ---------------------------------------------------------------------------------------------
# Every operation


@pytest.fixture
def own_sandbox() -> Any:
    # Its own: the walk creates and changes records.
    with st.Sandbox(rate_limit={"enabled": False}, report_limit={"enabled": False}, records=25) as sb:
        yield sb


def test_every_operation_is_called_by_its_python_name(own_sandbox: st.Sandbox) -> None:
    sandbox = own_sandbox
    tenant = sandbox.client(max_attempts=1).tenant(**sandbox.credentials(1001))
    ok, failed = 0, []  # type: int, List[str]
    assert len(TABLE["operations"]) == 563
    for op in TABLE["operations"]:
        route = f"{op['method']} {op['path']}"
        name = ".".join(op["python"])
        args, kwargs = arguments(tenant, op)
        before = routes(sandbox).get(route, 0)
        try:
            result = operation(tenant, op)(*args, **kwargs)
            if op["kind"] == "export":
                result = list(result)  # the feed fetches as it is read
        except st.ConfigurationError as e:
            pytest.fail(f"{name}: {e}")
        except st.ServiceTitanError as e:
            failed.append(f"{name}: {e}")
        else:
            ok += 1
            if op["kind"] == "list":
                assert isinstance(result, Page), name
                found = [v for r in result.data for v in violations(record_schema(op), r)]
            elif op["kind"] == "export":
                found = [v for r in result for v in violations(record_schema(op), r)]
            elif op["kind"] == "binary":
                assert isinstance(result, bytes) and result, name
                found = []
            elif op["kind"] == "redirect":
                # The file's URL, not followed: the sandbox serves the file there.
                assert isinstance(result, str) and result.startswith(sandbox.base_url), (name, result)
                with urllib.request.urlopen(result, timeout=10) as answer:
                    assert answer.status == 200 and answer.read(), name
                found = []
            else:
                found = violations(success_schema(op), result)
            assert not found, f"{name} breaks its schema: {found[:5]}"
        after = routes(sandbox).get(route, 0)
        assert after >= before + 1, f"{name} did not reach {route}"
        if op["kind"] != "export":
            assert after == before + 1, f"{name} reached {route} {after - before} times"
    print(f"563 of 563 operations reached by their Python names, {ok} answered 2xx (schema-valid)")
    assert not failed, f"{len(failed)} operations failed: {failed}"
    assert ok == 563


# ---------------------------------------------------------------------------------------------
# Names


def snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name.replace(".", "_"))
    return re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", s).lower()


def test_names_follow_the_rules() -> None:
    modules = {
        seg: info["spec"].removesuffix(".json").removesuffix("-v2") for seg, info in CATALOGUE["modules"].items()
    }
    expected = set()
    for op in CATALOGUE["operations"]:
        module = modules[op["module"]].replace("-", "_")
        parts = [snake(p) for p in op["id"].split("_", 1)]
        expected.add(".".join([module, *parts]))
    assert "crm.customers.get_list" in expected and "marketing_reputation.reviews" in expected
    assert "crm.export_customers.get_customers" in expected
    actual = [".".join(parts) for parts, _, _ in _native._operations()]
    assert len(actual) == len(set(actual)) == len(expected) == 563
    assert set(actual) == expected
    # Keywords take a trailing underscore; every name is an identifier.
    for op in TABLE["operations"]:
        for p in op["params"]:
            py = python_name(p)
            assert py.isidentifier() and not keyword.iskeyword(py), py
            assert py.rstrip("_") == snake(p["name"]), (py, p["name"])
    assert any(python_name(p) == "from_" for op in TABLE["operations"] for p in op["params"])


def test_every_name_resolves_to_an_operation_sync_and_async(sandbox: st.Sandbox) -> None:
    tenant = sandbox.client().tenant(**sandbox.credentials(1001))
    atenant = sandbox.async_client().tenant(**sandbox.credentials(1001))
    for parts, _, _ in _native._operations():
        assert "operation" in repr(operation(tenant, {"python": parts}))
        assert "async" in repr(operation(atenant, {"python": parts}))
    with pytest.raises(AttributeError, match="did you mean customers"):
        _ = tenant.crm.customer  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="did you mean crm"):
        _ = tenant.crn  # type: ignore[attr-defined]
    assert "customers" in dir(tenant.crm) and "get_list" in dir(tenant.crm.customers)


# ---------------------------------------------------------------------------------------------
# Results


def test_a_list_is_a_page_whose_iteration_reads_every_page(sandbox: st.Sandbox, tenant: st.Tenant) -> None:
    page = tenant.crm.customers.get_list(page_size=300, active="Any", include_total=True)
    assert (len(page.data), page.has_more, page.total_count, page.page, page.page_size) == (300, True, 1000, 1, 300)
    records = list(page)
    assert len(records) == 1000 and records[:300] == page.data
    assert len({r["id"] for r in records}) == 1000
    sandbox.reset_stats()
    # The first page once by the call, then pages 2 to 4 through the paginator.
    assert len(list(tenant.crm.customers.get_list(page_size=300, active="Any"))) == 1000
    assert routes(sandbox)["GET crm/v2/tenant/{tenant}/customers"] == 4
    # From a later page on.
    later = tenant.crm.customers.get_list(page=3, page_size=300, active="Any")
    assert [r["id"] for r in later] == [r["id"] for r in records[600:]]
    # An export: the engine's feed, resumable.
    feed = tenant.crm.export_customers.get_customers()
    assert len(list(feed)) == 1000
    checkpoint = feed.continue_from
    assert checkpoint and list(tenant.crm.export_customers.get_customers(since=checkpoint)) == []
    # A lookup agrees with the list; the raw entry point gives the same.
    assert tenant.crm.customers.get(records[5]["id"]) == records[5]
    assert tenant.call("crm.customers.get", {"id": records[5]["id"]}) == records[5]
    assert tenant.call("Customers_GetList", {"page_size": 2})["data"] == tenant.crm.customers.get_list(page_size=2).data


def test_bad_arguments_are_refused_before_anything_is_sent(sandbox: st.Sandbox, tenant: st.Tenant) -> None:
    customers: Any = tenant.crm.customers
    sandbox.reset_stats()
    cases: List[Tuple[Callable[[], Any], str, str]] = [
        (lambda: customers.get_list(pageSize=5), "pageSize", "did you mean page_size?"),
        (lambda: customers.get_list(page_sise=5), "page_sise", "did you mean page_size?"),
        (lambda: customers.get(), "id", "missing"),
        (lambda: customers.get("7"), "id", "takes an integer as id, not a string"),
        (lambda: customers.get_list(page_size=2.5), "page_size", "an integer"),
        (lambda: customers.get_list(active="Maybe"), "active", "one of True, Any, False"),
        (lambda: customers.get(1, 2), "crm.customers.get", "takes 1 positional argument (id), got 2"),
        (lambda: customers.get(1, id=2), "id", "by position and by keyword"),
        (lambda: customers.get_list(body={"x": 1}), "body", "takes no body"),
        (lambda: customers.get_list(since="x"), "since", "no parameter"),
        (lambda: tenant.call("crm.customer.get_list"), "operation", "did you mean crm.customers.get_list?"),
    ]
    for bad_call, argument, text in cases:
        with pytest.raises(st.ConfigurationError) as info:
            bad_call()
        assert info.value.argument == argument, (argument, info.value)
        assert text in str(info.value), (text, str(info.value))
    assert routes(sandbox) == {}


async def test_the_async_surface_is_the_same_awaited(sandbox: st.Sandbox) -> None:
    tenant = sandbox.async_client().tenant(**sandbox.credentials(1001))
    page = await tenant.crm.customers.get_list(page_size=400, active="Any")
    assert isinstance(page, AsyncPage) and len(page.data) == 400 and page.has_more
    ids = [c["id"] async for c in page]
    assert len(set(ids)) == 1000
    assert (await tenant.crm.customers.get(ids[1]))["id"] == ids[1]
    feed = await tenant.jpm.export.jobs()
    jobs = [j async for j in feed]
    assert len(jobs) == 1000 and feed.continue_from
    pages = await asyncio.gather(*(tenant.crm.customers.get_list(page=p, page_size=10) for p in (1, 2, 3)))
    assert [p.page for p in pages] == [1, 2, 3]
    with pytest.raises(st.ConfigurationError, match="did you mean page_size"):
        await tenant.crm.customers.get_list(pagesize=1)  # type: ignore[call-arg]


def test_modules_load_lazily() -> None:
    code = (
        "import sys, servicetitan as st\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.startswith('servicetitan.api'))\n"
        "print(loaded())\n"
        "with st.Sandbox() as sb:\n"
        "    t = sb.client().tenant(**sb.credentials(1001))\n"
        "    t.crm.customers.get_list(page_size=1)\n"
        "    print(loaded())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    # The typed modules are for type checkers and imports of the user's own: calls never load them.
    assert out.split("\n")[:2] == ["[]", "[]"], out


# ---------------------------------------------------------------------------------------------
# Types


def mypy(path: Path) -> Tuple[int, str]:
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--python-version", "3.10", "--no-incremental", str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=path.parent,
    )
    return run.returncode, run.stdout + run.stderr


def test_mypy_strict_passes_on_the_typed_example_and_catches_mistakes(tmp_path: Path) -> None:
    source = (Path(__file__).parent / "typed_example.py").read_text()
    calls = re.findall(r"tenant\.(\w+)\.(\w+)\.?(\w*)\(", source)
    assert len(set(calls)) >= 20 and len({c[0] for c in calls}) >= 10, calls
    good = tmp_path / "good.py"
    good.write_text(source)
    code, out = mypy(good)
    assert code == 0, out

    # Each mistake in its own copy: mypy must catch every one of them.
    mistakes = [
        ('page_size=5, active="Any"', 'page_size="5", active="Any"', 'Argument "page_size" to "get_list"'),
        ('page_size=5, active="Any"', 'page_size=5, active="Maybe"', "Literal['Maybe']"),
        ('c["name"] for c in page', 'c["nmae"] for c in page', 'TypedDict "CustomerResponse" has no key "nmae"'),
        ("tenant.crm.customers.get(first", "tenant.crm.customer.get(first", '"Crm" has no attribute "customer"'),
        ("name: str = tenant", "name: int = tenant", "Incompatible types in assignment"),
        ('"name": "Ada Lovelace",', "", 'Missing key "name" for TypedDict "CreateCustomerRequest"'),
        ("jobs.get_list(page_size=3)", "jobs.get_list(page_sise=3)", 'Unexpected keyword argument "page_sise"'),
        ("appointments.get(1)", 'appointments.get("1")', 'Argument 1 to "get" of "JpmAppointments"'),
    ]
    for i, (good_text, bad_text, needle) in enumerate(mistakes):
        assert good_text in source, good_text
        bad = tmp_path / f"bad{i}.py"
        bad.write_text(source.replace(good_text, bad_text, 1))
        code, out = mypy(bad)
        assert code == 1 and needle in out, (bad_text, out)


def test_records_types_follow_the_spec() -> None:
    """A promised field is required in the TypedDict, an optional one NotRequired, nullable Optional."""
    stub = (ROOT / "python/servicetitan/api/crm.pyi").read_text()
    block = stub.split("class CustomerResponse(TypedDict):")[1].split("\n\n")[0]
    assert "\n    name: str" in block and "\n    id: int" in block
    assert "creditLimit: NotRequired[Optional[float]]" in block


def first_line(path: Path) -> Optional[str]:
    with path.open() as f:
        return f.readline()


def test_generated_files_say_so() -> None:
    for path in sorted((ROOT / "python/servicetitan/api").iterdir()):
        assert "generated by tools/gen_operations.py" in (first_line(path) or ""), path
