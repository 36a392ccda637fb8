"""Runs the shared behavioural scenarios of tests/scenarios.json through the Python package.

The same file drives the Rust and Node suites; see its `vocabulary` for the meaning of each key.
A scenario runs with the blocking `Client` (threads for concurrency) or the `AsyncClient`
(tasks for concurrency). Unknown keys fail the run, so a new kind of step is never skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import servicetitan as st

SCENARIOS_FILE = Path(__file__).resolve().parents[2] / "tests" / "scenarios.json"


def load() -> Dict[str, Any]:
    data: Dict[str, Any] = json.loads(SCENARIOS_FILE.read_text())
    assert data["version"] == 1, "a runner for scenarios version 1"
    return data


def merged(defaults: Dict[str, Any], overrides: Dict[str, Any]) -> Dict[str, Any]:
    """Overrides over defaults, one level deep (a dict value is merged, anything else replaced)."""
    out = dict(defaults)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


_CLIENT_KEYS = {
    "app_key": ("app_key", 1),
    "auth_url": ("auth_url", 1),  # None: no URL given
    "api_url": ("api_url", 1),
    "environment": ("environment", 1),
    "max_attempts": ("max_attempts", 1),
    "rate_limit_calls": ("rate_limit_calls", 1),
    "rate_limit_period_ms": ("rate_limit_period", 1000),
    "report_rate_limit_calls": ("report_rate_limit_calls", 1),
    "report_rate_limit_period_ms": ("report_rate_limit_period", 1000),
    "backoff_base_ms": ("backoff_base", 1000),
    "backoff_max_ms": ("backoff_max", 1000),
    "attempt_timeout_ms": ("attempt_timeout", 1000),
    "timeout_ms": ("timeout", 1000),
}


def client_kwargs(settings: Dict[str, Any]) -> Dict[str, Any]:
    """The scenario's language-neutral client settings as Client keyword arguments."""
    kwargs: Dict[str, Any] = {}
    for key, value in settings.items():
        if key == "limits_off":
            if value:
                kwargs["rate_limit_calls"] = 0
                kwargs["report_rate_limit_calls"] = 0
            continue
        name, divisor = _CLIENT_KEYS[key]  # KeyError: a setting this runner does not know
        kwargs[name] = value / divisor if divisor != 1 else value
    return kwargs


def pointer(document: Any, path: str) -> Any:
    """RFC 6901 JSON pointer; None when absent."""
    if path == "":
        return document
    node = document
    for raw in path.lstrip("/").split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def compare(what: str, actual: Any, condition: Dict[str, Any]) -> None:
    for op, expected in condition.items():
        if op == "eq":
            assert actual == expected, f"{what}: {actual!r} != {expected!r}"
        elif op == "gte":
            assert actual >= expected, f"{what}: {actual!r} < {expected!r}"
        elif op == "lte":
            assert actual <= expected, f"{what}: {actual!r} > {expected!r}"
        else:
            raise AssertionError(f"{what}: unknown comparator {op!r}")


def check_error(what: str, error: Optional[BaseException], expected: Dict[str, Any]) -> None:
    assert error is not None, f"{what}: expected a {expected.get('code')} error, the call succeeded"
    assert isinstance(error, st.ServiceTitanError), f"{what}: {error!r} is not a ServiceTitanError"
    message = str(error)
    for key, value in expected.items():
        if key == "code":
            assert error.code == value, f"{what}: code {error.code!r} != {value!r} ({message})"
            assert type(error) is st.errors.CLASSES_BY_CODE[value], f"{what}: class {type(error).__name__}"
        elif key == "status":
            assert error.status == value, f"{what}: status {error.status!r} != {value!r} ({message})"
        elif key == "title_contains":
            assert value in (error.title or ""), f"{what}: title {error.title!r} lacks {value!r}"
        elif key == "message_contains":
            assert value in message, f"{what}: {message!r} lacks {value!r}"
        elif key == "message_lacks":
            assert value not in message and value not in repr(error), f"{what}: {message!r} shows {value!r}"
        elif key == "has_trace_id":
            assert bool(error.trace_id) == value, f"{what}: trace_id {error.trace_id!r}"
        elif key == "errors_has":
            assert value in error.errors, f"{what}: field errors {error.errors!r} lack {value!r}"
        elif key == "errors_nonempty":
            assert bool(error.errors) == value, f"{what}: field errors {error.errors!r}"
        elif key == "method":
            assert error.method == value, f"{what}: method {error.method!r}"
        elif key == "url_ends_with":
            assert (error.url or "").endswith(value), f"{what}: url {error.url!r}"
        else:
            raise AssertionError(f"{what}: unknown error expectation {key!r}")


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class Run:
    """One scenario against one sandbox, with a blocking or an asyncio client."""

    def __init__(self, scenario: Dict[str, Any], defaults: Dict[str, Any], use_async: bool) -> None:
        self.scenario = scenario
        self.use_async = use_async
        self.sandbox_options = merged(defaults["sandbox"], scenario.get("sandbox", {}))
        self.client_settings = merged(defaults["client"], scenario.get("client", {}))
        self.texts: List[str] = []  # every repr/str shown, for secrets_absent
        self.loop: Optional[asyncio.AbstractEventLoop] = None

    # -- plumbing ------------------------------------------------------------------------------

    def make_client(self, sandbox: st.Sandbox, settings: Dict[str, Any]) -> Any:
        kwargs: Dict[str, Any] = {"app_key": sandbox.app_key, "auth_url": sandbox.auth_url, "api_url": sandbox.api_url}
        kwargs.update(client_kwargs(settings))
        client = (st.AsyncClient if self.use_async else st.Client)(**kwargs)
        self.texts.append(repr(client))
        return client

    def tenant(self, step: Dict[str, Any]) -> Any:
        tenant_id = step["tenant"]
        creds = self.sandbox.credentials(tenant_id)
        for key in ("client_id", "client_secret"):
            if key in step:
                creds[key] = step[key]
        cache_key = (creds["tenant_id"], creds["client_id"], creds["client_secret"])
        if cache_key not in self.tenants:
            tenant = self.client.tenant(**creds)
            self.texts.append(repr(tenant))
            self.tenants[cache_key] = tenant
        return self.tenants[cache_key]

    def call_args(self, step: Dict[str, Any]) -> Tuple[str, str, Dict[str, Any]]:
        method = step["method"].lower()
        kwargs: Dict[str, Any] = {}
        if "params" in step:
            kwargs["params"] = step["params"]
        if "json" in step:
            kwargs["json"] = step["json"]
        if step.get("safe_to_retry"):
            kwargs["safe_to_retry"] = True
        return method, step["path"], kwargs

    def run_call(self, step: Dict[str, Any]) -> Any:
        """One call, blocking or awaited; returns the parsed body."""
        method, path, kwargs = self.call_args(step)
        bound = getattr(self.tenant(step), method)
        if self.use_async:
            return self.await_(lambda: bound(path, **kwargs))
        return bound(path, **kwargs)

    def await_(self, make: Callable[[], Any]) -> Any:
        """Runs make() inside the loop (the native calls look for the running loop) and awaits it."""
        assert self.loop is not None

        async def inside() -> Any:
            return await make()

        return self.loop.run_until_complete(inside())

    def concurrently(self, count: int, job: Callable[[int], Any]) -> List[Any]:
        """count jobs at once: threads (blocking client) or tasks (asyncio client)."""
        if self.use_async:

            async def gather() -> List[Any]:
                return list(await asyncio.gather(*(job(i) for i in range(count))))

            return list(self.await_(gather))
        with ThreadPoolExecutor(max_workers=min(count, 64)) as pool:
            return list(pool.map(job, range(count)))

    def record_error(self, error: BaseException) -> None:
        self.texts.append(str(error))
        self.texts.append(repr(error))
        self.texts.append(repr(getattr(error, "__dict__", {})))

    # -- steps ---------------------------------------------------------------------------------

    def step_call(self, step: Dict[str, Any], expect: Dict[str, Any]) -> Dict[str, Any]:
        started = time.monotonic()
        body, error = None, None
        try:
            body = self.run_call(step)
        except st.ServiceTitanError as e:
            error = e
            self.record_error(e)
        elapsed_ms = (time.monotonic() - started) * 1000
        if "error" in expect:
            check_error(f"{step['method']} {step['path']}", error, expect["error"])
        elif expect.get("ok", True):
            assert error is None, f"{step['method']} {step['path']} failed: {error!r}"
        return {"body": body, "elapsed_ms": elapsed_ms}

    def step_burst(self, step: Dict[str, Any], expect: Dict[str, Any]) -> Dict[str, Any]:
        tenant = self.tenant(step)
        method, path, kwargs = self.call_args(step)
        started = time.monotonic()
        if self.use_async:

            async def one_async(_: int) -> Any:
                return await getattr(tenant, method)(path, **kwargs)

            results = self.concurrently(step["count"], one_async)
        else:
            results = self.concurrently(step["count"], lambda _: getattr(tenant, method)(path, **kwargs))
        assert len(results) == step["count"]
        return {"elapsed_ms": (time.monotonic() - started) * 1000}

    def step_saturate(self, step: Dict[str, Any], expect: Dict[str, Any]) -> Dict[str, Any]:
        tenants = [self.tenant({"tenant": t}) for t in step["tenants"]]
        path, params = step["path"], step.get("params")
        workers = step["workers_per_tenant"]
        duration = step["duration_ms"] / 1000
        # Warm the token and a connection, then let the warm-up call's window pass.
        for t in tenants:
            self.run_on(t, path, params)
        time.sleep(1.1)
        counts = [0] * len(tenants)
        if self.use_async:

            async def worker_async(i: int) -> None:
                t, deadline = tenants[i % len(tenants)], time.monotonic() + duration
                while time.monotonic() < deadline:
                    await t.get(path, params=params)
                    if time.monotonic() <= deadline:
                        counts[i % len(tenants)] += 1

            self.concurrently(len(tenants) * workers, worker_async)
        else:
            lock = threading.Lock()
            deadline = time.monotonic() + duration

            def worker(i: int) -> None:
                t = tenants[i % len(tenants)]
                while time.monotonic() < deadline:
                    t.get(path, params=params)
                    if time.monotonic() <= deadline:
                        with lock:
                            counts[i % len(tenants)] += 1

            self.concurrently(len(tenants) * workers, worker)
        return {"rates": [c / duration for c in counts]}

    def run_on(self, tenant: Any, path: str, params: Any) -> Any:
        if self.use_async:
            return self.await_(lambda: tenant.get(path, params=params))
        return tenant.get(path, params=params)

    def step_paced(self, step: Dict[str, Any], expect: Dict[str, Any]) -> Dict[str, Any]:
        tenant = self.tenant(step)
        path, params = step["path"], step.get("params")
        duration, pause = step["duration_ms"] / 1000, step["pause_ms"] / 1000
        started = time.monotonic()
        if self.use_async:

            async def worker_async(_: int) -> int:
                calls = 0
                while time.monotonic() - started < duration:
                    await tenant.get(path, params=params)
                    calls += 1
                    await asyncio.sleep(pause)
                return calls

            calls = self.concurrently(step["workers"], worker_async)
        else:

            def worker(_: int) -> int:
                calls = 0
                while time.monotonic() - started < duration:
                    tenant.get(path, params=params)
                    calls += 1
                    time.sleep(pause)
                return calls

            calls = self.concurrently(step["workers"], worker)
        assert sum(calls) > 50, f"only {sum(calls)} calls in {duration} s"
        return {}

    def collect(self, records: Any, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        if self.use_async:

            async def take() -> None:
                async for r in records:
                    out.append(r)
                    if limit is not None and len(out) >= limit:
                        return

            self.await_(take)
        else:
            for r in records:
                out.append(r)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def step_paginate(self, step: Dict[str, Any], expect: Dict[str, Any]) -> Dict[str, Any]:
        tenant = self.tenant(step)
        records = self.collect(tenant.paginate(step["path"], params=step.get("params"), page_size=step["page_size"]))
        return {"records": records}

    def step_export_resume(self, step: Dict[str, Any], expect: Dict[str, Any]) -> Dict[str, Any]:
        tenant = self.tenant(step)
        everything = {r["id"] for r in self.collect(tenant.export(step["path"]))}
        feed = tenant.export(step["path"])
        assert feed.continue_from is None
        before: List[Dict[str, Any]] = []
        checkpoint = None
        # One record at a time, to look at the checkpoint between records.
        for n in range(1, step["read"] + 1):
            before.extend(self.collect(feed, limit=1))
            if n == step["checkpoint_after"]:
                checkpoint = feed.continue_from
        assert checkpoint is not None
        moved = feed.continue_from != checkpoint
        del feed
        resumed = self.collect(tenant.export(step["path"], since=checkpoint))
        combined = [r["id"] for r in before[: step["checkpoint_after"]]] + [r["id"] for r in resumed]
        return {
            "total": len(everything),
            "lost": len(everything - set(combined)),
            "doubled": len(combined) - len(set(combined)),
            "checkpoint_moved_mid_page": moved,
        }

    def step_report(self, step: Dict[str, Any], expect: Dict[str, Any]) -> Dict[str, Any]:
        tenant = self.tenant(step)
        started = time.monotonic()

        def run(_: int) -> Any:
            return tenant.report(step["category"], step["report_id"], parameters=step["parameters"])

        if self.use_async:

            async def run_async(i: int) -> Any:
                return await run(i)

            results = self.concurrently(step["count"], run_async)
        else:
            results = self.concurrently(step["count"], run)
        return {"rows": [len(r) for r in results], "elapsed_ms": (time.monotonic() - started) * 1000}

    def step_make_client(self, step: Dict[str, Any], expect: Dict[str, Any]) -> Dict[str, Any]:
        error = None
        try:
            client = self.make_client(self.sandbox, merged(self.client_settings, step.get("client", {})))
            if any(k in step for k in ("tenant_id", "client_id", "client_secret")):
                creds = self.sandbox.credentials(1001)
                creds.update({k: step[k] for k in ("tenant_id", "client_id", "client_secret") if k in step})
                client.tenant(**creds)
        except st.ServiceTitanError as e:
            error = e
            self.record_error(e)
        if "error" in expect:
            check_error(f"make_client {step}", error, expect["error"])
        else:
            assert error is None, repr(error)
        return {}

    # -- checks --------------------------------------------------------------------------------

    def check(self, expect: Dict[str, Any], outcome: Dict[str, Any]) -> None:
        for key, condition in expect.items():
            if key in ("ok", "error"):
                continue  # checked by the step itself
            if key == "stats":
                stats = self.sandbox.stats()
                for c in condition:
                    c = dict(c)
                    if "pointer" in c:
                        where = c.pop("pointer")
                        value = pointer(stats, where)
                    else:
                        where = c.pop("route")
                        value = stats["routes"].get(where)
                    compare(f"sandbox stats {where}", value or 0, c)
            elif key == "client_stats":
                stats = self.client.stats()
                for name, c in condition.items():
                    value = stats["throttle_wait_s"] * 1000 if name == "throttle_wait_ms" else stats[name]
                    compare(f"client stats {name}", value, c)
            elif key == "elapsed_ms":
                compare("elapsed ms", outcome["elapsed_ms"], condition)
            elif key == "body":
                for where, c in condition.items():
                    compare(f"body {where}", pointer(outcome["body"], where), c)
            elif key == "rate_per_tenant":
                for rate in outcome["rates"]:
                    compare("calls per second per tenant", rate, condition)
            elif key == "count":
                compare("records", len(outcome["records"]), condition)
            elif key == "unique":
                values = [r[condition] for r in outcome["records"]]
                assert len(values) == len(set(values)), f"a record arrived twice ({condition})"
            elif key == "rows_each":
                for rows in outcome["rows"]:
                    compare("rows of a report run", rows, condition)
            elif key in ("total", "lost", "doubled"):
                compare(key, outcome[key], condition)
            elif key == "checkpoint_moved_mid_page":
                assert outcome[key] == condition, f"{key}: {outcome[key]}"
            else:
                raise AssertionError(f"unknown expectation {key!r}")

    def run(self) -> None:
        steps: Dict[str, Callable[[Dict[str, Any], Dict[str, Any]], Dict[str, Any]]] = {
            "call": self.step_call,
            "burst": self.step_burst,
            "saturate": self.step_saturate,
            "paced": self.step_paced,
            "paginate": self.step_paginate,
            "export_resume": self.step_export_resume,
            "report": self.step_report,
            "make_client": self.step_make_client,
        }
        capture = LogCapture()
        logger = logging.getLogger("servicetitan")
        old_level = logger.level
        logger.addHandler(capture)
        logger.setLevel(logging.DEBUG)
        if self.use_async:
            self.loop = asyncio.new_event_loop()
        try:
            with st.Sandbox(**self.sandbox_options) as sandbox:
                self.sandbox = sandbox
                self.client = self.make_client(sandbox, self.client_settings)
                self.tenants: Dict[Tuple[int, str, str], Any] = {}
                for step in self.scenario["steps"]:
                    step = dict(step)
                    expect = step.pop("expect", {})
                    assert len(step) == 1, f"one action per step: {sorted(step)}"
                    ((kind, args),) = step.items()
                    if kind == "sandbox":
                        op = args["op"]
                        assert op in ("revoke_tokens", "clear_faults", "reset_stats"), op
                        getattr(sandbox, op)()
                    elif kind == "fault":
                        sandbox.add_fault(**args)
                    elif kind == "sleep_ms":
                        time.sleep(args / 1000)
                    else:
                        outcome = steps[kind](args, expect)
                        self.check(expect, outcome)
        finally:
            logger.removeHandler(capture)
            logger.setLevel(old_level)
            if self.loop is not None:
                self.loop.close()
        secrets = self.scenario.get("expect", {}).get("secrets_absent", [])
        for text in [*self.texts, *capture.lines]:
            for secret in secrets:
                assert secret not in text, f"{secret!r} shown in {text!r}"
        if secrets:
            assert capture.lines, "the scenario logged nothing: the secrets check would be void"
