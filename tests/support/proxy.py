"""A loopback TCP proxy that cuts connections: a registry that dies half-way, for real."""

from __future__ import annotations

import contextlib
import socket
import threading


class DroppingProxy:
    """A loopback TCP proxy that cuts the connection once ``drop_after`` bytes passed.

    Counts bytes from all clients together (``downstream``: bytes from the server
    instead, to cut downloads); the connection that crosses the mark is reset on
    both sides, once (or ``times`` times).
    """

    def __init__(
        self,
        upstream: str,
        drop_after: int,
        times: int = 1,
        busy: int = 0,
        *,
        downstream: bool = False,
    ) -> None:
        host, port = upstream.rsplit(":", 1)
        self.downstream = downstream
        self.busy = busy  # answer this many connections with 503 Service Unavailable
        self.upstream = (host, int(port))
        self.drop_after = drop_after
        self.times = times
        self.sent = 0
        self.drops = 0
        self._lock = threading.Lock()
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._srv.getsockname()[1]}"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            if self.busy > 0:
                self.busy -= 1
                self._unavailable(client)
                continue
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _unavailable(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head and (data := client.recv(65536)):
            head += data
        client.sendall(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        client.close()

    def _cut(self, *socks: socket.socket) -> None:
        for s in socks:
            try:
                s.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                # shutdown wakes the other pump blocked in recv on it (close alone does not,
                # and the peer would wait for bytes that never come).
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(65536):
                if upstream != self.downstream:
                    with self._lock:
                        self.sent += len(data)
                        drop = self.drops < self.times and self.sent > self.drop_after
                        if drop:
                            self.drops += 1
                            self.sent = 0
                    if drop:
                        self._cut(src, dst)
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop = True
        self._srv.close()
