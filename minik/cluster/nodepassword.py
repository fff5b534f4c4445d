"""Per-node passwords: a node name belongs to the machine that first joined with it.

As k3s does, each agent keeps a random password (`<data-dir>/agent/node-password`) and the server
keeps its scrypt hash in the Secret `<name>.node-password.minik` in kube-system. A join with the
same name and another password is refused while the Node object exists; after
`kubectl delete node <name>` the next joiner's password replaces the old one (a reinstalled host
rejoins under its old name). `hash_password`/`password_matches` are pure.
Neighbours: `minik.cluster.server` calls `claim_node_name` during Join, through `minik.client`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from minik.client import Client, ClientError, Obj

NAMESPACE = "kube-system"
SECRET_TYPE = "minik.io/node-password"


class NodePasswordRejected(Exception):
    pass


def secret_name(node: str) -> str:
    return f"{node}.node-password.minik"


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2 ** 14, r=8, p=1, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    algo, _, rest = stored.partition("$")
    salt_hex, _, _ = rest.partition("$")
    if algo != "scrypt":
        return False
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    return hmac.compare_digest(hash_password(password, salt).encode(), stored.encode())


def _stored(secret: Obj) -> str:
    raw = (secret.get("data") or {}).get("hash", "")
    try:
        return base64.b64decode(raw).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def _secret(node: str, password: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": secret_name(node), "namespace": NAMESPACE},
            "data": {"hash": base64.b64encode(hash_password(password).encode()).decode()}}


async def claim_node_name(client: Client, node: str, password: str) -> None:
    """Record or check the node's password; NodePasswordRejected says what the operator must do."""
    if not password:
        raise NodePasswordRejected("the agent sent no node password")
    cur = await client.get("secrets", NAMESPACE, secret_name(node))
    if cur is None:
        try:
            await client.create("secrets", NAMESPACE, _secret(node, password))
            return
        except ClientError as e:
            if not e.conflict:
                raise
            cur = await client.get("secrets", NAMESPACE, secret_name(node))
            if cur is None:
                raise
    if password_matches(password, _stored(cur)):
        return
    if await client.get("nodes", "", node) is not None:
        raise NodePasswordRejected(
            f"node password rejected: node {node!r} already belongs to another machine (duplicate hostname?). "
            f"Run `kubectl delete node {node}` on the server to let this host take the name, "
            "or give this agent another --node-name (or --with-node-id)")
    # The Node was deleted: the name is free again; this host's password replaces the old one.
    upd = _secret(node, password)
    upd["metadata"]["resourceVersion"] = cur["metadata"].get("resourceVersion", "")
    await client.update("secrets", NAMESPACE, secret_name(node), upd)
