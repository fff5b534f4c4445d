import pytest

from minik.api import status as st
from minik.api.proxy import ProxyName, Upstream, parse_proxy_name, proxied_path, resolve_pod, resolve_service

POD = {"status": {"podIP": "10.42.0.7"},
       "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]}}


def test_parse_names() -> None:
    assert parse_proxy_name("web") == ProxyName("", "web", "")
    assert parse_proxy_name("web:8080") == ProxyName("", "web", "8080")
    assert parse_proxy_name("https:web:443") == ProxyName("https", "web", "443")
    with pytest.raises(st.StatusError):
        parse_proxy_name("a:b:c:d")


def test_pod_ports_by_number_name_and_default() -> None:
    assert resolve_pod(POD, ProxyName("", "p", "8081")) == Upstream("http", "10.42.0.7", 8081)
    assert resolve_pod(POD, ProxyName("", "p", "http")) == Upstream("http", "10.42.0.7", 8080)
    assert resolve_pod(POD, ProxyName("", "p", "")) == Upstream("http", "10.42.0.7", 80)
    with pytest.raises(st.StatusError) as e:
        resolve_pod({"status": {}}, ProxyName("", "p", "80"))
    assert e.value.code == 503


def test_service_picks_a_ready_address_on_the_matching_target_port() -> None:
    svc = {"spec": {"ports": [{"name": "web", "port": 80, "targetPort": 8080}, {"name": "metrics", "port": 9090}]}}
    eps = {"subsets": [{"addresses": [{"ip": "10.42.0.9"}],
                        "ports": [{"name": "web", "port": 8080}, {"name": "metrics", "port": 9090}]}]}
    assert resolve_service(svc, eps, ProxyName("", "s", "80")) == Upstream("http", "10.42.0.9", 8080)
    assert resolve_service(svc, eps, ProxyName("", "s", "metrics")) == Upstream("http", "10.42.0.9", 9090)
    with pytest.raises(st.StatusError) as e:
        resolve_service(svc, {"subsets": []}, ProxyName("", "s", "80"))
    assert "no endpoints available" in e.value.body()["message"]


def test_proxied_path() -> None:
    assert proxied_path("/api/v1/namespaces/d/pods/web:80/proxy/a/b", "web:80") == "/a/b"
    assert proxied_path("/api/v1/namespaces/d/pods/web/proxy", "web") == "/"
