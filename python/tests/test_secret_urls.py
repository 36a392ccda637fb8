"""Secrets in URLs (userinfo, query-string passwords, URLs that do not parse) never appear in an
error's message, ``str`` or ``repr``, nor in the ``servicetitan`` log: ``auth_url``, ``api_url``
and ``redis_url``, refused at once or unreachable. Needs no Redis: nothing listens where they point."""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List

import pytest

import servicetitan as st

SECRET = "S3cr3tPw"

BAD_BASE_URLS = [
    "http://user:S3cr3tPw@auth.example.com",
    "ftp://user:S3cr3tPw@auth.example.com",
    "https://user:S3cr3tPw@auth.example.com",
    "https://S3cr3tPw@auth.example.com",
    "http://user:S3cr3tPw@127.0.0.1:9",
    "https://auth.example.com/?token=S3cr3tPw",
    "https://auth.example.com/?Client_Secret=S3cr3tPw&x=1",
    "https://auth.example.com/#access_token=S3cr3tPw",
    "https://user:S3cr3tPw@auth.example.com:99999",
    "https://user:S3cr3tPw@bad host.example.com",
    "https://user:S3cr3tPw/x@auth.example.com",
    "user:S3cr3tPw@auth.example.com",
    "S3cr3tPw",
]

BAD_REDIS_URLS = [
    "nope://:S3cr3tPw@cache.example.com",
    "redis://:S3cr3tPw@cache.example.com:99999",
    "rediss://user:S3cr3tPw@cache.example.com#insecure",
    "redis://:S3cr3tPw@0.0.0.0",
    "redis://:S3cr3tPw@cache.example.com/not-a-db",
    "redis+unix:///run/redis.sock?pass=S3cr3tPw&db=x",
    "unix:///run/redis.sock?PASS=S3cr3tPw&db=x",
    "redis:S3cr3tPw@cache.example.com",
    "S3cr3tPw",
]

MAKERS: List[Callable[..., Any]] = [st.Client, st.AsyncClient]


def assert_hidden(error: BaseException, logs: str) -> None:
    for text in (str(error), repr(error), repr(error.args), logs):
        assert SECRET not in text, text


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="servicetitan")
    return caplog


@pytest.mark.parametrize("url", BAD_BASE_URLS)
@pytest.mark.parametrize("argument", ["auth_url", "api_url"])
@pytest.mark.parametrize("make", MAKERS)
def test_a_bad_base_url_is_refused_without_its_secret(
    make: Callable[..., Any], argument: str, url: str, logs: pytest.LogCaptureFixture
) -> None:
    settings: Dict[str, str] = {"auth_url": "https://auth.example.com", "api_url": "https://api.example.com"}
    settings[argument] = url
    with pytest.raises(st.ConfigurationError) as info:
        make(app_key="ak1.x", **settings)
    assert info.value.argument == argument
    assert_hidden(info.value, logs.text)


@pytest.mark.parametrize("url", BAD_BASE_URLS)
def test_a_bad_base_url_from_the_environment_is_refused_without_its_secret(
    url: str, logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ST_APP_KEY", "ak1.x")
    monkeypatch.setenv("ST_AUTH_URL", url)
    monkeypatch.setenv("ST_API_URL", "https://api.example.com")
    with pytest.raises(st.ConfigurationError) as info:
        st.Client.from_env()
    assert_hidden(info.value, logs.text)


@pytest.mark.parametrize("url", BAD_REDIS_URLS)
@pytest.mark.parametrize("make", MAKERS)
def test_a_bad_redis_url_is_refused_without_its_secret(
    make: Callable[..., Any], url: str, logs: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(st.ConfigurationError) as info:
        make(app_key="ak1.x", redis_url=url)
    assert info.value.argument == "redis_url"
    assert_hidden(info.value, logs.text)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:S3cr3tPw@127.0.0.1:1/0", "redis://***:***@127.0.0.1:1/0"),
        ("redis+unix:///nonexistent/redis.sock?pass=S3cr3tPw", "redis+unix:///nonexistent/redis.sock?pass=***"),
    ],
)
def test_an_unreachable_redis_is_named_without_its_secret(
    sandbox: st.Sandbox, url: str, shown: str, logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ST_REDIS_WAIT_SECS", "0.3")
    client = sandbox.client(redis_url=url)
    assert SECRET not in repr(client)
    tenant = client.tenant(**sandbox.credentials(1001))
    with pytest.raises(st.APIConnectionError) as info:
        tenant.get("crm/customers")
    assert f"Redis at {shown}" in str(info.value)
    assert "Redis failed; retrying" in logs.text, "the retries are logged"
    assert_hidden(info.value, logs.text)
