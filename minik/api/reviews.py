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
        out: Obj = {"kind": rt.kind, "apiVersion": rt.api_version,
                    "metadata": {"creationTimestamp": None, **({"namespace": namespace} if namespace else {})}, "spec": spec}
        if rt.kind in ("SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview"):
            subject = user
            if rt.kind != "SelfSubjectAccessReview":
                if not spec.get("user") and not spec.get("groups"):
                    raise st.from_invalid(rt, _invalid(rt, "spec.user", "at least one of user or group must be specified"))
                subject = User(spec.get("user", ""), tuple(spec.get("groups") or ()), spec.get("uid", ""))
            ra = spec.get("resourceAttributes") or {}
            nra = spec.get("nonResourceAttributes") or {}
            if ra:
                allowed = self.authz.allowed(subject, ra.get("verb", ""), ra.get("group", ""), ra.get("resource", ""),
                                             ra.get("namespace", namespace), ra.get("name", ""))
            elif nra:
                allowed = self.authz.allowed(subject, nra.get("verb", ""), "", nra.get("path", ""), "", "")
            else:
                raise st.from_invalid(rt, _invalid(rt, "spec.resourceAttributes", "exactly one of nonResourceAttributes or resourceAttributes must be specified"))
            out["status"] = {"allowed": allowed}
        elif rt.kind == "SelfSubjectRulesReview":
            allowed = self.authz.allowed(user, "*", "*", "*", spec.get("namespace", ""), "")
            rules = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}] if allowed else []
            out["status"] = {"resourceRules": rules,
                             "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}] if allowed else [],
                             "incomplete": False}
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
