"""Sending e-mail over SMTP (the alert e-mails): one connection per batch, TLS whenever the server offers it.

    with Mailer(settings) as mailer:        # connects; MailError if the server cannot be reached or refuses us
        mailer.send(message)                # MailError(permanent=True) when the server refuses the recipient

Port 465 means TLS from the first byte (SMTPS); on any other port the connection is upgraded with STARTTLS
when the server offers it. Credentials (SMTP_USER/SMTP_PASSWORD) are only ever sent over TLS: a server
that offers no TLS gets no password. Every step has SMTP_TIMEOUT. Error texts name the server and what
went wrong, never the password.
"""
from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from typing import Any

from financial.config import Settings


class MailError(Exception):
    """Sending failed: `permanent` when retrying the same message cannot help (the address was refused)."""

    def __init__(self, message: str, *, permanent: bool = False, connection_lost: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.connection_lost = connection_lost


class Mailer:
    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:
            raise ValueError("no SMTP_HOST: e-mail is off")
        self.host, self.port = settings.smtp_host, settings.smtp_port
        self.user, self.password = settings.smtp_user, settings.smtp_password
        self.sender = settings.smtp_sender
        self.timeout = settings.smtp_timeout
        self._smtp: smtplib.SMTP | None = None

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> "Mailer":
        self.connect()
        return self

    def connect(self) -> None:
        """Open the connection, with TLS when possible, and log in if SMTP_USER is set."""
        context = ssl.create_default_context()
        try:
            if self.port == 465:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            self._smtp = smtp
            smtp.ehlo()
            secure = self.port == 465
            if not secure and smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
                secure = True
            if self.user:
                if not secure:
                    raise MailError(f"SMTP server {self.server} offers no TLS; not sending SMTP_USER's password "
                                    f"in clear")
                smtp.login(self.user, self.password or "")
        except MailError:
            self.close()
            raise
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise MailError(f"SMTP server {self.server}: {describe(exc)}", connection_lost=True) from None

    def send(self, message: EmailMessage) -> None:
        """Hand one message to the server; returns once the server has accepted it."""
        if self._smtp is None:
            raise MailError(f"SMTP server {self.server}: not connected", connection_lost=True)
        try:
            refused = self._smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise MailError(f"SMTP server {self.server} refused the recipient: {describe(exc)}",
                            permanent=all(500 <= code < 600 for code in codes)) from None
        except smtplib.SMTPDataError as exc:  # the message itself was refused (5xx: for good)
            raise MailError(f"SMTP server {self.server} refused the message: {describe(exc)}",
                            permanent=500 <= exc.smtp_code < 600) from None
        except smtplib.SMTPResponseException as exc:  # e.g. the sender refused: fix SMTP_SENDER, then it goes out
            raise MailError(f"SMTP server {self.server}: {describe(exc)}") from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise MailError(f"SMTP server {self.server}: {describe(exc)}", connection_lost=True) from None
        except smtplib.SMTPException as exc:
            raise MailError(f"SMTP server {self.server}: {describe(exc)}") from None
        if refused:  # only some of several recipients; alert e-mails have one
            raise MailError(f"SMTP server {self.server} refused {', '.join(refused)}", permanent=True)

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def describe(exc: BaseException) -> str:
    """A one-line account of an SMTP or network error."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{address}: {code} {_text(reply)}" for address, (code, reply) in exc.recipients.items())
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, (socket.timeout, TimeoutError)) or isinstance(exc.__context__, (socket.timeout, TimeoutError)):
        return "timed out"  # (smtplib reports a timeout while reading a reply as a disconnection)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _text(reply: Any) -> str:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())[:200]
