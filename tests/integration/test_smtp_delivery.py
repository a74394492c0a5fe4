"""Delivery over real SMTP exchanges (aiosmtpd on 127.0.0.1) and into the outbox.

TLS tests use a throwaway self-signed certificate made with the ``openssl`` command (the
project has neither ``cryptography`` nor ``trustme``); the mailer trusts it through its
``ssl_context`` argument.
"""

import shutil
import socket
import ssl
import subprocess
import time
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.parser import BytesParser

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from connector.consent import ConsentConfig, LegalBasis, Purpose, Source
from connector.crm.types import ConsentRecord, Person
from connector.exceptions import MailError
from connector.mail.confirmation import render_confirmation
from connector.mail.delivery import Mailer
from connector.settings import SMTPServer

pytestmark = pytest.mark.integration

RECIPIENT = "ada.lovelace@example.com"
SENDER_ADDRESS = "privacy@acme.example"
USER, PASSWORD = "connector", "p@ss:w/rd %"  # characters that need URL-encoding
PASSWORD_IN_URL = "p%40ss%3Aw%2Frd%20%25"


# --------------------------------------------------------------------------- fixtures


class Collector:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self):
        self.received = []  # (mail_from, rcpt_tos, raw bytes, session)

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.original_content or envelope.content, session))
        return "250 2.0.0 OK"


class Refuser(Collector):
    """Refuses every recipient, quoting the address back as real servers do."""

    def __init__(self, reply: str):
        super().__init__()
        self.reply = reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return self.reply.format(address=address)


class FreePortController(Controller):
    """aiosmtpd's Controller on port 0: the OS picks a free port, we read it back."""

    def _create_server(self):
        async def create():
            server = await super(FreePortController, self)._create_server()
            self.port = server.sockets[0].getsockname()[1]
            return server
        return create()


@pytest.fixture
def start_smtp():
    """Start an SMTP server: ``start_smtp(handler, **smtp_params)`` → controller."""
    started = []

    def start(handler, **kwargs):
        controller = FreePortController(handler, hostname="127.0.0.1", port=0,
                                        server_hostname="mail.test", **kwargs)
        controller.start()
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (cert path, key path)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the TLS tests need the openssl command (apt-get install openssl)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True)
    return cert, key


@pytest.fixture
def server_tls(certificate):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def client_tls(certificate):
    """A client context that trusts only the test certificate (and checks the host name)."""
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.fixture
def message():
    config = ConsentConfig(
        legal_bases={"li": LegalBasis("li", "61F", {"en": "Legitimate interest"},
                                      {"en": "We need it to serve you."})},
        sources={"web": Source("web", "WEBFORM", {"en": "Our web form"}, True)},
        purposes={"store": Purpose("store", "STORE", {"en": "Sales and service"},
                                   {"en": "To serve you."}, default_legal_basis="li")},
        default_source="web")
    person = Person(id=1, first_name="Ada", last_name="Lovelace", email=RECIPIENT,
                    language="en", company_name=None, created_by_associate_id=None, consents=())
    return render_confirmation(config, person, [ConsentRecord("STORE", "61F", "WEBFORM")],
                               "https://consent.example.com/s/abc",
                               datetime.now(timezone.utc) + timedelta(days=21),
                               f"Acme privacy <{SENDER_ADDRESS}>", company="Acme")


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_received_intact(collector, message):
    assert len(collector.received) == 1
    mail_from, rcpt_tos, raw, _ = collector.received[0]
    assert mail_from == SENDER_ADDRESS
    assert rcpt_tos == [RECIPIENT]
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["To"] == RECIPIENT
    assert parsed["Message-ID"] == message["Message-ID"]
    assert parsed.get_content_type() == "multipart/alternative"
    assert "Sales and service" in parsed.get_body(("plain",)).get_content()
    assert "Sales and service" in parsed.get_body(("html",)).get_content()
    return collector.received[0][3]  # the session


# --------------------------------------------------------------------------- plain SMTP


def test_delivers_over_smtp(start_smtp, message, tmp_path):
    collector = Collector()
    controller = start_smtp(collector)
    mailer = Mailer.from_url(f"smtp://127.0.0.1:{controller.port}", tmp_path / "outbox")

    assert mailer.deliver(message) == "smtp"

    assert_received_intact(collector, message)
    assert not (tmp_path / "outbox").exists()


def sessions_of(collector: Collector) -> int:
    """How many SMTP sessions (connections) the server received the mails on."""
    return len({id(session) for *_, session in collector.received})


def test_mails_in_a_row_share_one_session(start_smtp, message, tmp_path):
    collector = Collector()
    controller = start_smtp(collector)
    mailer = Mailer.from_url(f"smtp://127.0.0.1:{controller.port}", tmp_path / "outbox")

    for _ in range(3):
        assert mailer.deliver(message) == "smtp"
    mailer.close()

    assert len(collector.received) == 3
    assert sessions_of(collector) == 1


def test_a_session_the_server_dropped_is_replaced_and_nothing_is_lost(message, tmp_path):
    first = Collector()
    controller = FreePortController(first, hostname="127.0.0.1", port=0,
                                    server_hostname="mail.test")
    controller.start()
    mailer = Mailer.from_url(f"smtp://127.0.0.1:{controller.port}", tmp_path / "outbox")
    assert mailer.deliver(message) == "smtp"
    controller.stop()  # the server goes away with the kept session, and comes back
    second = Collector()
    again = FreePortController(second, hostname="127.0.0.1", port=controller.port,
                               server_hostname="mail.test")
    again.start()
    try:
        assert mailer.deliver(message) == "smtp"
    finally:
        mailer.close()
        again.stop()

    assert len(first.received) == len(second.received) == 1


def test_a_session_idle_longer_than_keep_open_is_hung_up_and_a_new_one_opened(
        start_smtp, message, tmp_path):
    collector = Collector()
    controller = start_smtp(collector)
    mailer = Mailer(SMTPServer.parse(f"smtp://127.0.0.1:{controller.port}"),
                    tmp_path / "outbox", keep_open=0.0)

    assert mailer.deliver(message) == "smtp"
    time.sleep(0.01)
    assert mailer.deliver(message) == "smtp"

    assert sessions_of(collector) == 2


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_authenticates_with_url_credentials(start_smtp, message, tmp_path):
    collector = Collector()
    controller = start_smtp(collector, authenticator=authenticator, auth_required=True,
                             auth_require_tls=False)
    url = f"smtp://{USER}:{PASSWORD_IN_URL}@127.0.0.1:{controller.port}"

    assert Mailer.from_url(url, tmp_path).deliver(message) == "smtp"

    session = assert_received_intact(collector, message)
    assert session.authenticated


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_wrong_password_is_a_permanent_mail_error(start_smtp, message, tmp_path):
    collector = Collector()
    controller = start_smtp(collector, authenticator=authenticator, auth_required=True,
                             auth_require_tls=False)
    url = f"smtp://{USER}:wrong@127.0.0.1:{controller.port}"

    with pytest.raises(MailError) as caught:
        Mailer.from_url(url, tmp_path).deliver(message)

    assert caught.value.permanent
    assert "login" in str(caught.value) and "535" in str(caught.value)
    assert "wrong" not in str(caught.value)
    assert collector.received == []


def test_refused_recipient_is_permanent_and_never_names_the_address(start_smtp, message,
                                                                    tmp_path):
    controller = start_smtp(Refuser("550 5.1.1 <{address}>: no such user"))

    with pytest.raises(MailError) as caught:
        Mailer.from_url(f"smtp://127.0.0.1:{controller.port}", tmp_path).deliver(message)

    error = caught.value
    assert error.permanent
    assert str(error) == "mail server refused the recipient (550 5.1.1)"
    assert "@" not in str(error) and "ada" not in str(error).lower()
    # Not hidden in the chain either: RQ stores the whole traceback.
    assert error.__cause__ is None and error.__suppress_context__


def test_temporarily_refused_recipient_is_transient(start_smtp, message, tmp_path):
    controller = start_smtp(Refuser("450 4.2.1 <{address}>: mailbox busy, try later"))

    with pytest.raises(MailError) as caught:
        Mailer.from_url(f"smtp://127.0.0.1:{controller.port}", tmp_path).deliver(message)

    assert not caught.value.permanent
    assert "450 4.2.1" in str(caught.value) and "@" not in str(caught.value)


def test_closed_port_is_a_transient_mail_error(message, tmp_path):
    port = free_port()

    with pytest.raises(MailError) as caught:
        Mailer.from_url(f"smtp://127.0.0.1:{port}", tmp_path, timeout=2).deliver(message)

    assert not caught.value.permanent
    assert str(caught.value).startswith("mail server unreachable:")
    assert "refused" in str(caught.value)


def test_silent_server_times_out_as_transient(message, tmp_path):
    with socket.socket() as silent:  # accepts connections (kernel backlog), never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"smtp://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(MailError) as caught:
            Mailer.from_url(url, tmp_path, timeout=0.3).deliver(message)

    assert not caught.value.permanent
    assert "did not answer within 0.3 s" in str(caught.value)


# --------------------------------------------------------------------------- TLS


def test_delivers_with_starttls(start_smtp, message, tmp_path, server_tls, client_tls):
    collector = Collector()
    controller = start_smtp(collector, tls_context=server_tls, require_starttls=True,
                             authenticator=authenticator, auth_required=True)
    url = f"smtp+starttls://{USER}:{PASSWORD_IN_URL}@127.0.0.1:{controller.port}"

    assert Mailer.from_url(url, tmp_path, ssl_context=client_tls).deliver(message) == "smtp"

    session = assert_received_intact(collector, message)
    assert session.ssl is not None and session.authenticated


def test_delivers_with_implicit_tls(start_smtp, message, tmp_path, server_tls, client_tls):
    collector = Collector()
    controller = start_smtp(collector, ssl_context=server_tls)
    url = f"smtps://127.0.0.1:{controller.port}"

    assert Mailer.from_url(url, tmp_path, ssl_context=client_tls).deliver(message) == "smtp"

    assert_received_intact(collector, message)  # the listener speaks nothing but TLS


def test_untrusted_certificate_is_refused(start_smtp, message, tmp_path, server_tls):
    collector = Collector()
    controller = start_smtp(collector, ssl_context=server_tls)

    with pytest.raises(MailError) as caught:  # default context: the system's CAs only
        Mailer.from_url(f"smtps://127.0.0.1:{controller.port}", tmp_path).deliver(message)

    assert not caught.value.permanent
    assert "TLS" in str(caught.value)
    assert collector.received == []


def test_starttls_not_offered_is_permanent(start_smtp, message, tmp_path):
    collector = Collector()
    controller = start_smtp(collector)  # no tls_context: no STARTTLS in EHLO

    with pytest.raises(MailError) as caught:
        Mailer.from_url(f"smtp+starttls://127.0.0.1:{controller.port}", tmp_path).deliver(message)

    assert caught.value.permanent
    assert "STARTTLS" in str(caught.value)
    assert collector.received == []


# --------------------------------------------------------------------------- outbox


@pytest.mark.parametrize("url", [None, ""])
def test_without_smtp_url_writes_a_parseable_eml(message, tmp_path, url):
    outbox = tmp_path / "data" / "outbox"  # created on demand

    where = Mailer.from_url(url, outbox).deliver(message)

    files = list(outbox.iterdir())
    assert [str(f) for f in files] == [where]  # no temp file left behind
    assert where.endswith(".eml")
    assert message["Message-ID"].strip("<>").split("@")[0] in where
    with open(where, "rb") as eml:
        parsed = BytesParser(policy=policy.default).parse(eml)
    assert parsed["To"] == RECIPIENT
    assert parsed["Message-ID"] == message["Message-ID"]
    assert "Sales and service" in parsed.get_body(("plain",)).get_content()
    assert "Sales and service" in parsed.get_body(("html",)).get_content()


def test_outbox_files_do_not_overwrite_each_other(message, tmp_path):
    mailer = Mailer.from_url(None, tmp_path)
    first, second = mailer.deliver(message), mailer.deliver(message)
    assert first != second
    assert len(list(tmp_path.glob("*.eml"))) == 2


# --------------------------------------------------------------------------- SMTP_URL


@pytest.mark.parametrize("url, expected", [
    ("smtp://mail.example.com", SMTPServer("mail.example.com", 25, "plain")),
    ("smtp://mail.example.com:2525", SMTPServer("mail.example.com", 2525, "plain")),
    ("smtp+starttls://mail.example.com", SMTPServer("mail.example.com", 587, "starttls")),
    ("smtps://mail.example.com", SMTPServer("mail.example.com", 465, "tls")),
    (f"SMTPS://{USER}:{PASSWORD_IN_URL}@mail.example.com:1465",
     SMTPServer("mail.example.com", 1465, "tls", USER, PASSWORD)),
    ("smtp://user%40example.com:@mail.example.com/",
     SMTPServer("mail.example.com", 25, "plain", "user@example.com", "")),
])
def test_parses_smtp_url(url, expected):
    assert SMTPServer.parse(url) == expected


@pytest.mark.parametrize("url", [
    "http://mail.example.com", "mail.example.com:25", "smtp://", "smtp://host:99999",
    "smtp://host:port", "smtp://host/path",
])
def test_bad_smtp_url_is_a_value_error_naming_it(url, tmp_path):
    with pytest.raises(ValueError, match="^SMTP_URL"):
        Mailer.from_url(url, tmp_path)


def test_bad_smtp_url_error_and_repr_hide_the_password(tmp_path):
    with pytest.raises(ValueError) as caught:
        Mailer.from_url("smtp://user:s3cret@host:notaport", tmp_path)
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in repr(SMTPServer.parse("smtp://user:s3cret@host"))


# --------------------------------------------------------------------------- privacy


def test_logs_hold_no_address_or_name(start_smtp, message, tmp_path, caplog):
    caplog.set_level("DEBUG", logger="connector.mail")
    controller = start_smtp(Collector())
    Mailer.from_url(f"smtp://127.0.0.1:{controller.port}", tmp_path).deliver(message)
    Mailer.from_url(None, tmp_path).deliver(message)
    refusing = start_smtp(Refuser("550 5.1.1 <{address}>: no such user"))
    with pytest.raises(MailError):
        Mailer.from_url(f"smtp://127.0.0.1:{refusing.port}", tmp_path).deliver(message)

    ours = [r.getMessage() for r in caplog.records if r.name.startswith("connector.mail")]
    assert len(ours) == 2  # one line per delivery
    for line in ours:
        assert "@example.com" not in line and "Ada" not in line and "Lovelace" not in line
