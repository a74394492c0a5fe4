"""Command line: ``python -m sandbox --port 8090 --token demo-token=9``."""

from __future__ import annotations

import argparse
import os
import sys

from werkzeug.serving import make_server

from sandbox.server import create_sandbox_app


def parse_tokens(items: list[str]) -> dict[str, int]:
    """Turn ``["demo-token=9", ...]`` into ``{"demo-token": 9}``; raise ValueError when malformed."""
    tokens = {}
    for item in items:
        token, sep, associate = item.strip().rpartition("=")
        if not sep or not token or not associate.strip().isdigit():
            raise ValueError(f"token must look like TOKEN=ASSOCIATE_ID, got {item!r}")
        tokens[token] = int(associate)
    return tokens


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox CRM until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--tenant", default="Cust12345")
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN=ASSOCIATE_ID",
                        help="accepted Bearer token/SOTicket and its associate id (repeatable); "
                             "also read from SANDBOX_TOKENS='a=9,b=42'")
    parser.add_argument("--app-token", default=os.environ.get("SANDBOX_APP_TOKEN"),
                        help="require this SO-AppToken header on every API call")
    args = parser.parse_args(argv)
    env_tokens = [t for t in os.environ.get("SANDBOX_TOKENS", "").split(",") if t.strip()]
    try:
        tokens = parse_tokens(env_tokens + args.token)
    except ValueError as exc:
        parser.error(str(exc))
    app = create_sandbox_app(args.tenant, tokens or {"demo-token": 9}, app_token=args.app_token)
    server = make_server(args.host, args.port, app, threaded=True)
    print(f"sandbox CRM listening on http://{args.host}:{server.server_port}/{args.tenant}/api/v1",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
