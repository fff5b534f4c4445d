"""registries.yaml parsing, hosts.toml rendering, certs.d writing, pull credentials."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from minik.agent.registries import (
    Registries,
    RegistriesError,
    image_registry_host,
    load_registries,
    parse_registries,
    render_hosts,
    write_certs_d,
)


def parse(text: str) -> Registries:
    return parse_registries(yaml.safe_load(text))


@pytest.mark.parametrize(
    ("image", "host"),
    [
        ("busybox", "docker.io"),
        ("library/busybox:1.36", "docker.io"),
        ("docker.io/library/busybox", "docker.io"),
        ("index.docker.io/foo/bar", "docker.io"),
        ("ghcr.io/org/app:v1", "ghcr.io"),
        ("127.0.0.1:5000/busybox:latest", "127.0.0.1:5000"),
        ("localhost/minik/pause:x", "localhost"),
        ("quay.io/a/b@sha256:" + "0" * 64, "quay.io"),
        ("user/repo", "docker.io"),
    ],
)
def test_image_registry_host(image: str, host: str) -> None:
    assert image_registry_host(image) == host


def test_docker_hub_mirror_over_plain_http() -> None:
    regs = parse('mirrors:\n  docker.io:\n    endpoint: ["http://127.0.0.1:5000"]\n')
    files = render_hosts(regs)
    assert list(files) == ["docker.io"]
    doc = tomllib.loads(files["docker.io"])
    assert doc["server"] == "https://registry-1.docker.io"
    assert doc["host"] == {"http://127.0.0.1:5000": {"capabilities": ["pull", "resolve"]}}


def test_endpoints_keep_order_tls_and_paths() -> None:
    regs = parse("""
mirrors:
  registry.example.com:
    endpoint:
      - mirror.example:8443
      - https://cache.example/some/prefix
configs:
  mirror.example:8443:
    tls: {ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem}
  registry.example.com:
    tls: {insecure_skip_verify: true}
""")
    text = render_hosts(regs)["registry.example.com"]
    doc = tomllib.loads(text)
    assert doc["server"] == "https://registry.example.com"
    assert doc["skip_verify"] is True
    hosts = list(doc["host"])
    assert hosts == ["https://mirror.example:8443", "https://cache.example/some/prefix/v2"]
    first = doc["host"]["https://mirror.example:8443"]
    assert first["ca"] == "/ca.pem" and first["client"] == [["/c.pem", "/k.pem"]]
    assert doc["host"]["https://cache.example/some/prefix/v2"]["override_path"] is True


def test_wildcard_mirror_goes_to_default_dir_and_tls_only_registry_gets_a_file() -> None:
    regs = parse("""
mirrors:
  "*":
    endpoint: ["https://cache.example"]
configs:
  private.example:
    tls: {ca_file: /private-ca.pem}
  authonly.example:
    auth: {username: u, password: p}
""")
    files = render_hosts(regs)
    assert set(files) == {"_default", "private.example"}
    assert "server" not in tomllib.loads(files["_default"])
    private = tomllib.loads(files["private.example"])
    assert private == {"server": "https://private.example", "ca": "/private-ca.pem"}


def test_rewrites_are_parsed_but_warned(caplog: pytest.LogCaptureFixture) -> None:
    regs = parse('mirrors:\n  docker.io:\n    endpoint: ["https://m"]\n'
                 '    rewrite:\n      "^rancher/(.*)": "mirror/rancher/$1"\n')
    assert regs.mirrors["docker.io"].rewrites == (("^rancher/(.*)", "mirror/rancher/$1"),)
    render_hosts(regs)
    assert "rewrite" in caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mirrors: []", "mirrors: expected a mapping"),
        ("mirrors:\n  docker.io:\n    endpoint: 5\n", "mirrors.docker.io.endpoint"),
        ("configs:\n  r:\n    tls: {insecure_skip_verify: 'yes'}\n", "insecure_skip_verify"),
        ("configs:\n  r:\n    tls: {cert_file: /c.pem}\n", "cert_file and key_file"),
        ("configs:\n  r:\n    auth: {username: [1]}\n", "configs.r.auth.username"),
    ],
)
def test_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(RegistriesError, match=message):
        parse(text)


def test_auths_and_auth_for_image() -> None:
    regs = parse("""
mirrors:
  docker.io:
    endpoint: ["https://public-mirror.example", "https://mirror.example"]
configs:
  mirror.example:
    auth: {username: mu, password: mp}
  ghcr.io:
    auth: {token: tok}
  registry.example.com:
    auth: {auth: dXNlcjpwYXNz, identity_token: idt}
""")
    auths = regs.auths()
    assert auths["mirror.example"].username == "mu"
    # containerd URL-parses server_address and matches the request's host against it.
    assert auths["mirror.example"].server_address == "https://mirror.example"
    assert auths["ghcr.io"].registry_token == "tok"
    assert auths["registry.example.com"].auth == "dXNlcjpwYXNz"
    assert auths["registry.example.com"].identity_token == "idt"
    # A mirrored registry uses the first mirror endpoint that has credentials.
    hub = regs.auth_for_image("busybox")
    assert hub is not None and hub.server_address == "https://mirror.example"
    ghcr = regs.auth_for_image("ghcr.io/o/app:1")
    assert ghcr is not None and ghcr.registry_token == "tok"
    assert regs.auth_for_image("quay.io/x/y") is None


def test_load_missing_file_is_empty(tmp_path: Path) -> None:
    assert load_registries(str(tmp_path / "nope.yaml")) == Registries()
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_registries(str(empty)) == Registries()
    broken = tmp_path / "broken.yaml"
    broken.write_text("mirrors: [\n")
    with pytest.raises(RegistriesError, match="broken.yaml"):
        load_registries(str(broken))


def test_write_certs_d_replaces_only_our_files(tmp_path: Path) -> None:
    certs = tmp_path / "certs.d"
    foreign = certs / "handmade.example"
    foreign.mkdir(parents=True)
    (foreign / "hosts.toml").write_text('server = "https://handmade.example"\n')
    first = parse('mirrors:\n  docker.io:\n    endpoint: ["http://a:5000"]\n'
                  '  quay.io:\n    endpoint: ["http://b:5000"]\n')
    assert write_certs_d(first, str(certs)) == ["docker.io", "quay.io"]
    assert (certs / "quay.io" / "hosts.toml").exists()
    second = parse('mirrors:\n  docker.io:\n    endpoint: ["http://c:5000"]\n')
    assert write_certs_d(second, str(certs)) == ["docker.io"]
    assert not (certs / "quay.io").exists()
    assert "http://c:5000" in (certs / "docker.io" / "hosts.toml").read_text()
    assert (foreign / "hosts.toml").exists()


def test_auth_server_address_is_a_url_whose_host_containerd_matches() -> None:
    from urllib.parse import urlsplit

    from minik.agent.registries import auth_server_address

    assert urlsplit(auth_server_address("127.0.0.1:5000")).netloc == "127.0.0.1:5000"
    assert urlsplit(auth_server_address("ghcr.io")).netloc == "ghcr.io"
    assert urlsplit(auth_server_address("docker.io")).netloc == "registry-1.docker.io"
