"""Server-side apply: create, prune, conflicts, force, and the FieldsV1 it records."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from patch_builders import DEPLOYMENT, make_container, make_deployment, pod_spec

from minik.api.patch import server_side_apply, update_managed_fields
from minik.apis import errors
from minik.apis.schema import Schemas

NGINX_KEY = 'k:{"name":"nginx"}'


def _entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def _apply(schemas: Schemas, live: dict[str, Any] | None, config: dict[str, Any], manager: str = "kubectl",
           force: bool = False, now: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    before = copy.deepcopy((live, config))
    out = server_side_apply(live, config, manager, force, schemas, DEPLOYMENT, now)
    assert (live, config) == before, "inputs must not change"
    return out


def _updated(schemas: Schemas, old: dict[str, Any], change: Any, manager: str) -> dict[str, Any]:
    new = copy.deepcopy(old)
    change(new)
    update_managed_fields(old, new, manager, "Update", "apps/v1", "2026-01-01T00:05:00Z",
                          schemas=schemas, schema_name=DEPLOYMENT)
    return new


def test_create_via_apply_records_fields_v1(schemas: Schemas) -> None:
    config = make_deployment(make_container("nginx", "nginx:1.27", ports=[{"containerPort": 80}]), replicas=2)
    out = _apply(schemas, None, config)
    managed = out["metadata"].pop("managedFields")
    assert out == config
    assert managed == [{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": "2026-01-01T00:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},          # LabelSelector is an atomic map
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {NGINX_KEY: {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                    }}},
                },
            },
        },
    }]


def test_server_owned_metadata_in_config_is_ignored(schemas: Schemas) -> None:
    config = make_deployment()
    config["metadata"].update(resourceVersion="7", uid="u", creationTimestamp="t", generation=3,
                              managedFields=[{"manager": "evil", "operation": "Update", "fieldsType": "FieldsV1",
                                              "fieldsV1": {"f:spec": {}}}])
    out = _apply(schemas, None, config)
    assert not {"resourceVersion", "uid", "creationTimestamp", "generation"} & out["metadata"].keys()
    assert list(_entries(out)) == [("kubectl", "Apply")]


REAPPLY_CASES: list[tuple[str, Any, Any]] = [
    ("label dropped",
     lambda c: c["metadata"]["labels"].pop("tier"),
     lambda o: o["metadata"]["labels"] == {"app": "web"}),
    ("replicas dropped",
     lambda c: c["spec"].pop("replicas"),
     lambda o: "replicas" not in o["spec"]),
    ("container dropped",
     lambda c: pod_spec(c)["containers"].pop(),
     lambda o: [x["name"] for x in pod_spec(o)["containers"]] == ["nginx"]),
    ("env var dropped, other kept",
     lambda c: pod_spec(c)["containers"][0]["env"].pop(0),
     lambda o: pod_spec(o)["containers"][0]["env"] == [{"name": "B", "value": "2"}]),
    ("field changed",
     lambda c: pod_spec(c)["containers"][0].update(image="nginx:1.28"),
     lambda o: pod_spec(o)["containers"][0]["image"] == "nginx:1.28"),
]


@pytest.mark.parametrize(("edit", "check"), [c[1:] for c in REAPPLY_CASES], ids=[c[0] for c in REAPPLY_CASES])
def test_reapply_prunes_what_the_applier_stopped_sending(schemas: Schemas, edit: Any, check: Any) -> None:
    config = make_deployment(make_container(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
                             make_container("sidecar", "busybox"), labels={"app": "web", "tier": "fe"})
    first = _apply(schemas, None, config)
    second_config = copy.deepcopy(config)
    edit(second_config)
    second = _apply(schemas, first, second_config, now="2026-01-02T00:00:00Z")
    assert check(second), second
    entry = _entries(second)[("kubectl", "Apply")]
    assert entry["time"] == "2026-01-02T00:00:00Z"


def test_prune_keeps_fields_other_managers_own(schemas: Schemas) -> None:
    config = make_deployment(labels={"app": "web", "tier": "fe"})
    first = _apply(schemas, None, config)
    # Another writer adds a label and an annotation; the applier never sent those.
    touched = _updated(schemas, first, lambda o: o["metadata"]["labels"].update(team="x"), "kubectl-label")
    second_config = copy.deepcopy(config)
    second_config["metadata"]["labels"].pop("tier")
    second = _apply(schemas, touched, second_config)
    assert second["metadata"]["labels"] == {"app": "web", "team": "x"}
    assert _entries(second)[("kubectl-label", "Update")]["fieldsV1"] == {"f:metadata": {"f:labels": {"f:team": {}}}}


def test_conflict_with_update_manager_names_field_and_manager(schemas: Schemas) -> None:
    first = _apply(schemas, None, make_deployment(replicas=1))
    scaled = _updated(schemas, first, lambda o: o["spec"].update(replicas=5), "kubectl-client-side-apply")
    with pytest.raises(errors.PatchConflict) as info:
        _apply(schemas, scaled, make_deployment(replicas=3))
    assert info.value.causes == [errors.Cause(reason="FieldManagerConflict", field=".spec.replicas",
                                              message='conflict with "kubectl-client-side-apply" using apps/v1')]


def test_conflict_inside_a_keyed_list_item(schemas: Schemas) -> None:
    first = _apply(schemas, None, make_deployment(make_container(image="nginx:1")))
    edited = _updated(schemas, first, lambda o: pod_spec(o)["containers"][0].update(image="nginx:2"), "kubectl-edit")
    with pytest.raises(errors.PatchConflict) as info:
        _apply(schemas, edited, make_deployment(make_container(image="nginx:3")))
    assert [c.field for c in info.value.causes] == ['.spec.template.spec.containers[name="nginx"].image']


def test_conflict_with_another_applier(schemas: Schemas) -> None:
    first = _apply(schemas, None, make_deployment(replicas=1), manager="alice")
    with pytest.raises(errors.PatchConflict) as info:
        _apply(schemas, first, make_deployment(replicas=2), manager="bob")
    assert [(c.field, c.message) for c in info.value.causes] == [(".spec.replicas", 'conflict with "alice"')]


def test_force_takes_ownership(schemas: Schemas) -> None:
    first = _apply(schemas, None, make_deployment(replicas=1))
    scaled = _updated(schemas, first, lambda o: o["spec"].update(replicas=5), "kubectl-scale")
    assert _entries(scaled)[("kubectl-scale", "Update")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    out = _apply(schemas, scaled, make_deployment(replicas=3), force=True)
    assert out["spec"]["replicas"] == 3
    assert ("kubectl-scale", "Update") not in _entries(out)    # its only field moved away
    assert "f:replicas" in _entries(out)[("kubectl", "Apply")]["fieldsV1"]["f:spec"]


def test_same_value_is_shared_not_a_conflict(schemas: Schemas) -> None:
    first = _apply(schemas, None, make_deployment(replicas=2), manager="alice")
    out = _apply(schemas, first, make_deployment(replicas=2), manager="bob")
    entries = _entries(out)
    assert "f:replicas" in entries[("alice", "Apply")]["fieldsV1"]["f:spec"]
    assert "f:replicas" in entries[("bob", "Apply")]["fieldsV1"]["f:spec"]


def test_noop_reapply_keeps_time(schemas: Schemas) -> None:
    first = _apply(schemas, None, make_deployment(), now="T1")
    again = _apply(schemas, first, make_deployment(), now="T2")
    assert again == first


def test_first_apply_over_unmanaged_object(schemas: Schemas) -> None:
    live = make_deployment(replicas=4)
    live["metadata"]["labels"]["legacy"] = "yes"
    with pytest.raises(errors.PatchConflict) as info:
        _apply(schemas, live, make_deployment(replicas=1))
    assert [c.message for c in info.value.causes] == ['conflict with "before-first-apply" using apps/v1']
    out = _apply(schemas, live, make_deployment(replicas=4))
    assert out["metadata"]["labels"] == {"app": "web", "legacy": "yes"}   # nothing pruned
    assert set(_entries(out)) == {("kubectl", "Apply"), ("before-first-apply", "Update")}


def test_merge_keeps_live_only_list_items_and_fields(schemas: Schemas) -> None:
    live = make_deployment(make_container("init-like", "x"), make_container("nginx", "nginx:1", imagePullPolicy="Always"))
    live["metadata"]["managedFields"] = [{"manager": "other", "operation": "Update", "apiVersion": "apps/v1",
                                          "time": "T0", "fieldsType": "FieldsV1",
                                          "fieldsV1": {"f:spec": {"f:paused": {}}}}]
    out = _apply(schemas, live, make_deployment(make_container("nginx", "nginx:1"), make_container("new", "y")))
    assert pod_spec(out)["containers"] == [
        make_container("init-like", "x"), make_container("nginx", "nginx:1", imagePullPolicy="Always"),
        make_container("new", "y")]


def test_apply_output_is_json_serialisable_and_independent(schemas: Schemas) -> None:
    live = _apply(schemas, None, make_deployment())
    out = _apply(schemas, live, make_deployment(replicas=3))
    json.dumps(out)
    pod_spec(out)["containers"][0]["image"] = "changed"
    assert pod_spec(live)["containers"][0]["image"] == "nginx:1.25"


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _client_side_applied(schemas: Schemas, manifest: dict[str, Any]) -> dict[str, Any]:
    """What `kubectl apply` (client-side) leaves behind: the annotation and an Update entry."""
    obj = copy.deepcopy(manifest)
    obj["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(manifest)}
    update_managed_fields(None, obj, "kubectl-client-side-apply", "Update", "apps/v1", "T0",
                          schemas=schemas, schema_name=DEPLOYMENT)
    return obj


def test_kubectl_takes_over_from_client_side_apply(schemas: Schemas) -> None:
    manifest = make_deployment(make_container(image="nginx:1"), replicas=1)
    live = _client_side_applied(schemas, manifest)
    changed = make_deployment(make_container(image="nginx:2"), replicas=1)
    out = _apply(schemas, live, changed)                      # no conflict, no --force-conflicts
    assert pod_spec(out)["containers"][0]["image"] == "nginx:2"
    # The annotation now records what was applied, in kubectl's encoding, so the follow-up
    # PATCH from manager kubectl-last-applied carrying the same text changes nothing.
    text = out["metadata"]["annotations"][LAST_APPLIED]
    assert text.endswith("}\n") and json.loads(text) == changed
    follow_up = {"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "web", "namespace": "default", "annotations": {LAST_APPLIED: text}}}
    again = server_side_apply(out, follow_up, "kubectl-last-applied", False, schemas, DEPLOYMENT, "T9")
    assert again["metadata"]["annotations"] == out["metadata"]["annotations"]


def test_takeover_still_conflicts_on_fields_changed_since_last_apply(schemas: Schemas) -> None:
    live = _client_side_applied(schemas, make_deployment(replicas=1))
    scaled = _updated(schemas, live, lambda o: o["spec"].update(replicas=5), "kubectl-scale")
    with pytest.raises(errors.PatchConflict) as info:
        _apply(schemas, scaled, make_deployment(replicas=3))
    assert [(c.field, c.message) for c in info.value.causes] == [(".spec.replicas", 'conflict with "kubectl-scale" using apps/v1')]


def test_takeover_is_only_for_the_kubectl_manager(schemas: Schemas) -> None:
    live = _client_side_applied(schemas, make_deployment(replicas=1))
    with pytest.raises(errors.PatchConflict):
        _apply(schemas, live, make_deployment(replicas=2), manager="my-tool")


def test_go_json_escaping_of_last_applied(schemas: Schemas) -> None:
    manifest = make_deployment()
    live = _client_side_applied(schemas, manifest)
    config = copy.deepcopy(manifest)
    config["metadata"]["labels"]["note"] = "a<b&c"
    out = _apply(schemas, live, config)
    assert "a\\u003cb\\u0026c" in out["metadata"]["annotations"][LAST_APPLIED]
