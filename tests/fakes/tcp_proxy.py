"""A TCP proxy that tests can cut, blackhole and restore, to take a real server (MariaDB, Redis, SMTP) away
from the code under test and give it back, without stopping the server others share.

- `cut()`: open connections are dropped and new ones are accepted and closed at once: a client sees its
  server vanish, as when a container restarts.
- `blackhole()`: nothing is forwarded any more, in either direction, but every connection stays open and
  new ones are accepted: what each side sends is read and thrown away, and nothing ever answers, as when a
  network path silently drops every packet. Only a client's own timeouts can end its wait.
- `restore()`: forwarding resumes. A connection whose bytes were thrown away during a blackhole is closed
  (its stream lost data, as a real one would have timed out); one that stayed silent goes on as before;
  connections accepted during the blackhole, which never reached the server, are closed.
"""
from __future__ import annotations

import socket
import threading

UP, CUT, BLACKHOLE = "up", "cut", "blackhole"


class _Link:
    """One client's connection and its upstream one (None when accepted during a blackhole)."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None) -> None:
        self.client, self.upstream = client, upstream
        self.lost = False  # bytes of it were thrown away

    def sockets(self) -> list[socket.socket]:
        return [self.client] if self.upstream is None else [self.client, self.upstream]


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.mode = UP
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> "TcpProxy":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def cut(self) -> None:
        with self._lock:
            self.mode = CUT
            links, self._links = list(self._links), set()
        for link in links:
            _close_link(link)

    def blackhole(self) -> None:
        with self._lock:
            self.mode = BLACKHOLE

    def restore(self) -> None:
        with self._lock:
            self.mode = UP
            stale = [link for link in self._links if link.upstream is None or link.lost]
            self._links.difference_update(stale)
        for link in stale:
            _close_link(link)

    def close(self) -> None:
        self._closed = True
        self.cut()
        _close(self._listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            mode = self.mode
            if mode == CUT:
                _close(client)
                continue
            upstream = None
            if mode == UP:
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                    upstream.settimeout(None)
                except OSError:
                    _close(client)
                    continue
            link = _Link(client, upstream)
            with self._lock:
                self._links.add(link)
            threading.Thread(target=self._pipe, args=(link, client, upstream), daemon=True).start()
            if upstream is not None:
                threading.Thread(target=self._pipe, args=(link, upstream, client), daemon=True).start()

    def _pipe(self, link: _Link, source: socket.socket, sink: socket.socket | None) -> None:
        try:
            while chunk := source.recv(65536):
                if self.mode == BLACKHOLE or sink is None:
                    link.lost = True  # thrown away: nothing is answered
                    continue
                if link.lost:
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._links.discard(link)
            _close_link(link)


def _close_link(link: _Link) -> None:
    for sock in link.sockets():
        _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
