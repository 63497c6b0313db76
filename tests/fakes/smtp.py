"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, keeping every message it accepts.

    server = SmtpServer().start()           # a free port; server.port
    ... settings.replace(smtp_host="127.0.0.1", smtp_port=server.port) ...
    server.messages                         # [email.message.EmailMessage], in the order accepted
    server.stop(); server.start()           # down, then back on the same port

`refuse` holds addresses the server answers `550` at RCPT (an address refused for good).
"""
from __future__ import annotations

import email
import email.policy
import socket
import threading
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    """A port nothing listens on now (connections to it are refused until someone binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Handler:
    def __init__(self, server: "SmtpServer") -> None:
        self.server = server

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list) -> str:
        if address.lower() in self.server.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.server.lock:
            self.server.messages.append(message)
            self.server.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK: queued"


class SmtpServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse: set[str] = set()
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> "SmtpServer":
        if self._controller is None:
            controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, ready_timeout=5)
            controller.start()
            self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def to(self, address: str) -> list[email.message.EmailMessage]:
        with self.lock:
            return [message for message in self.messages if message["To"] == address]
