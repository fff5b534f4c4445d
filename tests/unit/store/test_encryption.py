"""AES-GCM transformer, key file and rotation against a real Store on a temporary SQLite file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from minik.store.encryption import (
    IDENTITY,
    EncryptionError,
    KeySet,
    Transformer,
    ensure_config,
    key_name_of,
    new_key,
    parse_config,
    read_config,
    render_config,
    row_context,
)
from minik.store.keyctl import compute_status, rotate, status
from minik.store.store import Store

CTX = row_context("secrets", "default", "s")


def test_seal_open_round_trip_and_context_binding() -> None:
    t = Transformer(KeySet((new_key(),)))
    sealed = t.seal('{"data":{"a":"c2VjcmV0"}}', CTX)
    assert sealed.startswith("k8s:enc:aesgcm:v1:aesgcmkey-") and "c2VjcmV0" not in sealed
    assert t.seal('{"x":1}', CTX) != t.seal('{"x":1}', CTX)  # fresh nonce every time
    assert t.open(sealed, CTX) == '{"data":{"a":"c2VjcmV0"}}'
    with pytest.raises(EncryptionError):   # copied onto another object: does not open
        t.open(sealed, row_context("secrets", "default", "other"))
    with pytest.raises(EncryptionError, match="does not hold"):
        Transformer(KeySet((new_key(),))).open(sealed, CTX)
    assert t.open('{"plain":true}', CTX) == '{"plain":true}'   # identity still reads
    assert key_name_of('{"plain":true}') == IDENTITY
    assert key_name_of("k8s:enc:aesgcm:v1:my:key:with:colons:QUJD") == "my:key:with:colons"


def test_disabled_writes_plaintext_but_reads_sealed() -> None:
    ks = KeySet((new_key(),))
    sealed = Transformer(ks).seal("{}", CTX)
    off = Transformer(ks, enabled=False)
    assert off.seal("{}", CTX) == "{}" and off.open(sealed, CTX) == "{}" and off.write_key == IDENTITY


def test_key_file(tmp_path: Path) -> None:
    path = str(tmp_path / "server" / "encryption-config")
    ks = ensure_config(path)
    assert len(ks.keys) == 1 and len(ks.keys[0].secret) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ensure_config(path) == ks == read_config(path)
    assert parse_config(render_config(ks)) == ks
    with pytest.raises(EncryptionError):
        parse_config(b'{"resources":[{"providers":[{"aesgcm":{"keys":[{"name":"k","secret":"c2hvcnQ="}]}}]}]}')


def test_status_stages() -> None:
    a, b = new_key(), new_key(KeySet(()))
    one = KeySet((a,))
    assert compute_status(one, True, {a.name: 3}).stage == "start"
    assert compute_status(one, True, {a.name: 3, IDENTITY: 1}).stage == "reencrypt_pending"
    assert compute_status(KeySet((b, a)), True, {b.name: 3}).stage == "rotating"
    s = compute_status(one, False, {IDENTITY: 2})
    assert s.plaintext_rows == 2 and not s.keys[0].active


async def test_rotation_rewrites_every_row_including_history(tmp_path: Path) -> None:
    db = str(tmp_path / "db" / "state.db")
    cfg = str(tmp_path / "encryption-config")
    # Written in plaintext first (encryption off), with history rows.
    store = Store(db, transformer=Transformer(KeySet(()), enabled=False))
    await store.start()
    for i in range(3):
        obj = {"metadata": {"name": "s", "namespace": "default"}, "data": {"v": f"plain-value-{i}"}}
        await (store.create("secrets", obj) if i == 0 else store.update("secrets", obj))
    await store.create("configmaps", {"metadata": {"name": "c", "namespace": "default"}, "data": {"v": "plain-value-cm"}})
    await store.close()
    raw = open(db, "rb").read()
    assert b"plain-value-0" in raw
    # Encrypted start: every secret row (3) is sealed; configmaps are not encrypted resources.
    keys = ensure_config(cfg)
    store = Store(db, transformer=Transformer(keys))
    await store.start()
    try:
        assert (await store.key_usage()) == {keys.keys[0].name: 3}
        assert store.get("secrets", "default", "s")["data"]["v"] == "plain-value-2"  # type: ignore[index]
        s = await rotate(cfg, store, True)
        new = s.keys[0]
        assert new.name != keys.keys[0].name and new.rows == 3 and len(s.keys) == 1
        assert (await store.key_usage()) == {new.name: 3}
        assert read_config(cfg) is not None and [k.name for k in read_config(cfg).keys] == [new.name]  # type: ignore[union-attr]
        assert (await status(cfg, store, True)).stage == "start"
    finally:
        await store.close()
    data = open(db, "rb").read() + (open(db + "-wal", "rb").read() if os.path.exists(db + "-wal") else b"")
    for i in range(3):
        assert f"plain-value-{i}".encode() not in data
    assert keys.keys[0].name.encode() not in data
    assert b"plain-value-cm" in data
    # And it loads again with the rotated key file only.
    store = Store(db, transformer=Transformer(read_config(cfg)))  # type: ignore[arg-type]
    await store.start()
    try:
        assert store.get("secrets", "default", "s")["data"]["v"] == "plain-value-2"  # type: ignore[index]
    finally:
        await store.close()


async def test_start_finishes_an_interrupted_rotation(tmp_path: Path) -> None:
    """Crash after step 1 of a rotation (key file has [new, old], rows still under old): the next
    start re-encrypts every row under the new key; nothing is lost."""
    from minik.store.encryption import write_config

    db = str(tmp_path / "db" / "state.db")
    cfg = str(tmp_path / "encryption-config")
    old = ensure_config(cfg)
    store = Store(db, transformer=Transformer(old))
    await store.start()
    for i in range(4):
        await store.create("secrets", {"metadata": {"name": f"s{i}", "namespace": "ns"}, "data": {"v": f"value-{i}"}})
    await store.close()
    staged = KeySet((new_key(old), *old.keys))
    write_config(cfg, staged)     # step 1 durable, then kill -9
    store = Store(db, transformer=Transformer(read_config(cfg)))  # type: ignore[arg-type]
    await store.start()
    try:
        assert (await store.key_usage()) == {staged.keys[0].name: 4}
        assert [store.get("secrets", "ns", f"s{i}")["data"]["v"] for i in range(4)] == [f"value-{i}" for i in range(4)]  # type: ignore[index]
        s = await status(cfg, store, True)
        assert s.stage == "rotating" and len(s.keys) == 2   # the next rotate (or this one again) drops the old key
        s = await rotate(cfg, store, True)
        assert s.stage == "start" and len(s.keys) == 1 and s.keys[0].rows == 4
    finally:
        await store.close()
