"""A TCP proxy in front of the test's S3 server (moto) on 127.0.0.1, that a test can break.

Modes: ``up`` forwards bytes both ways; ``reset`` accepts and resets each connection
(RST); ``refuse`` closes the listening socket, so connections are refused. Going
``reset`` or ``refuse`` also resets every open connection (a pooled keep-alive
connection fails as S3 going away would). Two hooks make a fault land at a chosen
point of the client's work without timing: `trip` is asked at each new connection and,
once true, puts the proxy in ``reset`` and records when; `reject` answers the first
request of a connection whose request line contains a marker with an S3 error (status
and code), as S3 would refuse it, then closes the connection.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from replay_ingest.localstack import free_port

HEAD_LIMIT = 64 * 1024


@dataclass
class Rejection:
    status: int
    code: str
    times: int | None = None  # None: every time
    served: int = 0


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.mode = "up"
        self.trip: Callable[[], bool] | None = None
        self.tripped_at: float | None = None
        self.rejections: dict[str, Rejection] = {}
        self.accepted = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._closed = False
        self._listen()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: str) -> None:
        assert mode in ("up", "reset", "refuse"), mode
        with self._lock:
            self.mode = mode
            if mode != "up":
                for sock in list(self._open):
                    _reset(sock)
                self._open.clear()
            if mode == "refuse" and self._listener is not None:
                self._listener.close()
                self._listener = None
        if mode != "refuse" and self._listener is None:
            self._listen()

    def close(self) -> None:
        self._closed = True
        self.set_mode("refuse")
        self._thread.join(5)

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener

    def _accept_loop(self) -> None:
        while not self._closed:
            listener = self._listener
            if listener is None:
                time.sleep(0.05)  # refusing: nothing listens until the mode changes
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self.trip is not None and self.tripped_at is None and self.trip():
            self.tripped_at = time.monotonic()
            self.set_mode("reset")
        if self.mode != "up":
            _reset(client)
            return
        head = _read_head(client)
        first_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        for marker, rejection in self.rejections.items():
            left = rejection.times is None or rejection.served < rejection.times
            if marker in first_line and left:
                rejection.served += 1
                _answer_error(client, rejection)
                return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            _reset(client)
            return
        upstream.settimeout(None)
        with self._lock:
            if self.mode != "up":
                _reset(client)
                _reset(upstream)
                return
            self._open.update((client, upstream))
        with contextlib.suppress(OSError):
            upstream.sendall(head)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        with self._lock:
            self._open.difference_update((client, upstream))
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.close()


def _read_head(client: socket.socket) -> bytes:
    """Bytes up to the end of the first request's headers (maybe a little of its body)."""
    client.settimeout(10)
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data and len(data) < HEAD_LIMIT:
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    client.settimeout(None)
    return data


def _answer_error(client: socket.socket, rejection: Rejection) -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{rejection.code}</Code><Message>injected by the test proxy</Message>"
        "<RequestId>fault-proxy</RequestId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {rejection.status} Injected\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with contextlib.suppress(OSError):
        client.sendall(head + body)
    client.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _reset(sock: socket.socket) -> None:
    """Close with RST (linger 0), as a crashed or unplugged peer would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
