"""Answers to the create-only review kinds (never stored) and the TokenRequest subresource.

- authorization.k8s.io SelfSubjectAccessReview / SubjectAccessReview / LocalSubjectAccessReview /
  SelfSubjectRulesReview (`kubectl auth can-i [--list]`), asked of the `Authorizer`.
- authentication.k8s.io SelfSubjectReview (`kubectl auth whoami`) and TokenReview.
- serviceaccounts/{name}/token (`kubectl create token`): a bound ServiceAccount JWT.
Neighbours: called by `minik.api.handlers`; uses `minik.api.auth` and `minik.pki.satoken`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from minik.api import status as st
from minik.api.auth import Authenticator, Authorizer, User
from minik.apis.registry import ResourceType
from minik.pki.satoken import ServiceAccountTokens

Obj = dict[str, Any]


def _user_info(user: User) -> Obj:
    info: Obj = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    if user.extra:
        info["extra"] = user.extra
    return info


class Reviews:
    def __init__(self, authn: Authenticator, authz: Authorizer, tokens: ServiceAccountTokens) -> None:
        self.authn, self.authz, self.tokens = authn, authz, tokens

    def answer(self, rt: ResourceType, namespace: str, body: Obj, user: User) -> Obj:
        if not isinstance(body, dict):
            raise st.bad_request("the request body must be a JSON object")
        spec = body.get("spec") or {}
        if not isinstance(spec, dict):
            raise st.bad_request(f"{rt.kind}.spec must be an object")
        out: Obj = {"kind": rt.kind, "apiVersion": rt.api_version,
                    "metadata": {"creationTimestamp": None, **({"namespace": namespace} if namespace else {})}, "spec": spec}
        if rt.kind in ("SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview"):
            out["status"] = self._access(rt, namespace, spec, user)
        elif rt.kind == "SelfSubjectRulesReview":
            out["status"] = self._rules(spec.get("namespace") or "", user)
        elif rt.kind == "SelfSubjectReview":
            out.pop("spec", None)
            out["status"] = {"userInfo": _user_info(user)}
        elif rt.kind == "TokenReview":
            token = spec.get("token", "")
            who = self.authn.authenticate(f"Bearer {token}", None) if token else None
            auds = spec.get("audiences") or []
            if who is None or who.name == "system:anonymous":
                out["status"] = {"authenticated": False, "error": "invalid bearer token"}
            else:
                out["status"] = {"authenticated": True, "user": _user_info(who), "audiences": auds}
        else:
            raise st.method_not_allowed()
        return out

    def _access(self, rt: ResourceType, namespace: str, spec: Obj, user: User) -> Obj:
        """kube's SubjectAccessReview status: allowed, with RBAC's reason when allowed."""
        subject = user
        if rt.kind != "SelfSubjectAccessReview":
            if not spec.get("user") and not spec.get("groups"):
                raise st.from_invalid(rt, _invalid(rt, "spec.user", "at least one of user or group must be specified"))
            extra = spec.get("extra") if isinstance(spec.get("extra"), dict) else {}
            subject = User(str(spec.get("user") or ""), tuple(str(g) for g in spec.get("groups") or ()),
                           str(spec.get("uid") or ""), dict(extra or {}))
        ra = spec.get("resourceAttributes")
        nra = spec.get("nonResourceAttributes")
        if isinstance(ra, dict) and ra:
            ns = str(ra.get("namespace") or "")
            if rt.kind == "LocalSubjectAccessReview":
                if ns and ns != namespace:
                    raise st.bad_request(f"spec.resourceAttributes.namespace must match namespace: {namespace}")
                ns = namespace
            resource = str(ra.get("resource") or "")
            if ra.get("subresource"):
                resource += "/" + str(ra["subresource"])
            d = self.authz.decide(subject, str(ra.get("verb") or ""), str(ra.get("group") or ""), resource, ns,
                                  str(ra.get("name") or ""))
        elif isinstance(nra, dict) and nra:
            d = self.authz.decide_path(subject, str(nra.get("verb") or ""), str(nra.get("path") or ""))
        else:
            raise st.from_invalid(rt, _invalid(rt, "spec.resourceAttributes", "exactly one of nonResourceAttributes or resourceAttributes must be specified"))
        status: Obj = {"allowed": d.allowed}
        if d.reason:
            status["reason"] = d.reason
        return status

    def _rules(self, namespace: str, user: User) -> Obj:
        """SelfSubjectRulesReview: every rule the user holds in the namespace, split as kube does."""
        resource_rules: list[Obj] = []
        non_resource: list[Obj] = []
        for r in self.authz.rules_for(user, namespace):
            if r.get("nonResourceURLs"):
                rule: Obj = {"verbs": list(r.get("verbs") or []), "nonResourceURLs": list(r["nonResourceURLs"])}
                if rule not in non_resource:
                    non_resource.append(rule)
                continue
            rule = {"verbs": list(r.get("verbs") or []), "apiGroups": list(r.get("apiGroups") or []),
                    "resources": list(r.get("resources") or [])}
            if r.get("resourceNames"):
                rule["resourceNames"] = list(r["resourceNames"])
            if rule not in resource_rules:
                resource_rules.append(rule)
        return {"resourceRules": resource_rules, "nonResourceRules": non_resource, "incomplete": False}

    def token_request(self, sa: Obj, body: Obj, pod: Obj | None = None) -> Obj:
        spec = (body or {}).get("spec") or {}
        exp_s = spec.get("expirationSeconds")
        if exp_s is not None and (not isinstance(exp_s, int) or exp_s < 600):
            raise st.StatusError(422, "Invalid", f"TokenRequest.authentication.k8s.io \"{sa['metadata']['name']}\" is invalid: "
                                 "spec.expirationSeconds: Invalid value: %s: may not specify a duration less than 10 minutes" % exp_s,
                                 {"causes": [{"reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
                                              "message": "may not specify a duration less than 10 minutes"}]})
        m = sa["metadata"]
        pod_claim = {"name": pod["metadata"]["name"], "uid": pod["metadata"].get("uid", "")} if pod else None
        token, exp = self.tokens.issue(m.get("namespace", ""), m["name"], m.get("uid", ""),
                                       spec.get("audiences") or None, exp_s, pod_claim)
        expiry = dt.datetime.fromtimestamp(exp, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": m["name"], "namespace": m.get("namespace", ""), "creationTimestamp": None},
                "spec": {"audiences": spec.get("audiences") or list(self.tokens.api_audiences),
                         "expirationSeconds": exp_s or 3600, "boundObjectRef": spec.get("boundObjectRef")},
                "status": {"token": token, "expirationTimestamp": expiry}}


def _invalid(rt: ResourceType, field: str, message: str) -> Any:
    from minik.apis.errors import Cause, Invalid
    return Invalid(rt.kind, "", [Cause("FieldValueRequired", message, field)])
