"""A loopback TCP proxy that shapes a registry like a remote one: a shared download rate
(bytes per second, all connections together) and a delay before each request reaches
the server (the round trip a request pays). Bench-only: good enough to compare two
images pulled through it, not a network emulator."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class ShapingProxy:
    def __init__(self, upstream: str, *, rate: float | None, delay: float) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.rate = rate  # bytes/s from the server, shared; None: unlimited
        self.delay = delay  # seconds before each request is passed on
        self._lock = threading.Lock()
        self._next = time.monotonic()  # when the shared pipe is free again
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._srv.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._up, args=(client, server), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client), daemon=True).start()

    def _up(self, src: socket.socket, dst: socket.socket) -> None:
        """Client to server: a chunk that starts after a quiet moment is a new request."""
        last = 0.0
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                now = time.monotonic()
                if self.delay and now - last > self.delay:
                    time.sleep(self.delay)
                last = time.monotonic()
                dst.sendall(data)
        self._close(src, dst)

    def _down(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(262144):
                if self.rate:
                    with self._lock:
                        start = max(self._next, time.monotonic())
                        self._next = start + len(data) / self.rate
                    wait = self._next - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                dst.sendall(data)
        self._close(src, dst)

    @staticmethod
    def _close(*socks: socket.socket) -> None:
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._srv.close()
