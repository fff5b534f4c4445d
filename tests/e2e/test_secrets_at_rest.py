"""Secrets encrypted at rest (AES-GCM, on by default): the SQLite files (db and -wal) never hold
a Secret's value, plaintext left from an unencrypted start is sealed at the next start, writes
acknowledged before kill -9 come back, and `minik secrets-encrypt status|rotate` works against the
running daemon (root-only control socket) and offline."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.minikd import Minik, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture()
def server() -> Iterator[Minik]:
    root = tempfile.mkdtemp(prefix="minik-e2e-secrets-")
    m = Minik(root, free_port(), ["--disable-agent"])
    try:
        yield m
    finally:
        if m.proc is not None and m.proc.poll() is None:
            m.stop()
        if os.environ.get("MINIK_KEEP_TEST_DIRS") != "1":
            shutil.rmtree(root, ignore_errors=True)


def db_files(m: Minik) -> list[str]:
    db = os.path.join(m.data_dir, "server", "db", "state.db")
    return [p for p in (db, db + "-wal", db + "-journal") if os.path.exists(p)]


def on_disk(m: Minik, needle: bytes) -> list[str]:
    """Database files that contain `needle` (raw, or base64 as the API stores Secret data)."""
    forms = {needle, base64.b64encode(needle)}
    found = []
    for p in db_files(m):
        with open(p, "rb") as f:
            data = f.read()
        if any(x in data for x in forms):
            found.append(p)
    return found


def create_secret(m: Minik, name: str, value: str) -> None:
    m.kubectl("create", "secret", "generic", name, f"--from-literal=password={value}")


def read_secret(m: Minik, name: str) -> str:
    out = m.kubectl("get", "secret", name, "-o", "jsonpath={.data.password}").stdout
    return base64.b64decode(out).decode()


def secrets_encrypt(m: Minik, command: str, *, user: int | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "minik", "secrets-encrypt", command, "--data-dir", m.data_dir, "-o", "json"]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def status_json(m: Minik, command: str = "status") -> dict[str, object]:
    r = secrets_encrypt(m, command)
    assert r.returncode == 0, r.stderr
    out: dict[str, object] = json.loads(r.stdout)
    return out


def test_secret_values_never_reach_the_database(server: Minik) -> None:
    server.start()
    value = "pw-" + uuid.uuid4().hex
    create_secret(server, "db-creds", value)
    # stringData, an update and a patch go through the same path.
    code, _ = server.raw_json("POST", "/api/v1/namespaces/default/secrets",
                              {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s2"},
                               "stringData": {"password": value + "-2"}})
    assert code == 201
    code, _ = server.raw_json("PATCH", "/api/v1/namespaces/default/secrets/s2",
                              {"stringData": {"other": value + "-3"}}, content_type="application/merge-patch+json")
    assert code == 200
    assert read_secret(server, "db-creds") == value
    # The API still serves plaintext to whoever may read it: LIST and watch (from memory).
    listed = server.kubectl("get", "secrets", "-o", "json").stdout
    assert base64.b64encode(value.encode()).decode() in listed
    watched = server.kubectl("get", "secrets", "--watch-only=false", "-w", "--request-timeout=2s", "-o", "json",
                             check=False).stdout
    assert base64.b64encode(value.encode()).decode() in watched
    for needle in (value, value + "-2", value + "-3"):
        assert on_disk(server, needle.encode()) == []
    # The rows are there, sealed under the key of the key file.
    with open(db_files(server)[0], "rb") as f:
        content = f.read()
    wal = db_files(server)[1] if len(db_files(server)) > 1 else ""
    if wal:
        with open(wal, "rb") as f:
            content += f.read()
    assert b"k8s:enc:aesgcm:v1:aesgcmkey-" in content
    # Files: the key file and the database are root-only, as is server/.
    server_dir = os.path.join(server.data_dir, "server")
    assert stat.S_IMODE(os.stat(server_dir).st_mode) == 0o700
    key_file = os.path.join(server_dir, "encryption-config")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    doc = json.load(open(key_file))
    assert doc["kind"] == "EncryptionConfiguration"
    assert "aesgcm" in doc["resources"][0]["providers"][0]
    for p in db_files(server):
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p
    assert stat.S_IMODE(os.stat(os.path.join(server_dir, "secrets-encrypt.sock")).st_mode) == 0o600


def test_kill9_then_plaintext_from_an_unencrypted_start_is_sealed(server: Minik) -> None:
    server.extra.append("--no-secrets-encryption")
    server.start()
    plain = "plain-" + uuid.uuid4().hex
    create_secret(server, "legacy", plain)
    for i in range(3):   # history rows (superseded versions) hold the value too
        server.kubectl("label", "secret", "legacy", f"rev={i}", "--overwrite")
    assert server.stop() == 0
    assert on_disk(server, plain.encode()), "control: without encryption the value is in the file"
    server.extra.remove("--no-secrets-encryption")
    server.start()
    assert on_disk(server, plain.encode()) == []
    assert read_secret(server, "legacy") == plain
    st = status_json(server)
    assert st["enabled"] is True and st["plaintextRows"] == 0 and st["stage"] == "start"
    # Acknowledged writes survive kill -9 and decrypt on the next start.
    fresh = "after-kill-" + uuid.uuid4().hex
    create_secret(server, "fresh", fresh)
    server.stop(signal.SIGKILL)
    server.start()
    assert read_secret(server, "fresh") == fresh
    assert read_secret(server, "legacy") == plain
    assert on_disk(server, fresh.encode()) == [] and on_disk(server, plain.encode()) == []


def test_rotate_through_the_cli_against_the_running_daemon_and_offline(server: Minik) -> None:
    server.start()
    value = "rot-" + uuid.uuid4().hex
    create_secret(server, "rotated", value)
    for i in range(5):
        create_secret(server, f"more-{i}", f"{value}-{i}")
    before = status_json(server)
    assert before["source"] == "server" and before["stage"] == "start"
    [old_key] = before["keys"]  # type: ignore[misc]
    assert old_key["active"] and old_key["rows"] >= 6 and old_key["hash"].startswith("sha256:")
    # A local non-root user cannot use the control socket (nor read the key file).
    denied = secrets_encrypt(server, "rotate", user=65534)
    assert denied.returncode != 0
    # Without its socket the running daemon is still detected: no offline rewrite under its feet.
    sock = os.path.join(server.data_dir, "server", "secrets-encrypt.sock")
    os.rename(sock, sock + ".away")
    try:
        busy = secrets_encrypt(server, "rotate")
        assert busy.returncode != 0 and "running" in busy.stderr, busy.stderr
    finally:
        os.rename(sock + ".away", sock)
    after = status_json(server, "rotate")
    assert after["source"] == "server"
    [new_key] = after["keys"]  # type: ignore[misc]
    assert new_key["name"] != old_key["name"] and new_key["hash"] != old_key["hash"]
    assert new_key["rows"] == old_key["rows"]
    assert after["stage"] == "start" and after["plaintextRows"] == 0
    # The old key is gone from the key file and from every row; the daemon still serves the value,
    # and new writes use the new key.
    key_file = open(os.path.join(server.data_dir, "server", "encryption-config")).read()
    assert old_key["name"] not in key_file and new_key["name"] in key_file
    assert read_secret(server, "rotated") == value
    create_secret(server, "post-rotation", value + "-post")
    st = status_json(server)
    assert st["keys"][0]["rows"] == new_key["rows"] + 1  # type: ignore[index]
    text = secrets_encrypt(server, "status")
    assert "Encryption Status: Enabled" in text.stdout or text.returncode == 0
    assert server.stop() == 0
    for p in db_files(server):
        with open(p, "rb") as f:
            assert old_key["name"].encode() not in f.read()
    # Offline (daemon stopped): status and another rotation work on the files.
    off = status_json(server)
    assert off["source"] == "offline" and off["keys"][0]["name"] == new_key["name"]  # type: ignore[index]
    off2 = status_json(server, "rotate")
    assert off2["source"] == "offline" and off2["keys"][0]["name"] != new_key["name"]  # type: ignore[index]
    server.start()
    assert read_secret(server, "rotated") == value
    assert read_secret(server, "post-rotation") == value + "-post"
    assert on_disk(server, value.encode()) == []
    human = subprocess.run([sys.executable, "-m", "minik", "secrets-encrypt", "status", "--data-dir", server.data_dir],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert "Encryption Status: Enabled" in human and off2["keys"][0]["hash"] in human  # type: ignore[index]
