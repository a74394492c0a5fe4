"""What the ledger keeps as proof of a choice made on the page (GDPR Art. 7(1)): when, through
which link, which consent text version, which browser, and the IP address in a form that
protects the person: its network (IPv4 /24, IPv6 /48) plus a keyed hash of the whole address
(HMAC-SHA256 with the first SECRET_KEY, 16 hex digits). Whoever holds the key can check
whether a given address made the choice; nobody can read the address back from the ledger."""

import hashlib
import hmac
import ipaddress

from connector.times import iso, now

USER_AGENT_MAX_LENGTH = 300


def protect_ip(address: str | None, key: str) -> str:
    """Return ``"203.0.113.0/24 #1a2b3c4d5e6f7a8b"`` for ``203.0.113.7``; "" when unknown."""
    if not address:
        return ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ""
    network = ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 48}", strict=False)
    digest = hmac.new(key.encode(), ip.packed, hashlib.sha256).hexdigest()[:16]
    return f"{network} #{digest}"


def trim_user_agent(user_agent: str | None) -> str:
    """The browser's User-Agent, cut to a sane length."""
    return (user_agent or "")[:USER_AGENT_MAX_LENGTH]


def choice_proof(token_id: str, user_agent: str | None, address: str | None, key: str,
                 **extra: str) -> dict[str, str]:
    """The proof of a choice made now through a link: when, which link, which browser and the
    protected address, then ``extra`` (``notice:<purpose>`` versions shown, ``via``)."""
    return {"submitted_at": iso(now()), "token_id": token_id,
            "user_agent": trim_user_agent(user_agent), "ip": protect_ip(address, key), **extra}
