"""A small Kubernetes API client for the test environment's own controllers.

It speaks JSON to one test API server with the admin client certificate `up` made
(DIR/<cluster>/pki). Only what the stand-ins and the kubelet need: get, list, create,
server-side apply, merge patches, status updates, delete, TokenRequest. Errors carry the
HTTP status so callers can tell "not found" (404) from "no such kind yet" (404 on a list
of a CRD not installed) from real failures.
"""

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request


class ApiError(Exception):
    def __init__(self, status, method, path, body):
        message = body
        try:
            message = json.loads(body).get("message", body)
        except (ValueError, AttributeError):
            pass
        super().__init__("%s %s: %s %s" % (method, path, status, message))
        self.status = status


class Cluster:
    """One test API server, reached as its admin."""

    def __init__(self, name, server, pki):
        self.name = name
        self.server = server.rstrip("/")
        self.pki = pki
        self._ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        self._ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))

    @classmethod
    def from_env(cls, env_dir, name):
        with open(os.path.join(env_dir, "env.json")) as fh:
            info = json.load(fh)["clusters"][name]
        return cls(name, info["server"], os.path.join(env_dir, name, "pki"))

    def ca_pem(self):
        with open(os.path.join(self.pki, "ca.crt")) as fh:
            return fh.read()

    def request(self, method, path, body=None, content_type="application/json", query=None, timeout=10.0):
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, method, path, e.read().decode("utf-8", "replace"))
        return json.loads(raw) if raw else None

    # -- paths ---------------------------------------------------------------

    @staticmethod
    def path(api_version, plural, namespace=None, name=None, sub=None):
        base = "/api/v1" if api_version == "v1" else "/apis/" + api_version
        p = base
        if namespace:
            p += "/namespaces/" + namespace
        p += "/" + plural
        if name:
            p += "/" + name
        if sub:
            p += "/" + sub
        return p

    def get(self, api_version, plural, namespace=None, name=None):
        try:
            return self.request("GET", self.path(api_version, plural, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(self, api_version, plural, namespace=None, label_selector=None):
        """Items of a kind; [] when the kind is not installed (yet)."""
        query = {"labelSelector": label_selector} if label_selector else None
        try:
            return self.request("GET", self.path(api_version, plural, namespace), query=query)["items"]
        except ApiError as e:
            if e.status == 404:
                return []
            raise

    def apply(self, obj, plural, manager, status=False):
        """Server-side apply of a whole object (or of its status)."""
        md = obj["metadata"]
        path = self.path(obj["apiVersion"], plural, md.get("namespace"), md["name"],
                         "status" if status else None)
        return self.request("PATCH", path, obj, content_type="application/apply-patch+yaml",
                            query={"fieldManager": manager, "force": "true"})

    def merge_patch(self, api_version, plural, namespace, name, patch, sub=None):
        return self.request("PATCH", self.path(api_version, plural, namespace, name, sub), patch,
                            content_type="application/merge-patch+json")

    def delete(self, api_version, plural, namespace, name):
        try:
            self.request("DELETE", self.path(api_version, plural, namespace, name))
        except ApiError as e:
            if e.status != 404:
                raise

    def service_account_token(self, namespace, account, seconds=86400, audience=None, pod=None):
        """A token of the account (TokenRequest API), as a pod of it would get: for a
        projected `serviceAccountToken` volume, its `audience` and bound to the pod
        (`pod`: its name and uid)."""
        spec = {"expirationSeconds": seconds}
        if audience:
            spec["audiences"] = [audience]
        if pod:
            spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": pod[0], "uid": pod[1]}
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        r = self.request("POST", self.path("v1", "serviceaccounts", namespace, account, "token"), body)
        return r["status"]["token"]


def token_kubeconfig(cluster, token):
    """A kubeconfig that authenticates to `cluster` with a bearer token."""
    import base64
    ca = base64.b64encode(cluster.ca_pem().encode()).decode()
    return ("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: %s\n"
            "    certificate-authority-data: %s\nusers:\n- name: u\n  user:\n    token: %s\n"
            "contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"
            % (cluster.server, ca, token))
