"""Process-level behaviour: fork (os.fork and multiprocessing's fork start method) and Ctrl-C.

Each case runs in a child interpreter with a hard timeout, so a hang fails the test instead of
stalling the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork and SIGINT are POSIX")


def run_script(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ST_")}
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "OK" in result.stdout, result.stdout + result.stderr


def test_a_client_used_before_fork_works_in_the_child_and_the_parent() -> None:
    assert_ok(
        run_script(
            """
            import os, asyncio, warnings
            import servicetitan as st
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads

            with st.Sandbox() as sandbox:
                client = sandbox.client()
                tenant = client.tenant(**sandbox.credentials())
                assert tenant.get("crm/customers")["data"]          # the runtime and pool are warm
                stream = tenant.paginate("crm/customers", page_size=10)
                next(stream)                                         # a prefetch is in flight

                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        assert tenant.get("crm/customers", params={"pageSize": 2})["data"]
                        assert sum(1 for _ in tenant.paginate("crm/customers", page_size=300)) > 0
                        async def main():
                            at = sandbox.async_client().tenant(**sandbox.credentials())
                            return await at.get("crm/customers", params={"pageSize": 1})
                        assert asyncio.run(main())["data"]
                        try:
                            for _ in stream:  # the buffered page, then the parent's prefetch
                                pass
                            raise SystemExit("a stream from before the fork ran in the child")
                        except st.ConfigurationError as e:
                            assert "before the process forked" in str(e)
                        try:
                            sandbox.stats()
                            raise SystemExit("the parent's sandbox answered in the child")
                        except st.ConfigurationError as e:
                            assert "parent" in str(e)
                        code = 0
                    finally:
                        os._exit(code)
                _, status = os.waitpid(pid, 0)
                assert os.waitstatus_to_exitcode(status) == 0, status
                # The parent carries on with its own runtime and connections.
                assert tenant.get("crm/customers")["data"]
                assert sum(1 for _ in stream) > 0
                print("OK")
            """
        )
    )


def test_multiprocessing_with_the_fork_start_method() -> None:
    assert_ok(
        run_script(
            """
            import multiprocessing as mp, warnings
            import servicetitan as st
            warnings.simplefilter("ignore", DeprecationWarning)

            sandbox = st.Sandbox()
            tenant = sandbox.client().tenant(**sandbox.credentials())

            def work(page):
                return [c["id"] for c in tenant.get("crm/customers", params={"page": page, "pageSize": 5})["data"]]

            if __name__ == "__main__":
                tenant.get("crm/customers")
                with mp.get_context("fork").Pool(3) as pool:
                    ids = [i for chunk in pool.map(work, range(1, 7)) for i in chunk]
                assert len(ids) == len(set(ids)) == 30, ids
                assert tenant.get("crm/customers")["data"]
                sandbox.close()
                print("OK")
            """
        )
    )


def test_errors_cross_process_boundaries() -> None:
    assert_ok(
        run_script(
            """
            import multiprocessing as mp, warnings
            import servicetitan as st
            warnings.simplefilter("ignore", DeprecationWarning)

            sandbox = st.Sandbox()
            tenant = sandbox.client().tenant(**sandbox.credentials())

            def fail(_):
                tenant.get("crm/customers/999999999")

            if __name__ == "__main__":
                with mp.get_context("fork").Pool(1) as pool:
                    try:
                        pool.map(fail, [1])
                    except st.NotFoundError as e:
                        assert e.status == 404 and e.trace_id and e.method == "GET", vars(e)
                        print("OK")
            """
        )
    )


CTRL_C = """
    import os, signal, sys, threading, time
    import servicetitan as st

    # A shell that starts tests in the background hands them SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: install it, so the test does not depend on that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with st.Sandbox() as sandbox:
        client = sandbox.client({client_args})
        tenant = client.tenant(**sandbox.credentials())
        tenant.get("crm/customers")
        {setup}
        sent = []
        def interrupt():
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)
        threading.Timer(0.5, interrupt).start()
        try:
            tenant.get("crm/customers")
            raise SystemExit("the call was not interrupted")
        except KeyboardInterrupt:
            waited = time.monotonic() - sent[0]
            assert waited < 1.0, f"interrupted {{waited:.2f}} s after Ctrl-C"
        # The interrupted call is cancelled: it never reaches the server afterwards.
        time.sleep({settle})
        sandbox.clear_faults()
        seen = sandbox.stats()["routes"]["GET crm/v2/tenant/{{tenant}}/customers"]
        assert seen == {seen}, seen
        print("OK")
"""


def test_ctrl_c_interrupts_a_call_waiting_on_the_network() -> None:
    setup = 'sandbox.add_fault(route="crm/*", method="GET", delay_ms=30000, status=None)'
    # The server saw the delayed call arrive (2 = warm-up + interrupted), and nothing after.
    assert_ok(run_script(CTRL_C.format(client_args="", setup=setup, settle=0.5, seen=2)))


def test_ctrl_c_interrupts_a_call_waiting_on_the_rate_limiter() -> None:
    args = "rate_limit_calls=1, rate_limit_period=3.0, rate_limit_margin=0.0"
    # The interrupted call never got its slot, so only the warm-up reached the server.
    assert_ok(run_script(CTRL_C.format(client_args=args, setup="", settle=3.0, seen=1)))


def test_the_interpreter_exits_cleanly_after_asyncio_calls_end_at_their_deadlines() -> None:
    # The asyncio bridge calls into Python after a result is delivered; an interpreter that
    # finalized meanwhile crashed (segfault or abort) in about one exit in three before the exit
    # hook that waits for those calls. Several runs make a regression visible.
    import servicetitan as st

    script = """
        import asyncio, time
        import servicetitan as st

        async def main():
            tenant = st.AsyncClient().tenant()
            end = time.time() + 1.0
            async def worker():
                while (left := end - time.time()) > 0:
                    try:
                        await tenant.get("crm/customers", params={"pageSize": 1}, timeout=left)
                    except st.APITimeoutError:
                        pass
            await asyncio.gather(*(worker() for _ in range(8)))

        asyncio.run(main())
        print("clean exit")
    """
    with st.Sandbox() as sandbox:
        env = {
            **os.environ,
            "ST_APP_KEY": sandbox.app_key,
            "ST_AUTH_URL": sandbox.auth_url,
            "ST_API_URL": sandbox.api_url,
            "ST_TENANT_ID": "1001",
            "ST_CLIENT_ID": "cid.sandbox.1001",
            "ST_CLIENT_SECRET": "cs1.sandbox-secret-1001",
            "ST_RATE_LIMIT_PER_SECOND": "20",
        }
        for run in range(8):
            result = subprocess.run(
                [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60, env=env
            )
            assert result.returncode == 0 and "clean exit" in result.stdout, (
                f"run {run + 1}: exit code {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
