"""Secrets at rest: AES-GCM value transformer and the encryption config file.

Role: the store's SQL adapter (`minik.store.db`) passes the JSON of every row of an encrypted
resource (Secrets) through `Transformer.seal` before it reaches the database, and through
`Transformer.open` when it loads it back, so every write path (create, update, patch, apply,
delete tombstones) and every read path (start-up load, then LIST/GET/watch from memory) goes
through here and nothing else. The in-memory cache and watch ring hold plaintext, as
kube-apiserver's watch cache does.

Format follows kube-apiserver's `aesgcm` provider: a stored value is
`k8s:enc:aesgcm:v1:<key name>:<base64(nonce ‖ ciphertext ‖ tag)>`, with a fresh 12-byte random
nonce per write and the row's key (`/<resource>/<namespace>/<name>`) as additional
authenticated data, so a ciphertext copied onto another object does not decrypt. Plain JSON
(a value starting with `{`) is the `identity` provider: readable, re-encrypted at start.

The key file (`<data-dir>/server/encryption-config`, 0600) is an `EncryptionConfiguration`
(apiserver.config.k8s.io/v1) like k3s's: the first `aesgcm` key encrypts, every key decrypts,
`identity` last so plaintext stays readable. Neighbours: `minik.store.keyctl` (rotation and the
control socket used by `minik secrets-encrypt`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets as _secrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "k8s:enc:aesgcm:v1:"
IDENTITY = "identity"
NONCE_BYTES = 12
KEY_BYTES = 32
ENCRYPTED_RESOURCES = frozenset({"secrets"})


class EncryptionError(Exception):
    """A stored value cannot be decrypted (unknown key, tampered data) or the key file is bad."""


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    secret: bytes

    @property
    def hash(self) -> str:
        """What `status` shows: identifies the key without revealing it."""
        return "sha256:" + hashlib.sha256(self.secret).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class KeySet:
    """Keys in config order: keys[0] encrypts new writes; all of them decrypt."""

    keys: tuple[Key, ...]

    @property
    def primary(self) -> Key | None:
        return self.keys[0] if self.keys else None

    def find(self, name: str) -> Key | None:
        return next((k for k in self.keys if k.name == name), None)


def new_key(existing: KeySet | None = None) -> Key:
    """A fresh 256-bit key named like k3s names its keys (`aesgcmkey-<time>`, plus a random tag
    so two keys made in one second differ), unique in `existing`."""
    while True:
        name = f"aesgcmkey-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{_secrets.token_hex(3)}"
        if existing is None or existing.find(name) is None:
            return Key(name, _secrets.token_bytes(KEY_BYTES))


# ---- the config file -------------------------------------------------------------------------------

def render_config(keyset: KeySet) -> bytes:
    doc = {
        "kind": "EncryptionConfiguration",
        "apiVersion": "apiserver.config.k8s.io/v1",
        "resources": [{
            "resources": sorted(ENCRYPTED_RESOURCES),
            "providers": [
                {"aesgcm": {"keys": [{"name": k.name, "secret": base64.b64encode(k.secret).decode()}
                                     for k in keyset.keys]}},
                {"identity": {}},
            ],
        }],
    }
    return json.dumps(doc, indent=2).encode() + b"\n"


def parse_config(data: bytes) -> KeySet:
    try:
        doc = json.loads(data)
        keys: list[Key] = []
        for res in doc.get("resources") or []:
            for provider in res.get("providers") or []:
                for k in (provider.get("aesgcm") or {}).get("keys") or []:
                    secret = base64.b64decode(str(k["secret"]), validate=True)
                    if len(secret) not in (16, 24, 32):
                        raise EncryptionError(f"key {k.get('name')!r}: AES keys are 16, 24 or 32 bytes, not {len(secret)}")
                    keys.append(Key(str(k["name"]), secret))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise EncryptionError(f"invalid encryption config: {e}") from None
    return KeySet(tuple(keys))


def read_config(path: str) -> KeySet | None:
    try:
        with open(path, "rb") as f:
            return parse_config(f.read())
    except FileNotFoundError:
        return None


def write_config(path: str, keyset: KeySet) -> None:
    """Atomically replace the key file (0600; fsynced, so a rotation step survives a crash)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, render_config(keyset))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def ensure_config(path: str) -> KeySet:
    """The key file's keys, creating it with one new key on first start."""
    keyset = read_config(path)
    if keyset is None or not keyset.keys:
        keyset = KeySet((new_key(),))
        write_config(path, keyset)
    else:
        os.chmod(path, 0o600)
    return keyset


# ---- the transformer -------------------------------------------------------------------------------

def row_context(resource: str, namespace: str, name: str) -> bytes:
    """Additional authenticated data binding a ciphertext to its object."""
    return f"/{resource}/{namespace}/{name}".encode()


def key_name_of(stored: str) -> str:
    """The key a stored value is encrypted with, or IDENTITY for plaintext."""
    if not stored.startswith(PREFIX):
        return IDENTITY
    # The base64 body has no ':', a key name may (k3s names keys with RFC 3339 times).
    return stored[len(PREFIX):].rpartition(":")[0]


class Transformer:
    """Seals values with the primary key (or not at all when `enabled` is False); opens any."""

    def __init__(self, keyset: KeySet, *, enabled: bool = True,
                 resources: frozenset[str] = ENCRYPTED_RESOURCES) -> None:
        if enabled and keyset.primary is None:
            raise EncryptionError("secrets encryption is enabled but the key file has no key")
        self.keyset = keyset
        self.enabled = enabled
        self.resources = resources
        self._aead = {k.name: AESGCM(k.secret) for k in keyset.keys}

    @property
    def write_key(self) -> str:
        """The key name new writes carry (IDENTITY when encryption is off)."""
        primary = self.keyset.primary
        return primary.name if self.enabled and primary is not None else IDENTITY

    def applies(self, resource: str) -> bool:
        return resource in self.resources

    def current(self, stored: str) -> bool:
        """Whether a stored value is already in the form a write would produce now."""
        return key_name_of(stored) == self.write_key

    def seal(self, plaintext: str, context: bytes) -> str:
        primary = self.keyset.primary
        if not self.enabled or primary is None:
            return plaintext
        nonce = _secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead[primary.name].encrypt(nonce, plaintext.encode(), context)
        return f"{PREFIX}{primary.name}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, stored: str, context: bytes) -> str:
        if not stored.startswith(PREFIX):
            return stored
        name, _, body = stored[len(PREFIX):].rpartition(":")
        aead = self._aead.get(name)
        if aead is None:
            raise EncryptionError(f"value is encrypted with key {name!r}, which the key file does not hold")
        try:
            raw = base64.b64decode(body, validate=True)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context).decode()
        except (InvalidTag, ValueError) as e:
            raise EncryptionError(f"value encrypted with key {name!r} does not decrypt: {type(e).__name__}") from None
