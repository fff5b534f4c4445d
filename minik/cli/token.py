"""`minik token create|list|delete`: extra join tokens, kept as files under
`<data-dir>/server/join-tokens/` (see `minik.cluster.jointokens`), so the command needs no API
credential and works with the server stopped, like `k3s token`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from minik.config import ServerConfig

_DURATION = re.compile(r"^(\d+)([smhd]?)$")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = ServerConfig()
    p = sub.add_parser("token", help="create, list and delete extra join tokens",
                       description="Manage extra join tokens (the server's own token is <data-dir>/server/token).")
    p.add_argument("--data-dir", default=os.environ.get("MINIK_DATA_DIR", d.data_dir), help="the server's data directory (default %(default)s)")
    tsub = p.add_subparsers(dest="token_command", metavar="SUBCOMMAND")
    c = tsub.add_parser("create", help="print a new join token")
    c.add_argument("--ttl", default="24h", help="lifetime: 90s, 30m, 24h, 7d; 0 for no expiry (default %(default)s)")
    tsub.add_parser("list", help="list extra join tokens")
    rm = tsub.add_parser("delete", help="delete join tokens by id (or the whole token)")
    rm.add_argument("ids", nargs="+", metavar="ID")


def parse_ttl(value: str) -> float:
    m = _DURATION.match(value.strip())
    if not m:
        raise SystemExit(f"minik token: --ttl must look like 90s, 30m, 24h, 7d or 0, got {value!r}")
    return float(int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)])


def run(a: argparse.Namespace) -> int:
    from minik.cluster.jointokens import JoinTokens, TokenError, parse_token
    server_dir = os.path.join(os.path.abspath(a.data_dir), "server")
    try:
        with open(os.path.join(server_dir, "token"), encoding="utf-8") as f:
            pin = parse_token(f.read()).ca_hash
    except (OSError, TokenError):
        print(f"minik token: no server state in {a.data_dir} (run as the server's user, or pass --data-dir)", file=sys.stderr)
        return 1
    tokens = JoinTokens(server_dir)
    if a.token_command == "create":
        tok = tokens.create(parse_ttl(a.ttl))
        print(f"K10{pin}::{tok.value}")
        return 0
    if a.token_command == "list":
        print(f"{'ID':<8} {'EXPIRES':<22} CREATED")
        for tok in tokens.list():
            exp = "never" if not tok.expires else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tok.expires))
            if tok.expires and tok.expires <= time.time():
                exp += " (expired)"
            print(f"{tok.id:<8} {exp:<22} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(tok.created))}")
        return 0
    if a.token_command == "delete":
        rc = 0
        for tid in a.ids:
            if tokens.delete(tid.split("::")[-1]):
                print(f"token {tid.split('::')[-1].split('.')[0]} deleted")
            else:
                print(f"minik token: no token {tid!r}", file=sys.stderr)
                rc = 1
        return rc
    print("usage: minik token create|list|delete", file=sys.stderr)
    return 2
