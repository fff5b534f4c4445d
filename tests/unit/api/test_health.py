from minik.api.health import Check, evaluate

CHECKS = [Check("ping", lambda: True), Check("etcd", lambda: True)]


def test_plain_and_verbose() -> None:
    assert evaluate("livez", CHECKS, "", {}).text == "ok"
    r = evaluate("livez", CHECKS, "", {"verbose": ""})
    assert r.code == 200 and r.text == "[+]ping ok\n[+]etcd ok\nlivez check passed\n"


def test_a_failed_check_is_500_and_named() -> None:
    checks = [Check("ping", lambda: True), Check("etcd", lambda: False)]
    r = evaluate("readyz", checks, "", {})
    assert r.code == 500 and "[-]etcd failed" in r.text and r.text.endswith("readyz check failed\n")
    assert evaluate("readyz", checks, "", {}, excluded=["etcd"]).code == 200


def test_single_check() -> None:
    assert evaluate("readyz", CHECKS, "etcd", {}).text == "ok"
    assert evaluate("readyz", CHECKS, "nope", {}).code == 404
    assert evaluate("readyz", [Check("etcd", lambda: False)], "etcd", {}).code == 500
