"""The sandbox CRM: a local HTTP server that answers as SuperOffice's REST API does (persons,
consents, lists, webhooks, the system user sign-in), for the demo and the tests.

  python -m sandbox --port 8090 --token demo-token=9

It prints the settings a connector needs to reach it. Key files, the client secret and the
default system user live in --data-dir (var/sandbox), so a restart keeps them and a
connector's settings stay valid. Its person cards are at http://HOST:PORT/.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import sys
from pathlib import Path

from werkzeug.serving import make_server

from sandbox.keys import load_or_create_secret
from sandbox.login import TICKET_TTL
from sandbox.server import (
    DEFAULT_SYSTEM_USER_ASSOCIATE,
    connector_settings,
    create_sandbox_app,
    default_system_users,
)

CLIENT_SECRET_FILE = "client-secret.txt"
SYSTEM_USER_FILE = "system-user-token.txt"


def parse_tokens(items: list[str]) -> dict[str, int]:
    """Turn ``["demo-token=9", ...]`` into ``{"demo-token": 9}``; raise ValueError when malformed."""
    tokens = {}
    for item in items:
        token, sep, associate = item.strip().rpartition("=")
        if not sep or not token or not associate.strip().isdigit():
            raise ValueError(f"token must look like TOKEN=ASSOCIATE_ID, got {item!r}")
        tokens[token] = int(associate)
    return tokens


def persisted_system_users(data_dir: Path) -> dict[str, int]:
    """The default system user, made once and kept in ``data_dir``."""
    token = load_or_create_secret(data_dir / SYSTEM_USER_FILE,
                                  lambda: next(iter(default_system_users())))
    return {token: DEFAULT_SYSTEM_USER_ASSOCIATE}


def persisted_client_secret(data_dir: Path) -> str:
    """The app's client secret, generated once and kept in ``data_dir``."""
    return load_or_create_secret(data_dir / CLIENT_SECRET_FILE, lambda: secrets.token_urlsafe(24))


def parse_quota(text: str) -> float:
    """Turn ``--quota``'s text into requests per second; raise ArgumentTypeError unless positive."""
    message = f"quota must be a positive number of requests per second, got {text!r}"
    try:
        per_second = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(message) from None
    if not (math.isfinite(per_second) and per_second > 0):
        raise argparse.ArgumentTypeError(message)
    return per_second


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8090, help="port to listen on (default 8090)")
    parser.add_argument("--tenant", default="Cust12345",
                        help="the tenant's context identifier, the first part of every API "
                             "path (default Cust12345)")
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN=ASSOCIATE_ID",
                        help="accepted Bearer token/SOTicket and its associate id (repeatable); "
                             "also read from SANDBOX_TOKENS='a=9,b=42'")
    parser.add_argument("--app-token", default=os.environ.get("SANDBOX_APP_TOKEN"),
                        help="require this SO-AppToken header on every call with a --token")
    parser.add_argument("--data-dir", type=Path, default=Path("var/sandbox"),
                        help="where keys, client secret and default system user are kept")
    parser.add_argument("--system-user", action="append", default=[], metavar="TOKEN=ASSOCIATE_ID",
                        help="a system user token and its associate id (repeatable); default one "
                             "consent-connector-<random>=9, kept in the data dir")
    parser.add_argument("--client-secret",
                        help="the app's client secret; default generated once, kept in the data dir")
    parser.add_argument("--ticket-ttl", type=float, default=TICKET_TTL, metavar="SECONDS",
                        help="lifetime of a system user ticket (default 6 h)")
    parser.add_argument("--fixed-ticket-lifetime", action="store_true",
                        help="tickets lapse --ticket-ttl after issue, not after their last use")
    parser.add_argument("--quota", type=parse_quota, default=os.environ.get("SANDBOX_QUOTA") or None,
                        metavar="PER_SECOND",
                        help="requests per second the tenant's API allows; over it: 429 with "
                             "Retry-After (default: no limit); also read from SANDBOX_QUOTA")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox CRM until interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    env_tokens = [t for t in os.environ.get("SANDBOX_TOKENS", "").split(",") if t.strip()]
    try:
        tokens = parse_tokens(env_tokens + args.token)
        system_users = parse_tokens(args.system_user)
    except ValueError as exc:
        parser.error(str(exc))
    data_dir = args.data_dir
    app = create_sandbox_app(
        args.tenant, tokens or {"demo-token": 9}, app_token=args.app_token, data_dir=data_dir,
        system_users=system_users or persisted_system_users(data_dir),
        client_secret=args.client_secret or persisted_client_secret(data_dir),
        ticket_ttl=args.ticket_ttl, ticket_sliding=not args.fixed_ticket_lifetime,
        quota=args.quota)
    server = make_server(args.host, args.port, app, threaded=True)
    root_url = f"http://{args.host}:{server.server_port}"
    print(f"sandbox CRM listening on {root_url}/{args.tenant}/api/v1", flush=True)
    for name, value in connector_settings(app, root_url).items():
        print(f"{name}={value}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
