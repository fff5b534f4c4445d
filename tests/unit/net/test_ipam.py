from __future__ import annotations

import ipaddress
import threading
from pathlib import Path

import pytest

from minik.net.ipam import IPAM, Allocation, IPAMError, SubnetExhausted


def make_ipam(tmp_path: Path, subnet: str = "10.42.0.0/24") -> IPAM:
    return IPAM(tmp_path / "ipam", subnet)


def test_allocates_after_gateway_and_is_idempotent(tmp_path: Path) -> None:
    ipam = make_ipam(tmp_path)
    first = ipam.allocate("c1")
    assert first == ipaddress.IPv4Interface("10.42.0.2/24")
    assert ipam.allocate("c1") == first
    assert ipam.allocate("c2").ip == ipaddress.IPv4Address("10.42.0.3")
    assert ipam.gateway == ipaddress.IPv4Address("10.42.0.1")


def test_allocation_is_a_file_named_by_ip_holding_the_owner(tmp_path: Path) -> None:
    ipam = make_ipam(tmp_path)
    ipam.allocate("abc")
    assert (tmp_path / "ipam" / "10.42.0.2").read_text() == "abc\n"
    assert not list((tmp_path / "ipam").glob("*.tmp"))


def test_persists_across_instances(tmp_path: Path) -> None:
    make_ipam(tmp_path).allocate("c1")
    make_ipam(tmp_path).allocate("c2")
    again = make_ipam(tmp_path)
    assert again.lookup("c1") == ipaddress.IPv4Address("10.42.0.2")
    assert again.lookup("c2") == ipaddress.IPv4Address("10.42.0.3")
    assert again.allocate("c3").ip == ipaddress.IPv4Address("10.42.0.4")


def test_release_is_idempotent_and_removes_file(tmp_path: Path) -> None:
    ipam = make_ipam(tmp_path)
    ipam.allocate("c1")
    assert ipam.release("c1") == ipaddress.IPv4Address("10.42.0.2")
    assert ipam.release("c1") is None
    assert ipam.lookup("c1") is None
    assert not (tmp_path / "ipam" / "10.42.0.2").exists()
    assert make_ipam(tmp_path).list() == []


def test_freed_address_is_not_reused_immediately(tmp_path: Path) -> None:
    ipam = make_ipam(tmp_path)
    ipam.allocate("c1")
    ipam.release("c1")
    assert ipam.allocate("c2").ip == ipaddress.IPv4Address("10.42.0.3")


def test_never_hands_out_network_gateway_or_broadcast_and_exhausts(tmp_path: Path) -> None:
    ipam = make_ipam(tmp_path, "10.42.0.0/29")  # 8 addresses, 5 usable
    got = {str(ipam.allocate(f"c{i}").ip) for i in range(5)}
    assert got == {f"10.42.0.{i}" for i in range(2, 7)}
    with pytest.raises(SubnetExhausted):
        ipam.allocate("one-too-many")
    ipam.release("c0")
    assert str(ipam.allocate("late").ip) == "10.42.0.2"  # wraps around past broadcast


def test_list_and_release_all_except(tmp_path: Path) -> None:
    ipam = make_ipam(tmp_path)
    for cid in ("a", "b", "c"):
        ipam.allocate(cid)
    freed = ipam.release_all_except(["b"])
    assert freed == [
        Allocation(ipaddress.IPv4Address("10.42.0.2"), "a"),
        Allocation(ipaddress.IPv4Address("10.42.0.4"), "c"),
    ]
    assert ipam.list() == [Allocation(ipaddress.IPv4Address("10.42.0.3"), "b")]
    assert ipam.release_all_except(["b"]) == []


def test_load_drops_uncommitted_temp_files_and_ignores_foreign_entries(tmp_path: Path) -> None:
    state = tmp_path / "ipam"
    state.mkdir()
    (state / "10.42.0.9.tmp").write_text("half")
    (state / "10.99.0.5").write_text("other-subnet\n")
    (state / "README").write_text("not an address")
    (state / "10.42.0.7").write_text("owner\n")
    ipam = make_ipam(tmp_path)
    assert ipam.list() == [Allocation(ipaddress.IPv4Address("10.42.0.7"), "owner")]
    assert not (state / "10.42.0.9.tmp").exists()
    assert (state / "10.99.0.5").exists()


def test_rejects_bad_owner_and_tiny_subnet(tmp_path: Path) -> None:
    ipam = make_ipam(tmp_path)
    for bad in ("", "a/b", "a\nb"):
        with pytest.raises(IPAMError):
            ipam.allocate(bad)
    with pytest.raises(IPAMError):
        IPAM(tmp_path / "x", "10.0.0.0/31")


def test_concurrent_allocations_are_distinct(tmp_path: Path) -> None:
    ipam = make_ipam(tmp_path)
    results: dict[str, str] = {}

    def worker(n: int) -> None:
        for i in range(10):
            cid = f"w{n}-{i}"
            results[cid] = str(ipam.allocate(cid).ip)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results.values())) == 40
    assert len(make_ipam(tmp_path).list()) == 40
