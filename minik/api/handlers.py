"""HTTP handlers for /api and /apis: decode the request, call the resource service, encode.

Neighbours: `minik.api.app` routes here; `minik.api.request` parses URLs and bodies;
`minik.api.service` holds the Kubernetes semantics; `minik.api.watch` streams; `minik.api.tables`
renders Table responses; `minik.api.discovery` answers the discovery documents;
pod streaming subresources (log, exec, attach, portforward) go to `minik.api.streams.StreamFront`
in front of the node's `minik.client.streams.PodStreams` when one is wired in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any

from aiohttp import web

from minik.api import discovery
from minik.api import status as st
from minik.api.auth import AllowAuthenticated, Authorizer
from minik.api.encoded import EncodedObjects, dumps
from minik.api.listing import respond_list
from minik.api.kinds import KindHooksImpl
from minik.api.rbac import RBAC as RBAC_GROUP, RBACAuthorizer
from minik.api.rbac_escalation import REQUESTER, Requester
from minik.api.proxy import ProxyForwarder, parse_proxy_name, proxied_path, resolve_pod, resolve_service
from minik.api.reviews import Reviews
from minik.api.meta import Obj, utcnow
from minik.api.metrics import MetricsApi
from minik.api.request import (TABLE_CT, Target, bool_param, decode_body, int_param, parse_target,
                               wants_partial_metadata, wants_table)
from minik.api.service import DeleteOptions, ResourceService, WriteOptions
from minik.api.streams import StreamFront
from minik.api.watch import WatchParams, serve_watch
from minik.apis.registry import Registry, ResourceType
from minik.apis.selectors import FieldSelector, LabelSelector, parse_field_selector, parse_label_selector
from minik.client.streams import PodStreams

log = logging.getLogger("minik.api")

JSON_CT = "application/json"
LARGE_BODY = 256 * 1024


def header_text(text: str) -> str:
    """Text safe in an HTTP header value: control and non-ASCII characters escaped (a field
    name in a Warning must not be able to break or split the response)."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if " " <= c < "\x7f" else f"\\u{ord(c):04x}" for c in text)


def json_response(obj: Any, status: int = 200, content_type: str = JSON_CT, warnings: list[str] | None = None) -> web.Response:
    # kube-apiserver's JSON serializer is a json.Encoder, which ends every document with "\n".
    resp = web.Response(body=dumps(obj) + b"\n", status=status, headers={"Content-Type": content_type})
    for w in warnings or []:
        resp.headers.add("Warning", '299 - "' + header_text(w).replace('"', '\\"') + '"')
    return resp


class ApiHandlers:
    def __init__(self, registry: Registry, service: ResourceService, hooks: KindHooksImpl, server_address: str) -> None:
        self.registry, self.service, self.hooks = registry, service, hooks
        self.server_address = server_address
        self.pod_streams: PodStreams | None = None
        self.reviews: Reviews | None = None
        self.metrics = MetricsApi(service, registry)
        self.authz: Authorizer = AllowAuthenticated()
        self.proxy = ProxyForwarder()
        # One encoding per object revision, shared by every watcher and LIST (minik.api.encoded).
        self.encoded = EncodedObjects()

    # ---- discovery ---------------------------------------------------------------------------
    async def api_root(self, request: web.Request) -> web.Response:
        ct = discovery.wants_aggregated(request.headers.get("Accept"))
        if ct:
            return json_response(discovery.aggregated(self.registry, True, ct), content_type=ct)
        return json_response(discovery.api_versions(self.server_address))

    async def apis_root(self, request: web.Request) -> web.Response:
        ct = discovery.wants_aggregated(request.headers.get("Accept"))
        if ct:
            return json_response(discovery.aggregated(self.registry, False, ct), content_type=ct)
        return json_response(discovery.api_group_list(self.registry))

    # ---- resources ---------------------------------------------------------------------------
    async def core(self, request: web.Request) -> web.StreamResponse:
        return await self._dispatch(request, True, request.match_info["tail"])

    async def grouped(self, request: web.Request) -> web.StreamResponse:
        return await self._dispatch(request, False, request.match_info["tail"])

    async def _dispatch(self, request: web.Request, core: bool, tail: str) -> web.StreamResponse:
        parts = [p for p in tail.split("/") if p]
        if request.method == "GET":
            if core and parts == ["v1"]:
                doc = discovery.resource_list(self.registry, "", "v1")
                assert doc is not None
                return json_response(doc)
            if not core and len(parts) == 1:
                g = discovery.api_group(self.registry, parts[0])
                if g is None:
                    raise st.StatusError(404, "NotFound", "the server could not find the requested resource")
                return json_response(g)
            if not core and len(parts) == 2:
                doc = discovery.resource_list(self.registry, parts[0], parts[1])
                if doc is None:
                    raise st.StatusError(404, "NotFound", "the server could not find the requested resource")
                return json_response(doc)
        target = parse_target(self.registry, core, parts)
        request["target"] = target
        self._authorize(request, target)
        m = request.method
        if target.rt.computed:
            return self._computed(request, target)
        if target.subresource:
            return await self._subresource(request, target)
        if m == "GET":
            if target.name and not target.watch_path:
                return self._get(request, target)
            if target.watch_path or bool_param(request.query.get("watch")):
                return await self._watch(request, target)
            return await self._list(request, target)
        if m == "POST":
            if target.name:
                raise st.method_not_allowed()
            return await self._create(request, target)
        if m == "PUT":
            if not target.name:
                raise st.method_not_allowed()
            return await self._update(request, target)
        if m == "PATCH":
            if not target.name:
                raise st.method_not_allowed()
            return await self._patch(request, target)
        if m == "DELETE":
            if target.name:
                return await self._delete(request, target)
            return await self._delete_collection(request, target)
        raise st.method_not_allowed()

    def _authorize(self, request: web.Request, t: Target) -> None:
        m = request.method
        if m == "GET":
            verb = "get" if t.name and not t.watch_path else ("watch" if t.watch_path or bool_param(request.query.get("watch")) else "list")
            if t.subresource in ("exec", "attach", "portforward"):
                verb = "create"   # kubectl's websocket upgrade is a GET; RBAC treats it as create
        elif m == "DELETE":
            verb = "delete" if t.name else "deletecollection"
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(m, m.lower())
        resource = t.rt.plural + (f"/{t.subresource}" if t.subresource else "")
        user = request["user"]
        if self.authz.allowed(user, verb, t.rt.group, resource, t.namespace or "", t.name):
            if t.rt.group == RBAC_GROUP and isinstance(self.authz, RBACAuthorizer):
                # Escalation prevention runs in the write path (kinds hooks) and needs the requester.
                REQUESTER.set(Requester(user, self.authz))
            return
        where = f' in the namespace "{t.namespace}"' if t.namespace else " at the cluster scope"
        name = f' "{t.name}"' if t.name else ""
        raise st.forbidden(f'{t.rt.group_resource}{name} is forbidden: User "{user.name}" cannot {verb} resource '
                           f'"{resource}" in API group "{t.rt.group}"{where}', t.rt, t.name)

    # ---- reads -------------------------------------------------------------------------------
    def _ns(self, t: Target) -> str:
        return t.namespace or ""

    def _render_one(self, request: web.Request, rt: ResourceType, obj: Obj) -> web.Response:
        accept = request.headers.get("Accept")
        if wants_table(accept):
            from minik.api.tables import table
            tbl = table(rt, [obj], utcnow(), include_object=request.query.get("includeObject", "Metadata"),
                        resource_version=obj.get("metadata", {}).get("resourceVersion", ""),
                        custom_columns=self.hooks.printer_columns(rt))
            return json_response(tbl, content_type=TABLE_CT)
        if wants_partial_metadata(accept):
            return json_response({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})},
                                 content_type="application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io")
        return json_response(obj)

    def _computed(self, request: web.Request, t: Target) -> web.Response:
        """metrics.k8s.io: get and list only, computed from the nodes' samples."""
        if request.method != "GET" or t.subresource or t.watch_path or bool_param(request.query.get("watch")):
            raise st.method_not_allowed()
        if t.name:
            return self._render_one(request, t.rt, self.metrics.get(t.rt, self._ns(t), t.name))
        labels, _ = self._selectors(request)
        doc = self.metrics.list(t.rt, t.namespace, labels)
        if wants_table(request.headers.get("Accept")):
            from minik.api.tables import table
            return json_response(table(t.rt, doc["items"], utcnow(), include_object=request.query.get("includeObject", "Metadata")),
                                 content_type=TABLE_CT)
        return json_response(doc)

    def _get(self, request: web.Request, t: Target) -> web.Response:
        obj = self.service.get(t.rt, self._ns(t), t.name)
        return self._render_one(request, t.rt, obj)

    def _selectors(self, request: web.Request) -> tuple[LabelSelector | None, FieldSelector | None]:
        ls = request.query.get("labelSelector")
        fs = request.query.get("fieldSelector")
        return (parse_label_selector(ls) if ls else None, parse_field_selector(fs) if fs else None)

    async def _list(self, request: web.Request, t: Target) -> web.StreamResponse:
        labels, fields = self._selectors(request)
        limit = int_param("limit", request.query.get("limit")) or 0
        accept = request.headers.get("Accept")
        # Plain JSON LISTs are encoded item by item with apiVersion/kind added on the way
        # (minik.api.listing), so the stored objects are not copied first.
        plain = not wants_table(accept) and not wants_partial_metadata(accept)
        page = self.service.list(t.rt, t.namespace, labels, fields, limit, request.query.get("continue", ""),
                                 typed=not plain)
        if wants_table(accept):
            from minik.api.tables import table
            tbl = table(t.rt, page.items, utcnow(), include_object=request.query.get("includeObject", "Metadata"),
                        resource_version=str(page.resource_version), custom_columns=self.hooks.printer_columns(t.rt),
                        continue_token=page.continue_token)
            return json_response(tbl, content_type=TABLE_CT)
        lm: Obj = {"resourceVersion": str(page.resource_version)}
        if page.continue_token:
            lm["continue"] = page.continue_token
            if page.remaining is not None:
                lm["remainingItemCount"] = page.remaining
        if wants_partial_metadata(accept):
            return json_response({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": lm,
                                  "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata", {})} for o in page.items]},
                                 content_type="application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io")
        return await respond_list(request, self.encoded, t.rt.api_version, t.rt.list_kind, t.rt.kind, lm, page.items, JSON_CT)

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        labels, fields = self._selectors(request)
        if fields is not None:
            from minik.apis.selectors import check_field_selector
            check_field_selector(t.rt, fields)
        if t.name:
            fields = parse_field_selector(f"metadata.name={t.name}")
        table = wants_table(request.headers.get("Accept"))
        timeout = int_param("timeoutSeconds", request.query.get("timeoutSeconds"))
        p = WatchParams(t.namespace, labels, fields, request.query.get("resourceVersion", ""),
                        float(timeout) if timeout else 0.0, bool_param(request.query.get("allowWatchBookmarks")),
                        bool_param(request.query.get("sendInitialEvents")), table, self.hooks.printer_columns(t.rt))
        return await serve_watch(request, self.service, t.rt, p, TABLE_CT if table else JSON_CT, self.encoded)

    # ---- writes ------------------------------------------------------------------------------
    def _write_opts(self, request: web.Request, subresource: str = "") -> WriteOptions:
        q = request.query
        manager = q.get("fieldManager", "")
        if not manager:
            ua = request.headers.get("User-Agent", "")
            manager = ua.split("/", 1)[0][:128] if ua else ""
        fv = q.get("fieldValidation", "Warn") or "Warn"
        if fv not in ("Strict", "Warn", "Ignore"):
            raise st.bad_request(f"fieldValidation parameter unsupported: {fv}")
        dry = q.getall("dryRun", [])
        for d in dry:
            if d != "All":
                raise st.bad_request(f'Invalid dryRun value: "{d}": supported values: "All"')
        return WriteOptions(manager, fv, bool(dry), subresource, bool_param(q.get("force")))

    async def _body(self, request: web.Request, patch: bool = False) -> tuple[Any, str]:
        if request.content_length is not None and request.content_length > 3 * 1024 * 1024:
            raise st.StatusError(413, "RequestEntityTooLarge", f"the request body is too large: {request.content_length} bytes (limit 3145728)")
        raw = await request.read()
        if len(raw) > LARGE_BODY:
            # Decoding a few MiB takes a while: off the event loop, so other requests interleave.
            return await asyncio.to_thread(decode_body, raw, request.headers.get("Content-Type"), patch=patch)
        return decode_body(raw, request.headers.get("Content-Type"), patch=patch)

    async def _create(self, request: web.Request, t: Target) -> web.Response:
        body, _ = await self._body(request)
        if t.rt.virtual:
            if self.reviews is None:
                raise st.method_not_allowed()
            # Reviews are never stored, but kube decodes them strictly too: `spec.groups: 1` is a 422.
            self.service.check_structure(t.rt, body)
            return json_response(self.reviews.answer(t.rt, self._ns(t), body, request["user"]), 201)
        res = await self.service.create(t.rt, self._ns(t), body, self._write_opts(request))
        return json_response(res.object, 201, warnings=res.warnings)

    async def _update(self, request: web.Request, t: Target, subresource: str = "") -> web.Response:
        body, _ = await self._body(request)
        res = await self.service.update(t.rt, self._ns(t), t.name, body, self._write_opts(request, subresource))
        return json_response(res.object, 200, warnings=res.warnings)

    async def _patch(self, request: web.Request, t: Target, subresource: str = "") -> web.Response:
        body, mt = await self._body(request, patch=True)
        res = await self.service.patch(t.rt, self._ns(t), t.name, mt, body, self._write_opts(request, subresource))
        return json_response(res.object, 201 if res.created else 200, warnings=res.warnings)

    async def _delete_options(self, request: web.Request) -> DeleteOptions:
        q = request.query
        body: Obj = {}
        if request.body_exists:   # (the body-deadline middleware may have read it already)
            raw = await request.read()
            if raw.strip():
                decoded, _ = decode_body(raw, request.headers.get("Content-Type"))
                if isinstance(decoded, dict):
                    body = decoded
        _check_delete_options(body)
        policy = body.get("propagationPolicy") or q.get("propagationPolicy", "")
        if body.get("orphanDependents") is True or q.get("orphanDependents") == "true":
            policy = policy or "Orphan"
        if policy and policy not in ("Background", "Foreground", "Orphan"):
            raise st.bad_request(f'propagationPolicy: Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"')
        grace = body.get("gracePeriodSeconds")
        if grace is None:
            grace = int_param("gracePeriodSeconds", q.get("gracePeriodSeconds"))
        pre = body.get("preconditions") or {}
        dry = body.get("dryRun") or q.getall("dryRun", [])
        return DeleteOptions(policy, grace, pre.get("uid") or "", pre.get("resourceVersion") or "", bool(dry))

    async def _delete(self, request: web.Request, t: Target) -> web.Response:
        opts = await self._delete_options(request)
        res = await self.service.delete(t.rt, self._ns(t), t.name, opts)
        code = 200 if res.deleted else 202
        if t.rt.returns_deleted_object or not res.deleted:
            return json_response(res.object, code)
        return json_response(st.success(t.rt, t.name, res.object.get("metadata", {}).get("uid", "")), code)

    async def _delete_collection(self, request: web.Request, t: Target) -> web.Response:
        if "deletecollection" not in t.rt.verbs:
            raise st.method_not_allowed()
        labels, fields = self._selectors(request)
        opts = await self._delete_options(request)
        items = await self.service.delete_collection(t.rt, t.namespace, labels, fields, opts)
        return json_response({"kind": t.rt.list_kind, "apiVersion": t.rt.api_version,
                              "metadata": {"resourceVersion": str(self.service.store.revision)}, "items": items})

    # ---- subresources ------------------------------------------------------------------------
    async def _subresource(self, request: web.Request, t: Target) -> web.StreamResponse:
        sub, m = t.subresource, request.method
        if sub in ("status", "finalize"):
            if m == "GET":
                return self._get(request, t)
            if m == "PUT":
                return await self._update(request, t, "status" if sub == "status" else "finalize")
            if m == "PATCH":
                return await self._patch(request, t, "status")
            raise st.method_not_allowed()
        if sub == "ephemeralcontainers" and t.rt.kind == "Pod" and not t.rt.group:
            # kubectl debug: GET the pod, then PATCH (strategic merge) spec.ephemeralContainers here.
            if m == "GET":
                return self._get(request, t)
            if m == "PUT":
                return await self._update(request, t, "ephemeralcontainers")
            if m == "PATCH":
                return await self._patch(request, t, "ephemeralcontainers")
            raise st.method_not_allowed()
        if sub == "scale":
            if m == "GET":
                return json_response(await self.service.get_scale(t.rt, self._ns(t), t.name))
            if m == "PUT":
                body, _ = await self._body(request)
                return json_response(await self.service.update_scale(t.rt, self._ns(t), t.name, body, self._write_opts(request, "scale")))
            if m == "PATCH":
                return await self._patch(request, t, "scale")
            raise st.method_not_allowed()
        if sub == "binding" and m == "POST":
            return await self._bind(request, t)
        if sub == "token" and m == "POST" and t.rt.kind == "ServiceAccount":
            body, _ = await self._body(request)
            sa = self.service.get(t.rt, self._ns(t), t.name)
            if self.reviews is None:
                raise st.method_not_allowed()
            if body is not None:
                self.service.check_body("TokenRequest", "authentication.k8s.io", "io.k8s.api.authentication.v1.TokenRequest", body, t.name)
            return json_response(self.reviews.token_request(sa, body if isinstance(body, dict) else {}), 201)
        if sub == "eviction" and m == "POST":
            from minik.api.eviction import evict   # PodDisruptionBudgets decide (429 when one would be violated)
            body, _ = await self._body(request)
            return json_response(await evict(self.service, t.rt, self._ns(t), t.name, body), 201)
        if sub == "proxy" and not t.rt.group and t.rt.kind in ("Pod", "Service"):
            return await self._proxy(request, t)
        if sub in ("log", "exec", "attach", "portforward"):
            pod = self.service.get(t.rt, self._ns(t), t.name)
            if self.pod_streams is None:
                raise st.bad_request(f"pod {t.name} has no running node agent to serve {sub}: start the server without --disable-agent")
            return await StreamFront(self.pod_streams).handle(request, pod, sub)
        raise st.method_not_allowed()

    async def _proxy(self, request: web.Request, t: Target) -> web.StreamResponse:
        want = parse_proxy_name(t.name)
        ns = self._ns(t)
        obj = self.service.get(t.rt, ns, want.name)
        if t.rt.kind == "Pod":
            upstream = resolve_pod(obj, want)
        else:
            ep_rt = self.registry.lookup("", "v1", "endpoints")
            eps = self.service.store.get(ep_rt.store_key, ns, want.name) if ep_rt is not None else None
            upstream = resolve_service(obj, eps, want)
        return await self.proxy.forward(request, upstream, proxied_path(request.raw_path.split("?", 1)[0], t.name))

    async def _bind(self, request: web.Request, t: Target) -> web.Response:
        body, _ = await self._body(request)
        self.service.check_body("Binding", "", "io.k8s.api.core.v1.Binding", body, t.name)
        target = (body.get("target") or {}) if isinstance(body, dict) else {}
        node = target.get("name")
        if not node:
            raise st.bad_request("binding target name is required")
        await self.service.bind(t.rt, self._ns(t), t.name, node)
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)


def _check_delete_options(body: Obj) -> None:
    """DeleteOptions are decoded strictly by Kubernetes: a wrongly typed field is a 400."""
    types: dict[str, tuple[type, ...]] = {"propagationPolicy": (str,), "orphanDependents": (bool,),
                                          "gracePeriodSeconds": (int,), "preconditions": (dict,), "dryRun": (list,)}
    for name, want in types.items():
        v = body.get(name)
        if v is None:
            continue
        if not isinstance(v, want) or (isinstance(v, bool) and bool not in want):
            raise st.bad_request(f"DeleteOptions.{name}: wrong type {type(v).__name__} (want {want[0].__name__})")
    pre = body.get("preconditions") or {}
    for name in ("uid", "resourceVersion"):
        if pre.get(name) is not None and not isinstance(pre[name], str):
            raise st.bad_request(f"DeleteOptions.preconditions.{name}: wrong type {type(pre[name]).__name__} (want str)")
