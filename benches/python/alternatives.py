"""What a Python user would write instead of servicetitan: httpx or requests with hand-written
client-credentials token handling (fetch, cache until shortly before expiry, refetch on 401)."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, Optional

import httpx
import requests


class TokenCache:
    """One token per client id, refreshed 60 s before expiry; a lock so threads fetch once."""

    def __init__(self, token_url: str, client_id: str, client_secret: str) -> None:
        self.token_url = token_url
        self.form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        self.token: Optional[str] = None
        self.expires = 0.0
        self.lock = threading.Lock()

    def get(self, fetch: Any) -> str:
        with self.lock:
            if self.token is None or time.monotonic() > self.expires - 60:
                body = fetch(self.token_url, self.form)
                self.token = body["access_token"]
                self.expires = time.monotonic() + float(body.get("expires_in", 900))
            return self.token

    def invalidate(self) -> None:
        with self.lock:
            self.token = None


class HttpxTenant:
    def __init__(self, client: httpx.Client, base: str, app_key: str, tenant: int, tokens: TokenCache) -> None:
        self.client, self.base, self.app_key, self.tenant, self.tokens = client, base, app_key, tenant, tokens

    def _fetch_token(self, url: str, form: Dict[str, str]) -> Any:
        r = self.client.post(url, data=form)
        r.raise_for_status()
        return r.json()

    def get(self, path: str, params: Optional[Dict[str, Any]] = None) -> httpx.Response:
        module, rest = path.split("/", 1)
        url = f"{self.base}/{module}/v2/tenant/{self.tenant}/{rest}"
        for _ in range(2):
            headers = {"Authorization": f"Bearer {self.tokens.get(self._fetch_token)}", "ST-App-Key": self.app_key}
            r = self.client.get(url, params=params, headers=headers)
            if r.status_code == 401:
                self.tokens.invalidate()
                continue
            r.raise_for_status()
            return r
        raise RuntimeError("unauthorized")


class HttpxAsyncTenant:
    def __init__(self, client: httpx.AsyncClient, base: str, app_key: str, tenant: int, tokens: TokenCache) -> None:
        self.client, self.base, self.app_key, self.tenant, self.tokens = client, base, app_key, tenant, tokens
        self.token: Optional[str] = None

    async def token_(self) -> str:
        # Single-threaded event loop: no lock needed, but concurrent first calls would each fetch;
        # fetch once up front as a careful user would.
        if self.token is None:
            r = await self.client.post(self.tokens.token_url, data=self.tokens.form)
            r.raise_for_status()
            self.token = r.json()["access_token"]
        return self.token

    async def get(self, path: str, params: Optional[Dict[str, Any]] = None) -> httpx.Response:
        module, rest = path.split("/", 1)
        url = f"{self.base}/{module}/v2/tenant/{self.tenant}/{rest}"
        for _ in range(2):
            headers = {"Authorization": f"Bearer {await self.token_()}", "ST-App-Key": self.app_key}
            r = await self.client.get(url, params=params, headers=headers)
            if r.status_code == 401:
                self.token = None
                continue
            r.raise_for_status()
            return r
        raise RuntimeError("unauthorized")


class RequestsTenant:
    """requests.Session is not documented as thread-safe: one session per thread."""

    def __init__(self, base: str, app_key: str, tenant: int, tokens: TokenCache) -> None:
        self.base, self.app_key, self.tenant, self.tokens = base, app_key, tenant, tokens
        self.local = threading.local()

    @property
    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        s: requests.Session = self.local.session
        return s

    def _fetch_token(self, url: str, form: Dict[str, str]) -> Any:
        r = self.session.post(url, data=form)
        r.raise_for_status()
        return r.json()

    def get(self, path: str, params: Optional[Dict[str, Any]] = None) -> requests.Response:
        module, rest = path.split("/", 1)
        url = f"{self.base}/{module}/v2/tenant/{self.tenant}/{rest}"
        for _ in range(2):
            headers = {"Authorization": f"Bearer {self.tokens.get(self._fetch_token)}", "ST-App-Key": self.app_key}
            r = self.session.get(url, params=params, headers=headers)
            if r.status_code == 401:
                self.tokens.invalidate()
                continue
            r.raise_for_status()
            return r
        raise RuntimeError("unauthorized")
