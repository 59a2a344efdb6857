"""Stand-ins for the External Secrets Operator and cert-manager's CA issuer.

Until the Flux end-to-end environment runs the real operators, these do the part of
their work that a rendered meshfleet tree relies on, from the same objects:

External Secrets (external-secrets.io/v1 ExternalSecret, ClusterSecretStore with a
Vault KV v2 provider):
  * reads every `data[].remoteRef` {key, property} from OpenBao at
    `<store's spec.provider.vault.path>/data/<key>` (the environment's OpenBao, with its
    root token: the store's `server` and Kubernetes auth are not used, the only
    substitution);
  * renders `spec.target.template` (engineVersion v2) whose data values are exactly
    `{{ index . "NAME" }}` or `{{ .NAME }}`; anything else is an error, never guessed;
  * writes the target Secret with the template's type, labels and annotations, owned by
    the ExternalSecret when `creationPolicy: Owner`;
  * refreshes as ESO does: when the spec or any label or annotation changed (so the
    `force-sync` annotation works), or when `refreshInterval` has passed; and records it
    in status (`Ready` condition, `refreshTime`, `syncedResourceVersion`).
    A missing Vault value leaves `Ready=False` with the reason, and is retried.

cert-manager (cert-manager.io/v1 Issuer with `spec.ca.secretName`, Certificate):
  * issues `spec.secretName` from the Issuer's CA key pair with openssl: ECDSA P-256
    (the only key meshfleet asks for), `commonName`, `isCA`, `duration`; tls.crt, tls.key
    and ca.crt (the CA's certificate) as cert-manager's CA issuer writes them;
  * re-issues when the Certificate's spec changed or the CA certificate changed.
"""

import base64
import datetime
import hashlib
import json
import os
import re
import subprocess
import tempfile
import urllib.error
import urllib.request

from kube import ApiError

ESO = "external-secrets.io/v1"
CERT_MANAGER = "cert-manager.io/v1"
TEMPLATE_VALUE = re.compile(r'^\{\{\s*(?:index\s+\.\s+"([^"]+)"|\.([A-Za-z0-9_]+))\s*\}\}$')
GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration_seconds(text, default):
    if not text:
        return default
    total, pos = 0.0, 0
    for m in GO_DURATION.finditer(text):
        if m.start() != pos:
            return default
        value, unit = float(m.group(1)), m.group(2)
        total += value * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
        pos = m.end()
    return total if pos == len(text) and pos else default


def meta_version(obj):
    """What ESO compares to decide a refresh: generation plus a hash of labels and annotations."""
    md = obj["metadata"]
    digest = hashlib.sha256(json.dumps([md.get("labels") or {}, md.get("annotations") or {}],
                                       sort_keys=True).encode()).hexdigest()[:16]
    return "%d-%s" % (md.get("generation", 0), digest)


def condition(kind, ok, reason, message):
    return [{"type": kind, "status": "True" if ok else "False", "reason": reason,
             "message": message, "lastTransitionTime": now_rfc3339()}]


class Vault:
    def __init__(self, addr, token):
        self.addr = addr.rstrip("/")
        self.token = token

    @classmethod
    def from_env(cls, env_dir):
        values = {}
        with open(os.path.join(env_dir, "vault.env")) as fh:
            for line in fh:
                k, _, v = line.strip().partition("=")
                values[k] = v
        return cls(values["VAULT_ADDR"], values["VAULT_TOKEN"])

    def kv2(self, mount, key):
        """The data of a KV v2 entry, or None."""
        req = urllib.request.Request("%s/v1/%s/data/%s" % (self.addr, mount.strip("/"), key.strip("/")))
        req.add_header("X-Vault-Token", self.token)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.loads(r.read())["data"]["data"]
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise


class ExternalSecrets:
    """The External Secrets stand-in for one cluster."""

    MANAGER = "external-secrets"

    def __init__(self, cluster, vault, log):
        self.cluster = cluster
        self.vault = vault
        self.log = log

    def reconcile(self):
        stores = {s["metadata"]["name"]: s for s in self.cluster.list(ESO, "clustersecretstores")}
        for es in self.cluster.list(ESO, "externalsecrets"):
            if self.due(es):
                self.sync(es, stores)

    @staticmethod
    def due(es):
        status = es.get("status") or {}
        if status.get("syncedResourceVersion") != meta_version(es):
            return True
        ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
        if not ready or ready[0].get("status") != "True":
            return True
        interval = go_duration_seconds(es["spec"].get("refreshInterval"), 3600)
        if interval <= 0:
            return False
        try:
            last = datetime.datetime.strptime(status.get("refreshTime", ""), "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return True
        age = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - last
        return age.total_seconds() >= interval

    def sync(self, es, stores):
        md, spec = es["metadata"], es["spec"]
        where = "%s ExternalSecret %s/%s" % (self.cluster.name, md["namespace"], md["name"])
        try:
            secret = self.build(es, stores)
        except ValueError as e:
            self.set_status(es, False, "SecretSyncedError", str(e))
            self.log("%s: not synced: %s" % (where, e))
            return
        self.cluster.apply(secret, "secrets", self.MANAGER)
        self.set_status(es, True, "SecretSynced", "secret synced")
        self.log("%s: synced Secret %s" % (where, secret["metadata"]["name"]))

    def build(self, es, stores):
        md, spec = es["metadata"], es["spec"]
        ref = spec.get("secretStoreRef") or {}
        if ref.get("kind") != "ClusterSecretStore" or ref.get("name") not in stores:
            raise ValueError("secret store %s %r not found" % (ref.get("kind"), ref.get("name")))
        vault = (stores[ref["name"]]["spec"].get("provider") or {}).get("vault") or {}
        if vault.get("version", "v2") != "v2" or not vault.get("path"):
            raise ValueError("store %s is not a Vault KV v2 store with a path" % ref["name"])
        values = {}
        for item in spec.get("data") or []:
            rref = item["remoteRef"]
            entry = self.vault.kv2(vault["path"], rref["key"])
            if entry is None:
                raise ValueError("Vault has no %s/%s" % (vault["path"], rref["key"]))
            prop = rref.get("property")
            if prop not in entry:
                raise ValueError("Vault %s/%s has no property %r" % (vault["path"], rref["key"], prop))
            values[item["secretKey"]] = entry[prop]
        target = spec.get("target") or {}
        template = target.get("template") or {}
        data = {}
        if template.get("data"):
            if template.get("engineVersion", "v2") != "v2":
                raise ValueError("template engine %s is not supported" % template.get("engineVersion"))
            for key, text in template["data"].items():
                m = TEMPLATE_VALUE.match(text.strip())
                if not m:
                    raise ValueError("template data %r is not `{{ index . \"NAME\" }}`" % key)
                name = m.group(1) or m.group(2)
                if name not in values:
                    raise ValueError("template data %r reads %r, which no data entry provides" % (key, name))
                data[key] = values[name]
        else:
            data = values
        tmeta = template.get("metadata") or {}
        secret = {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": target.get("name") or md["name"], "namespace": md["namespace"],
                         "labels": dict(tmeta.get("labels") or {}),
                         "annotations": dict(tmeta.get("annotations") or {})},
            "type": template.get("type", "Opaque"),
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())},
        }
        secret["metadata"]["annotations"]["reconcile.external-secrets.io/data-hash"] = hashlib.sha256(
            json.dumps(secret["data"], sort_keys=True).encode()).hexdigest()[:32]
        if target.get("creationPolicy", "Owner") == "Owner":
            secret["metadata"]["ownerReferences"] = [{
                "apiVersion": ESO, "kind": "ExternalSecret", "name": md["name"], "uid": md["uid"],
                "controller": True, "blockOwnerDeletion": True}]
        return secret

    def set_status(self, es, ok, reason, message):
        md = es["metadata"]
        status = {"apiVersion": ESO, "kind": "ExternalSecret",
                  "metadata": {"name": md["name"], "namespace": md["namespace"]},
                  "status": {"conditions": condition("Ready", ok, reason, message),
                             "refreshTime": now_rfc3339(),
                             "syncedResourceVersion": meta_version(es) if ok else "",
                             "binding": {"name": (es["spec"].get("target") or {}).get("name") or md["name"]}}}
        self.cluster.apply(status, "externalsecrets", self.MANAGER, status=True)


class CertManager:
    """The cert-manager CA-issuer stand-in for one cluster."""

    MANAGER = "cert-manager"

    def __init__(self, cluster, log):
        self.cluster = cluster
        self.log = log

    def reconcile(self):
        issuers = {(i["metadata"]["namespace"], i["metadata"]["name"]): i
                   for i in self.cluster.list(CERT_MANAGER, "issuers")}
        for cert in self.cluster.list(CERT_MANAGER, "certificates"):
            self.maybe_issue(cert, issuers)

    def maybe_issue(self, cert, issuers):
        md, spec = cert["metadata"], cert["spec"]
        ns = md["namespace"]
        where = "%s Certificate %s/%s" % (self.cluster.name, ns, md["name"])
        ref = spec.get("issuerRef") or {}
        issuer = issuers.get((ns, ref.get("name"))) if ref.get("kind", "Issuer") == "Issuer" else None
        ca_name = ((issuer or {}).get("spec") or {}).get("ca", {}).get("secretName")
        ca = self.cluster.get("v1", "secrets", ns, ca_name) if ca_name else None
        if not ca or "tls.crt" not in (ca.get("data") or {}) or "tls.key" not in (ca.get("data") or {}):
            self.set_status(cert, False, "Pending", "issuer %s or its CA Secret %s is not ready" % (ref.get("name"), ca_name))
            return
        ca_crt = base64.b64decode(ca["data"]["tls.crt"]).decode()
        want = hashlib.sha256(json.dumps([spec, ca_crt], sort_keys=True).encode()).hexdigest()[:32]
        current = self.cluster.get("v1", "secrets", ns, spec["secretName"])
        if current and (current["metadata"].get("annotations") or {}).get("meshfleet.test/issued-for") == want:
            return
        crt, key = issue(spec, ca_crt, base64.b64decode(ca["data"]["tls.key"]).decode())
        secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                  "metadata": {"name": spec["secretName"], "namespace": ns,
                               "annotations": {"cert-manager.io/certificate-name": md["name"],
                                               "cert-manager.io/issuer-name": ref.get("name"),
                                               "cert-manager.io/issuer-kind": "Issuer",
                                               "meshfleet.test/issued-for": want}},
                  "data": {"tls.crt": base64.b64encode(crt.encode()).decode(),
                           "tls.key": base64.b64encode(key.encode()).decode(),
                           "ca.crt": base64.b64encode(ca_crt.encode()).decode()}}
        self.cluster.apply(secret, "secrets", self.MANAGER)
        self.set_status(cert, True, "Ready", "Certificate is up to date and has not expired")
        self.log("%s: issued Secret %s" % (where, spec["secretName"]))

    def set_status(self, cert, ok, reason, message):
        md = cert["metadata"]
        status = {"apiVersion": CERT_MANAGER, "kind": "Certificate",
                  "metadata": {"name": md["name"], "namespace": md["namespace"]},
                  "status": {"conditions": condition("Ready", ok, reason, message)}}
        self.cluster.apply(status, "certificates", self.MANAGER, status=True)


def issue(spec, ca_crt, ca_key):
    """An ECDSA P-256 certificate for a Certificate spec, signed by the CA key pair."""
    if (spec.get("privateKey") or {}).get("algorithm", "ECDSA") != "ECDSA":
        raise ValueError("only ECDSA private keys are supported")
    days = max(1, int(go_duration_seconds(spec.get("duration"), 90 * 86400) // 86400))
    with tempfile.TemporaryDirectory() as d:
        def path(n):
            return os.path.join(d, n)
        old = os.umask(0o077)
        try:
            with open(path("ca.crt"), "w") as fh:
                fh.write(ca_crt)
            with open(path("ca.key"), "w") as fh:
                fh.write(ca_key)
            ext = ["basicConstraints=critical,CA:%s" % ("TRUE" if spec.get("isCA") else "FALSE"),
                   "keyUsage=critical,digitalSignature,keyEncipherment%s"
                   % (",keyCertSign,cRLSign" if spec.get("isCA") else ""),
                   "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid"]
            dns = spec.get("dnsNames") or []
            if dns:
                ext.append("subjectAltName=" + ",".join("DNS:" + n for n in dns))
            with open(path("ext"), "w") as fh:
                fh.write("\n".join(ext) + "\n")
            run = lambda *a: subprocess.run(["openssl"] + list(a), cwd=d, check=True, capture_output=True)  # noqa: E731
            run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "k.pem")
            run("pkcs8", "-topk8", "-nocrypt", "-in", "k.pem", "-out", "tls.key")
            run("req", "-new", "-key", "tls.key", "-subj", "/CN=%s" % spec.get("commonName", ""), "-out", "c.csr")
            run("x509", "-req", "-in", "c.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-sha256", "-days", str(days), "-extfile", "ext", "-out", "tls.crt")
        finally:
            os.umask(old)
        return open(path("tls.crt")).read(), open(path("tls.key")).read()


def reconcile_forever(clusters, vault, log, stop, period=1.0):
    """Run both stand-ins on every cluster until `stop` is set."""
    workers = []
    for c in clusters:
        workers += [ExternalSecrets(c, vault, log), CertManager(c, log)]
    while not stop.is_set():
        for w in workers:
            try:
                w.reconcile()
            except (ApiError, OSError, ValueError, KeyError, subprocess.CalledProcessError) as e:
                log("%s %s: %s" % (w.cluster.name, type(w).__name__, e))
        stop.wait(period)
