"""Delivering mail: over SMTP (SMTP_URL), or, when none is configured, as ``.eml`` files in an
outbox directory (the embedded default).

Privacy: nothing here logs, or puts into an exception message, a person's address or name.
Mail servers often echo the recipient in their refusal text, so that text is never passed on;
only the reply code (and the enhanced status code, e.g. 5.1.1) is.
"""

import logging
import re
import smtplib
import socket
import ssl
import threading
import time
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from connector import defaults
from connector.exceptions import MailError
from connector.files import atomic_output
from connector.settings import SMTPServer
from connector.times import now

log = logging.getLogger(__name__)

def _status(code: int, server_text: bytes | str | None) -> str:
    """``550`` or ``550 5.1.1``: a reply's codes, never its free text (it may hold an address)."""
    if isinstance(server_text, bytes):
        server_text = server_text.decode("ascii", "replace")
    match = re.match(r"\s*([245]\.\d{1,3}\.\d{1,3})\b", server_text or "")
    return f"{code} {match.group(1)}" if match else str(code)


def _response_error(what: str, code: int, server_text: bytes | str | None) -> MailError:
    """Map an SMTP reply to a MailError: 5xx is permanent, anything else (4xx) is transient."""
    status = _status(code, server_text)
    if 500 <= code < 600:
        return MailError(f"mail server refused {what} ({status})", permanent=True)
    return MailError(f"mail server temporarily refused {what} ({status}); will retry",
                     permanent=False)


def _hang_up(connection: smtplib.SMTP, polite: bool) -> None:
    """Close the connection; say QUIT first when the message went through.

    A failing QUIT after the server accepted the message must not turn into an error: the job
    would retry and the person would get the mail twice.
    """
    try:
        if polite:
            connection.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        connection.close()


class Mailer:
    """Delivers messages over SMTP, or into an outbox directory when no server is configured.

    Build it with ``Mailer.from_url(settings.smtp_url, outbox_dir)``. A session that sent a
    mail stays open for the next one for up to ``keep_open`` seconds (SMTP_KEEP_OPEN): a
    worker mailing many persons connects, secures and logs in once, not once per mail. Before
    it is used again an RSET checks it; a session that fails it is replaced (nothing was sent
    on it yet). ``close`` says QUIT.
    """

    def __init__(self, server: SMTPServer | None, outbox_dir: Path, timeout: float = defaults.SMTP_TIMEOUT,
                 ssl_context: ssl.SSLContext | None = None,
                 keep_open: float = defaults.SMTP_KEEP_OPEN):
        self.server = server
        self.outbox_dir = Path(outbox_dir)
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.keep_open = keep_open
        self._session: smtplib.SMTP | None = None
        self._session_used_at = 0.0
        self._lock = threading.Lock()  # one conversation at a time on the kept session

    @classmethod
    def from_url(cls, smtp_url: str | None, outbox_dir: Path, timeout: float = defaults.SMTP_TIMEOUT,
                 ssl_context: ssl.SSLContext | None = None) -> "Mailer":
        """Build a mailer from SMTP_URL; None or "" means "write .eml files to outbox_dir".

        Args:
            smtp_url: ``smtp://host:port`` (plain, default port 25), ``smtp+starttls://host:port``
                (STARTTLS, 587) or ``smtps://host:port`` (implicit TLS, 465), each with an
                optional URL-encoded ``user:password@``.
            outbox_dir: where messages go when there is no SMTP server.
            timeout: seconds for connecting and for each SMTP command.
            ssl_context: verifies the server's certificate; default: the system's CAs.

        Raises:
            ValueError: SMTP_URL is malformed; the message names SMTP_URL.
        """
        server = SMTPServer.parse(smtp_url) if smtp_url and smtp_url.strip() else None
        return cls(server, outbox_dir, timeout, ssl_context)

    def deliver(self, message: EmailMessage) -> str:
        """Send ``message`` to its To recipients, or write it to the outbox.

        Returns:
            ``"smtp"`` when a mail server accepted it, else the path of the ``.eml`` file.

        Raises:
            MailError: ``permanent`` when the server refused it for good (5xx), otherwise
                transient (server unreachable, timeout, 4xx) and worth retrying.
        """
        if self.server is None:
            return str(self._write_outbox(message))
        with self._lock:
            self._converse(message)
        log.info("mail %s accepted by %s:%d", message.get("Message-ID", "?"),
                 self.server.host, self.server.port)
        return "smtp"

    # -- SMTP

    def _context(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()

    def check(self) -> None:
        """Open a session with the mail server as ``deliver`` would (connect, EHLO, STARTTLS,
        login) and hang up without sending anything; nothing to check for the outbox.

        Raises:
            MailError: as ``deliver`` would.
        """
        if self.server is not None:
            with self._lock:
                self._converse(None)

    def close(self) -> None:
        """Say QUIT on the session kept open, if any."""
        with self._lock:
            session, self._session = self._session, None
            if session is not None:
                _hang_up(session, polite=True)

    def _converse(self, message: EmailMessage | None) -> None:
        """Send ``message`` on the session kept open or a new one (connect, secure, log in);
        without a message, open a new session and hang up."""
        server = self.server
        assert server is not None
        where = f"{server.host}:{server.port}"
        connection: smtplib.SMTP | None = None
        accepted = False
        try:
            connection = self._kept_session() if message is not None else None
            if connection is None:
                connection = self._new_session()
            refused = connection.send_message(message) if message is not None else {}
            accepted = True
        # 1. The server hung up (also how smtplib reports a read timeout): try again later.
        except smtplib.SMTPServerDisconnected as exc:
            if isinstance(exc.__context__, TimeoutError):  # smtplib wraps a read timeout
                raise MailError(f"mail server unreachable: {where} did not answer within "
                                f"{self.timeout:g} s", permanent=False) from exc
            raise MailError(f"mail server unreachable: {where} closed the connection",
                            permanent=False) from exc
        # 2. Replies from the server. Their text may quote the address: never chain them.
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (550, b""))
            raise _response_error("the recipient", code, text) from None
        except smtplib.SMTPSenderRefused as exc:
            raise _response_error("the sender address", exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPDataError as exc:
            raise _response_error("the message", exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise _response_error("the login (check SMTP_URL's user and password)",
                                  exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPConnectError as exc:
            raise _response_error(f"the connection to {where}", exc.smtp_code,
                                  exc.smtp_error) from None
        except smtplib.SMTPResponseException as exc:
            raise _response_error("a command", exc.smtp_code, exc.smtp_error) from None
        # 3. The server lacks what SMTP_URL asks for (STARTTLS, AUTH): fix the config.
        except smtplib.SMTPNotSupportedError as exc:
            raise MailError(f"mail server {where} does not support what SMTP_URL asks for: {exc}",
                            permanent=True) from None
        except smtplib.SMTPException as exc:  # e.g. "No suitable authentication method found."
            raise MailError(f"mail server {where}: {exc}", permanent=True) from None
        # 4. Cannot talk to the server at all: try again later.
        except ssl.SSLError as exc:
            raise MailError(f"mail server unreachable: TLS with {where} failed "
                            f"({exc.reason or exc})", permanent=False) from exc
        except (socket.timeout, TimeoutError) as exc:
            raise MailError(f"mail server unreachable: {where} did not answer within "
                            f"{self.timeout:g} s", permanent=False) from exc
        except ConnectionRefusedError as exc:
            raise MailError(f"mail server unreachable: connection to {where} refused",
                            permanent=False) from exc
        except OSError as exc:
            raise MailError(f"mail server unreachable: {where}: {exc.strerror or exc}",
                            permanent=False) from exc
        finally:
            if connection is not None and accepted and message is not None:
                self._session, self._session_used_at = connection, time.monotonic()
            elif connection is not None:
                _hang_up(connection, polite=accepted)
        if refused:  # some recipients refused, others accepted: say so, do not resend
            codes = sorted({_status(code, text) for code, text in refused.values()})
            raise MailError(f"mail server refused {len(refused)} recipient(s) "
                            f"({', '.join(codes)})", permanent=True)

    def _new_session(self) -> smtplib.SMTP:
        """Connect, secure (STARTTLS or implicit TLS, as SMTP_URL says) and log in."""
        server = self.server
        assert server is not None
        if server.security == "tls":
            connection = smtplib.SMTP_SSL(server.host, server.port, timeout=self.timeout,
                                          context=self._context())
        else:
            connection = smtplib.SMTP(server.host, server.port, timeout=self.timeout)
        try:
            if server.security == "starttls":
                connection.starttls(context=self._context())
                connection.ehlo()
            if server.username is not None:
                connection.login(server.username, server.password or "")
        except BaseException:
            connection.close()
            raise
        return connection

    def _kept_session(self) -> smtplib.SMTP | None:
        """The session kept open, if it is recent and answers an RSET; else None (an old one
        is hung up, a dead one closed)."""
        session, self._session = self._session, None
        if session is None:
            return None
        if time.monotonic() - self._session_used_at > self.keep_open:
            _hang_up(session, polite=True)
            return None
        try:
            if session.rset()[0] == 250:
                return session
        except (smtplib.SMTPException, OSError):
            pass  # the server closed it: no QUIT to say
        _hang_up(session, polite=False)
        return None

    # -- outbox

    def _write_outbox(self, message: EmailMessage) -> Path:
        """Write ``<timestamp>-<message-id>.eml``, complete or not at all (files.atomic_output)."""
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        message_id = (message.get("Message-ID") or make_msgid(domain="outbox.invalid")).strip("<> ")
        safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", message_id)[:120]
        path = self.outbox_dir / f"{now().strftime('%Y%m%dT%H%M%S.%fZ')}-{safe_id}.eml"
        with atomic_output(path) as stream:
            stream.write(message.as_bytes(policy=policy.SMTP))
        log.info("mail %s written to outbox %s", message.get("Message-ID", "?"), path.name)
        return path
