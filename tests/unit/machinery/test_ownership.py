"""ControllerRefManager semantics: adopt matching orphans, release owned ones that stopped
matching, never touch another controller's objects; writes carry the resourceVersion."""

from __future__ import annotations

from typing import Any

from minik.apis.selectors import LabelSelector
from minik.client import ClientError, Obj
from minik.machinery import ownership
from minik.machinery.pods import available_in, is_active, pod_from_template, pod_ready
from tests.support.builders import make_deployment, make_pod, make_replicaset, owner_ref

D = make_deployment("web", uid="d1")
SEL = LabelSelector.from_api({"matchLabels": {"app": "web"}})


def rs(name: str, labels: dict[str, str], owner: Obj | None = None, **meta: Any) -> Obj:
    out = make_replicaset(name, labels=labels, owners=[owner_ref(owner)] if owner else None, uid=f"u-{name}")
    out["metadata"].update(meta)
    return out


def names(objs: tuple[Obj, ...] | list[Obj]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)


def test_claim_table() -> None:
    other = make_deployment("other", uid="d2")
    cands = [rs("mine", {"app": "web"}, D), rs("mine-moved", {"app": "api"}, D), rs("orphan", {"app": "web"}),
             rs("orphan-other", {"app": "api"}), rs("theirs", {"app": "web"}, other),
             rs("orphan-dying", {"app": "web"}, deletionTimestamp="2025-01-01T00:00:00Z"),
             {"metadata": {"name": "garbage", "ownerReferences": 1, "labels": {"app": "web"}}}]
    c = ownership.claim(D, SEL, cands)
    assert names(c.owned) == ["mine"]
    assert names(c.release) == ["mine-moved"]
    # A malformed ownerReferences reads as an orphan; kube would adopt it (the write then fails
    # or repairs it): it is never mistaken for another controller's object.
    assert names(c.adopt) == ["garbage", "orphan"]


def test_deleting_owner_keeps_what_it_has_and_adopts_nothing() -> None:
    dying = make_deployment("web", uid="d1")
    dying["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    c = ownership.claim(dying, SEL, [rs("mine-moved", {"app": "api"}, D), rs("orphan", {"app": "web"})])
    assert names(c.owned) == ["mine-moved"] and c.adopt == () and c.release == ()


class PatchClient:
    def __init__(self, missing: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.patches: list[tuple[str, str, Any]] = []
        self.missing = missing

    async def patch(self, resource: str, namespace: str, name: str, body: Any, patch_type: str = "",
                    subresource: str = "", field_manager: str = "") -> Obj:
        if name in self.missing:
            raise ClientError(404, "NotFound", "gone")
        self.patches.append((resource, name, body))
        return {"metadata": {"name": name, **body["metadata"]}}


async def test_claim_and_write_adopts_and_releases() -> None:
    c = PatchClient(missing={"orphan-gone"})
    moved = rs("mine-moved", {"app": "api"}, D, resourceVersion="7")
    moved["metadata"]["ownerReferences"].append({"apiVersion": "v1", "kind": "X", "name": "x", "uid": "keep"})
    out = await ownership.claim_and_write(c, "apps/replicasets", D, "apps/v1", "Deployment", SEL,  # type: ignore[arg-type]
                                          [rs("mine", {"app": "web"}, D), rs("orphan", {"app": "web"}, resourceVersion="5"),
                                           rs("orphan-gone", {"app": "web"}), moved], "deployment-controller")
    assert names(out) == ["mine", "orphan"]
    by_name = {name: body for _, name, body in c.patches}
    assert by_name["orphan"]["metadata"]["resourceVersion"] == "5"
    assert by_name["orphan"]["metadata"]["ownerReferences"] == [owner_ref(D) | {"apiVersion": "apps/v1", "kind": "Deployment"}]
    assert by_name["mine-moved"]["metadata"] == {"ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "keep"}],
                                                 "resourceVersion": "7"}


async def test_release_of_the_only_reference_clears_the_field() -> None:
    c = PatchClient()
    await ownership.release(c, "pods", D, make_pod("p", owners=[owner_ref(D)]), "x")  # type: ignore[arg-type]
    assert c.patches[0][2]["metadata"]["ownerReferences"] is None


def test_pod_helpers() -> None:
    import datetime as dt
    now = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    p = make_pod("p", ready=True, phase="Running")
    assert pod_ready(p) and is_active(p) and available_in(p, 0, now) == 0.0
    assert not pod_ready(make_pod("q", ready=False)) and available_in(make_pod("q", ready=False), 5, now) is None
    assert not is_active(make_pod("s", phase="Succeeded"))
    assert not pod_ready({"metadata": {"name": "bad"}, "status": {"conditions": 1}})
    tmpl = pod_from_template(make_replicaset("web", uid="r1"), "apps/v1", "ReplicaSet")
    assert tmpl["metadata"]["generateName"] == "web-" and tmpl["metadata"]["ownerReferences"][0]["uid"] == "r1"
    assert tmpl["metadata"]["labels"] == {"app": "web"}
