"""A hostile HTTP server on loopback, for the shared cases of tests/hostile.json.

It plays both the token endpoint (POST .../connect/token) and the API (every other path) from a
case's replies, on raw sockets so that it can do what no well-behaved server library allows:
bare CRs in headers, floods of headers, stalls, resets, bodies dripped a byte at a time or never
ending, a Content-Length that lies, gzip bombs. One request per connection (``Connection:
close``). A capture server on another port counts connections: redirects point there, and it
must never see one.
"""

from __future__ import annotations

import http
import json
import socket
import struct
import threading
import time
import zlib
from typing import Any, Dict, List, Optional, Tuple

NORMAL_TOKEN: Dict[str, Any] = {"status": 200, "json": {"access_token": "tok-N", "expires_in": 900}}
NORMAL_PAGE: Dict[str, Any] = {
    "status": 200,
    "json": {"page": 1, "pageSize": 1, "hasMore": False, "data": [{"id": 1}]},
}
REPLY_KEYS = {
    "status",
    "headers",
    "json",
    "text",
    "redirect",
    "body_bytes",
    "endless",
    "content_length",
    "gzip_zeros",
    "body_hex",
    "nested",
    "raw_head",
    "headers_flood",
    "stall",
    "reset",
    "drip_ms",
}
MAX_REQUEST_HEAD = 64 * 1024


def expand(value: Any) -> Any:
    """A json reply with every '@N' string replaced by N letters 'x'."""
    if isinstance(value, str) and value.startswith("@") and value[1:].isdigit():
        return "x" * int(value[1:])
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v) for v in value]
    return value


_GZIP_CACHE: Dict[int, bytes] = {}


def gzip_of_zeros(n: int) -> bytes:
    """The gzip of n zero bytes, made in slices so that memory stays small."""
    if n not in _GZIP_CACHE:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        parts = [header]
        block = bytes(1 << 20)
        left = n
        crc = 0
        while left:
            piece = block[: min(left, len(block))]
            parts.append(compressor.compress(piece))
            crc = zlib.crc32(piece, crc)
            left -= len(piece)
        parts.append(compressor.flush())
        parts.append(struct.pack("<II", crc & 0xFFFFFFFF, n & 0xFFFFFFFF))
        _GZIP_CACHE[n] = b"".join(parts)
    return _GZIP_CACHE[n]


class CaptureServer:
    """Counts every connection made to it (none may come)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self.received = b""
        self._closed = False
        threading.Thread(target=self._serve, name="capture", daemon=True).start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.settimeout(0.5)
            try:
                self.received += conn.recv(65536)
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self._closed = True
        self.sock.close()


class HostileServer:
    """Answers from the current case's replies; `normal()` makes it a well-behaved server again."""

    def __init__(self, capture_port: int) -> None:
        self.capture_port = capture_port
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port: int = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.token_replies: List[Dict[str, Any]] = []
        self.api_replies: List[Dict[str, Any]] = []
        self.token_requests = 0
        self.api_requests = 0
        # Requests that followed a redirect to /elsewhere, and Accept-Encoding values seen: none
        # of either may come (redirects are not followed, compression is not negotiated).
        self.elsewhere_requests = 0
        self.encodings: List[str] = []
        self.errors: List[str] = []
        threading.Thread(target=self._serve, name="hostile", daemon=True).start()

    def play(self, token: Optional[List[Dict[str, Any]]], api: Optional[List[Dict[str, Any]]]) -> None:
        for reply in (token or []) + (api or []):
            unknown = set(reply) - REPLY_KEYS
            assert not unknown, f"reply keys this runner does not know: {unknown}"
            if "gzip_zeros" in reply:
                gzip_of_zeros(int(reply["gzip_zeros"]))  # made now, not while the client waits
        with self._lock:
            self.token_replies = list(token or [])
            self.api_replies = list(api or [])

    def normal(self) -> None:
        self.play(None, None)

    def close(self) -> None:
        self._closed.set()
        self.sock.close()

    # -- serving ------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), name="hostile-conn", daemon=True).start()

    def _next_reply(self, is_token: bool) -> Dict[str, Any]:
        with self._lock:
            if is_token:
                n, replies, default = self.token_requests, self.token_replies, NORMAL_TOKEN
                self.token_requests += 1
            else:
                n, replies, default = self.api_requests, self.api_replies, NORMAL_PAGE
                self.api_requests += 1
        if not replies:
            return default
        return replies[min(n, len(replies) - 1)]

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            request = _read_request(conn)
            if request is None:
                return
            method, target, headers = request
            if "accept-encoding" in headers:
                self.encodings.append(headers["accept-encoding"])
            if target.startswith("/elsewhere"):
                self.elsewhere_requests += 1
            reply = self._next_reply(is_token=method == "POST" and target.split("?")[0].endswith("/connect/token"))
            self._answer(conn, reply)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            pass  # the client hung up: what the hostile replies provoke
        except Exception as e:  # a bug in this server: fail the test that saw it
            self.errors.append(repr(e))
        finally:
            conn.close()

    def _wait_for_hangup(self, conn: socket.socket, limit_s: float = 60.0) -> None:
        """Blocks until the client closes the connection (or the server closes)."""
        conn.settimeout(0.2)
        deadline = time.monotonic() + limit_s
        while not self._closed.is_set() and time.monotonic() < deadline:
            try:
                if conn.recv(65536) == b"":
                    return
            except socket.timeout:
                continue
            except OSError:
                return

    def _answer(self, conn: socket.socket, reply: Dict[str, Any]) -> None:
        if "raw_head" in reply:
            conn.sendall(reply["raw_head"].encode("latin-1"))
            return
        if reply.get("stall"):
            self._wait_for_hangup(conn)
            return
        if reply.get("reset"):
            # SO_LINGER 0: close() sends a RST instead of a FIN.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if "headers_flood" in reply:
            flood = "HTTP/1.1 200 OK\r\n" + "".join(
                f"X-Flood-{i}: {'a' * 985}\r\n" for i in range(reply["headers_flood"])
            )
            conn.sendall((flood + "Content-Length: 2\r\nConnection: close\r\n\r\n[]").encode())
            return
        if "drip_ms" in reply:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n"
                b"Connection: close\r\n\r\n["
            )
            for _ in range(1_000_000 - 1):
                if self._closed.is_set():
                    return
                time.sleep(reply["drip_ms"] / 1000)
                conn.sendall(b" ")
            return
        status = int(reply["status"])
        headers: List[Tuple[str, str]] = list((reply.get("headers") or {}).items())
        if "redirect" in reply:
            target = (
                f"http://127.0.0.1:{self.capture_port}/steal"
                if reply["redirect"] == "capture"
                else f"{self.base_url}/elsewhere"
            )
            headers.append(("Location", target))
            self._send(conn, status, headers, b"")
        elif "json" in reply:
            body = json.dumps(expand(reply["json"])).encode()
            self._send(conn, status, [("Content-Type", "application/json"), *headers], body)
        elif "content_length" in reply:
            head = _head(status, [("Content-Type", "application/json"), *headers])
            head += f"Content-Length: {reply['content_length']}\r\n\r\n".encode()
            conn.sendall(head + reply.get("text", "").encode())
            self._wait_for_hangup(conn, limit_s=30)
        elif "text" in reply:
            self._send(conn, status, [("Content-Type", "text/plain"), *headers], reply["text"].encode())
        elif "body_hex" in reply:
            self._send(conn, status, [("Content-Type", "application/json"), *headers], bytes.fromhex(reply["body_hex"]))
        elif "nested" in reply:
            self._send(conn, status, [("Content-Type", "application/json"), *headers], b"[" * int(reply["nested"]))
        elif "gzip_zeros" in reply:
            body = gzip_of_zeros(int(reply["gzip_zeros"]))
            self._send(
                conn, status, [("Content-Type", "application/json"), ("Content-Encoding", "gzip"), *headers], body
            )
        elif "body_bytes" in reply or reply.get("endless"):
            head = _head(status, [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked"), *headers])
            conn.sendall(head + b"\r\n" + _chunk(b"["))
            left: Optional[int] = reply.get("body_bytes")
            block = b" " * 65536
            while left is None or left > 0:
                if self._closed.is_set():
                    return
                piece = block if left is None or left >= len(block) else block[:left]
                conn.sendall(_chunk(piece))
                if left is not None:
                    left -= len(piece)
            conn.sendall(b"0\r\n\r\n")
        else:
            self._send(conn, status, headers, b"")

    def _send(self, conn: socket.socket, status: int, headers: List[Tuple[str, str]], body: bytes) -> None:
        head = _head(status, headers) + f"Content-Length: {len(body)}\r\n\r\n".encode()
        conn.sendall(head + body)


def _head(status: int, headers: List[Tuple[str, str]]) -> bytes:
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Whatever"
    lines = [f"HTTP/1.1 {status} {reason}", "Connection: close", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _read_request(conn: socket.socket) -> Optional[Tuple[str, str, Dict[str, str]]]:
    """Reads one request (head and Content-Length body); its method, target and headers."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > MAX_REQUEST_HEAD:
            raise ValueError("request head too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return method, target, headers
