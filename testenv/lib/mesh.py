"""Installs a rendered meshfleet tree on the test clusters the way Flux or Argo CD would.

`testenv/run mesh --dir DIR --tree GITOPS` takes one folder per fleet cluster of the
rendered tree (a folder whose name is a test cluster, or `--map fleet=cluster`) and
applies its stages in the engine's order: Flux Kustomizations by `dependsOn`, Argo CD
Applications by sync wave. For each stage:

  * manifests (namespaces, identity, links, ...) are applied as they are, with
    server-side apply, from the files the stage's kustomization.yaml lists;
  * a Linkerd HelmRelease or Helm Application is rendered by the real `linkerd` CLI of
    the chart's version with exactly the values meshfleet rendered:
      linkerd-crds           linkerd install --crds --ignore-cluster --values V
                             (linkerd upgrade --crds once installed)
      linkerd-control-plane  linkerd install --identity-external-issuer --values V
                             (against the cluster: the CLI reads the issuer Secret;
                             linkerd upgrade --values V once installed)
      linkerd-viz            linkerd viz install --ignore-cluster --values V
      linkerd-multicluster   linkerd multicluster install --ignore-cluster --values V
    and applied;
  * the Gateway API stage (a GitRepository at github.com/kubernetes-sigs/gateway-api,
    unreachable here) is replaced by the Gateway API CRDs that Linkerd 2.18's CLI
    embeds (`linkerd install --crds --set installGatewayAPI=true`, edge-25.4.4).

Left out of what the CLI renders, because their servers cannot run here (the proxy
injector, the validators and viz's tap API are not part of the `controller` binary or
need proxies): MutatingWebhookConfigurations (proxy injector, tap injector),
ValidatingWebhookConfigurations (service-profile and policy validators, whose
`failurePolicy: Fail` would reject the multicluster chart's Server and
AuthorizationPolicy objects) and the APIService of viz's tap API (an unavailable
aggregated API breaks discovery for every client). With `--data-plane` (dataplane.py) the proxy injector runs (kubelet.py) and its
MutatingWebhookConfiguration is applied; the kubelet points it at the injector's loopback
address. After the control plane `mesh` waits for it, so the multicluster chart's gateway
pods are injected by the real webhook (the proxy in gateway mode), as in a cluster.

Prerequisites a real cluster would have are installed first: the External Secrets and
cert-manager CRDs from ../shared/crds, and the Gateway API CRDs (as above: a fleet with
`gatewayAPI: external` expects the user to have them, and `linkerd upgrade` refuses a
cluster without them). Their controllers' work is done by the stand-ins
(standins.py) and Linkerd's controllers are run by the kubelet (kubelet.py), both in the
`testenv/run controllers` process that `mesh` starts once per environment.

Applying is idempotent: running `mesh` again re-applies every stage (an upgrade when
the tree's version changed). Like `helm upgrade` (and Flux's `prune: true`, Argo CD's
prune), what a stage applied before and no longer renders is deleted: the objects each
stage applied are listed in DIR/applied/<cluster>/<stage>.json, Helm's release record
in miniature. A link credential rotation depends on it: the old remote-access account
leaves a target only this way.
"""

import json
import os
import subprocess
import tempfile
import time

import yaml

import linkerd_bins

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_CRDS = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "crds"))
PREREQUISITE_CRDS = [
    "external-secrets.io_externalsecrets.yaml",
    "external-secrets.io_clustersecretstores.yaml",
    "cert-manager.io_issuers.yaml",
    "cert-manager.io_clusterissuers.yaml",
    "cert-manager.io_certificates.yaml",
]
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "ClusterSecretStore", "ClusterIssuer", "MutatingWebhookConfiguration",
                  "ValidatingWebhookConfiguration", "APIService", "PriorityClass", "Node"}
LEFT_OUT_KINDS = {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService"}
INJECTOR_WEBHOOK = "linkerd-proxy-injector-webhook-config"
GATEWAY_API_RELEASE = "edge-25.4.4"
FIELD_MANAGER = {"flux": "kustomize-controller", "argocd": "argocd-controller"}


class MeshError(Exception):
    pass


def load_docs(path):
    with open(path) as fh:
        return [d for d in yaml.safe_load_all(fh) if d]


class Installer:
    def __init__(self, env_dir, bins, linkerd, log, data_plane=False):
        self.dir = env_dir
        self.data_plane = data_plane
        self.kubectl = os.path.join(bins, "kubectl")
        self.linkerd = linkerd  # release -> {"cli": path, "controller": path}
        self.log = log
        self.kubeconfig = os.path.join(env_dir, "kubeconfig")

    # -- running the tools ---------------------------------------------------

    def run(self, argv, stdin=None, what=None):
        r = subprocess.run(argv, input=stdin, capture_output=True, text=True)
        if r.returncode != 0:
            raise MeshError("%s failed (exit %d): %s" % (what or " ".join(argv[:3]), r.returncode,
                                                         r.stderr.strip()[:1500]))
        return r.stdout

    def kube(self, context, *args, stdin=None, what=None):
        return self.run([self.kubectl, "--kubeconfig", self.kubeconfig, "--context", context] + list(args),
                        stdin=stdin, what=what)

    def cli(self, version, *args, context=None, what=None):
        release = linkerd_bins.release_for_chart(version)
        if release not in self.linkerd:
            raise MeshError("the tree asks for Linkerd %s (%s), but only %s are installed"
                            % (version, release, ", ".join(sorted(self.linkerd))))
        argv = [self.linkerd[release]["cli"]] + list(args)
        if context:
            argv += ["--kubeconfig", self.kubeconfig, "--context", context]
        return self.run(argv, what=what)

    def prune(self, context, stage, docs):
        """Delete what `stage` applied last time and no longer renders; remember what it renders now."""
        record = os.path.join(self.dir, "applied", context, stage.replace("/", "_") + ".json")
        now = sorted({(d["kind"], d["metadata"].get("namespace") or "", d["metadata"]["name"]) for d in docs
                      if d.get("kind") not in LEFT_OUT_KINDS and d.get("kind") != "CustomResourceDefinition"})
        before = []
        if os.path.exists(record):
            with open(record) as fh:
                before = [tuple(x) for x in json.load(fh)]
        for kind, ns, name in sorted(set(before) - set(now)):
            args = ["delete", "--ignore-not-found", "--wait=false", kind, name]
            if ns:
                args += ["-n", ns]
            self.kube(context, *args, what="%s: prune" % stage)
            self.log("%s: %s: pruned %s %s%s" % (context, stage, kind, ns + "/" if ns else "", name))
        os.makedirs(os.path.dirname(record), exist_ok=True)
        with open(record, "w") as fh:
            json.dump(now, fh)

    def apply(self, context, docs, manager, namespace=None, what=None):
        """Server-side apply: CRDs first (and wait until established), then the rest."""
        docs = [self.keep_injector_address(context, d) for d in docs if not self.left_out(d)]
        crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
        rest = [d for d in docs if d.get("kind") != "CustomResourceDefinition"]
        if namespace:
            # As Flux's targetNamespace and Argo CD's destination namespace do: the
            # namespace of objects that name none; objects that name one keep theirs.
            for d in rest:
                if d.get("kind") not in CLUSTER_SCOPED and not d["metadata"].get("namespace"):
                    d["metadata"]["namespace"] = namespace
        for batch in (crds, rest):
            if not batch:
                continue
            args = ["apply", "--server-side", "--force-conflicts", "--field-manager", manager, "-f", "-"]
            self.kube(context, *args, stdin=yaml.safe_dump_all(batch, sort_keys=False), what=what)
            if batch is crds:
                self.wait_established(context, [d["metadata"]["name"] for d in crds], what)

    def left_out(self, doc):
        """Webhook and APIService configurations whose servers do not run here; with the
        data plane the proxy injector runs (kubelet.py points its configuration at it)."""
        if doc.get("kind") not in LEFT_OUT_KINDS:
            return False
        return not (self.data_plane and doc.get("kind") == "MutatingWebhookConfiguration"
                    and doc["metadata"]["name"] == INJECTOR_WEBHOOK)

    def keep_injector_address(self, context, doc):
        """Applied again (an upgrade, a rotation's render): the injector's webhook keeps the
        loopback address the kubelet pointed it at (kubelet.py), which the chart's Service
        reference would otherwise join, an invalid pair."""
        if not (self.data_plane and doc.get("kind") == "MutatingWebhookConfiguration"
                and doc["metadata"]["name"] == INJECTOR_WEBHOOK):
            return doc
        got = self.kube(context, "get", "mutatingwebhookconfiguration", "--ignore-not-found", "-o", "json",
                        INJECTOR_WEBHOOK)
        live = {h.get("name"): h.get("clientConfig") or {} for h in json.loads(got).get("webhooks") or []} \
            if got.strip() else {}
        for h in doc.get("webhooks") or []:
            if (live.get(h.get("name")) or {}).get("url"):
                h["clientConfig"] = live[h["name"]]
        return doc

    def wait_injector(self, context, timeout=90):
        """Before a chart whose pods ask for injection: the proxy injector answers (the
        kubelet points its webhook at it), as a control plane is ready before extensions."""
        deadline = time.time() + timeout
        while True:
            got = self.kube(context, "get", "mutatingwebhookconfiguration", "--ignore-not-found", "-o", "json",
                            INJECTOR_WEBHOOK)
            if got.strip() and all((h.get("clientConfig") or {}).get("url")
                                   for h in json.loads(got).get("webhooks") or [{}]):
                return
            if time.time() > deadline:
                raise MeshError("%s: the proxy injector did not start within %ds (see the controllers log)"
                                % (context, timeout))
            time.sleep(0.5)

    def wait_established(self, context, names, what, timeout=60):
        deadline = time.time() + timeout
        while True:
            out = json.loads(self.kube(context, "get", "crd", "-o", "json", *names, what=what))
            items = out.get("items", [out]) if out.get("kind") == "List" else [out]
            pending = [i["metadata"]["name"] for i in items
                       if not any(c.get("type") == "Established" and c.get("status") == "True"
                                  for c in (i.get("status") or {}).get("conditions") or [])]
            if not pending:
                return
            if time.time() > deadline:
                raise MeshError("%s: CRDs not established within %ds: %s" % (what, timeout, ", ".join(pending)))
            time.sleep(0.2)

    # -- the tree ------------------------------------------------------------

    def install(self, tree, fleet_cluster, context):
        folder = os.path.join(tree, fleet_cluster)
        if not os.path.isdir(folder):
            raise MeshError("the tree %s has no folder %s" % (tree, fleet_cluster))
        t0 = time.time()
        self.prerequisites(context)
        if os.path.isdir(os.path.join(folder, "flux")):
            stages = self.flux_stages(tree, folder)
            engine = "flux"
        elif os.path.isdir(os.path.join(folder, "apps")):
            stages = self.argocd_stages(tree, folder)
            engine = "argocd"
        else:
            raise MeshError("%s is neither a Flux (flux/) nor an Argo CD (apps/) cluster folder" % folder)
        for stage in stages:
            self.install_stage(context, engine, stage)
        self.log("%s: %d stages installed (%s) in %.1fs" % (context, len(stages), engine, time.time() - t0))

    def prerequisites(self, context):
        docs = []
        for name in PREREQUISITE_CRDS:
            docs += load_docs(os.path.join(SHARED_CRDS, name))
        # With `gatewayAPI: external` the user provides them, and `linkerd upgrade` refuses
        # a cluster without them; a tree's gateway-api stage applies the same again.
        docs += self.gateway_api_crds()
        self.apply(context, docs, "prerequisites",
                   what="the External Secrets, cert-manager and Gateway API CRDs")

    def gateway_api_crds(self):
        if not hasattr(self, "_gateway_api"):
            out = self.cli("20" + GATEWAY_API_RELEASE[len("edge-"):], "install", "--crds", "--ignore-cluster",
                           "--set", "installGatewayAPI=true", what="rendering the Gateway API CRDs")
            self._gateway_api = [d for d in yaml.safe_load_all(out)
                                 if d and d["metadata"]["name"].endswith(".gateway.networking.k8s.io")]
            # As the Gateway API project publishes them: without the marks of Linkerd's
            # chart (with them, `linkerd upgrade` takes them for its own and refuses).
            for d in self._gateway_api:
                md = d["metadata"]
                md.pop("labels", None)
                md["annotations"] = {k: v for k, v in (md.get("annotations") or {}).items()
                                     if k.startswith(("gateway.networking.k8s.io/", "api-approved."))}
        return self._gateway_api

    @staticmethod
    def stage_folder(tree, path):
        parts = [p for p in path.split("/") if p not in ("", ".")]
        for i in range(len(parts)):
            cand = os.path.join(tree, *parts[i:])
            if os.path.isdir(cand):
                return cand
        raise MeshError("no folder of the tree matches the path %s" % path)

    def flux_stages(self, tree, folder):
        ks, sources = {}, {}
        for f in sorted(os.listdir(os.path.join(folder, "flux"))):
            for d in load_docs(os.path.join(folder, "flux", f)):
                if d["kind"] == "Kustomization":
                    ks[d["metadata"]["name"]] = d
                else:
                    sources[(d["kind"], d["metadata"]["name"])] = d
        order, done = [], set()

        def visit(name, stack=()):
            if name in done:
                return
            if name in stack:
                raise MeshError("dependsOn cycle through %s" % name)
            for dep in ks[name]["spec"].get("dependsOn") or []:
                if dep["name"] not in ks:
                    raise MeshError("Kustomization %s depends on unknown %s" % (name, dep["name"]))
                visit(dep["name"], stack + (name,))
            done.add(name)
            order.append(name)

        for name in sorted(ks):
            visit(name)
        stages = []
        for name in order:
            spec = ks[name]["spec"]
            src = spec["sourceRef"]
            if src["name"] != "flux-system":
                repo = sources.get((src["kind"], src["name"]), {}).get("spec", {}).get("url", "")
                if "gateway-api" not in repo:
                    raise MeshError("Kustomization %s reads %s, which the test environment cannot serve" % (name, repo))
                stages.append({"name": name, "gateway_api": True})
            else:
                stages.append({"name": name, "folder": self.stage_folder(tree, spec["path"]),
                               "namespace": spec.get("targetNamespace")})
        return stages

    def argocd_stages(self, tree, folder):
        apps = []
        for f in sorted(os.listdir(os.path.join(folder, "apps"))):
            for d in load_docs(os.path.join(folder, "apps", f)):
                if d["kind"] == "Application":
                    wave = int((d["metadata"].get("annotations") or {}).get("argocd.argoproj.io/sync-wave", "0"))
                    apps.append((wave, d["metadata"]["name"], d))
        stages = []
        for _, name, app in sorted(apps, key=lambda a: (a[0], a[1])):
            src = app["spec"]["source"]
            ns = app["spec"]["destination"].get("namespace")
            if src.get("chart"):
                helm = src.get("helm") or {}
                stages.append({"name": name, "chart": src["chart"], "version": str(src["targetRevision"]),
                               "values": helm.get("valuesObject") or {}, "namespace": ns})
            elif "gateway-api" in src.get("repoURL", ""):
                stages.append({"name": name, "gateway_api": True})
            else:
                stages.append({"name": name, "folder": self.stage_folder(tree, src["path"]), "namespace": ns})
        return stages

    def install_stage(self, context, engine, stage):
        t0 = time.time()
        manager = FIELD_MANAGER[engine]
        if stage.get("gateway_api"):
            self.apply(context, self.gateway_api_crds(), manager, what=stage["name"])
        elif stage.get("chart"):
            self.install_chart(context, stage["chart"], stage["version"], stage["values"], stage["namespace"],
                               stage["name"])
        else:
            docs = []
            kust = os.path.join(stage["folder"], "kustomization.yaml")
            files = load_docs(kust)[0].get("resources") or [] if os.path.exists(kust) else sorted(
                f for f in os.listdir(stage["folder"]) if f.endswith(".yaml"))
            for f in files:
                docs += load_docs(os.path.join(stage["folder"], f))
            releases = [d for d in docs if d["kind"] == "HelmRelease"]
            plain = [d for d in docs if d["kind"] != "HelmRelease"]
            if plain:
                self.apply(context, plain, manager, namespace=stage.get("namespace"), what=stage["name"])
                self.prune(context, stage["name"], plain)
            for hr in releases:
                chart = hr["spec"]["chart"]["spec"]
                self.install_chart(context, chart["chart"], str(chart["version"]), hr["spec"].get("values") or {},
                                   hr["spec"].get("targetNamespace"), stage["name"])
        self.log("%s: %s applied in %.1fs" % (context, stage["name"], time.time() - t0))

    def install_chart(self, context, chart, version, values, namespace, what):
        # The control plane's namespace is its release namespace; the extensions name it
        # in `linkerdNamespace`. The CLI takes it as -L.
        linkerd_ns = namespace if chart in ("linkerd-crds", "linkerd-control-plane") else None
        linkerd_ns = linkerd_ns or values.get("linkerdNamespace") or "linkerd"
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
            yaml.safe_dump(values, fh)
            vfile = fh.name
        common = ["--values", vfile, "-L", linkerd_ns]
        try:
            installed = self.kube(context, "get", "configmap", "-n", linkerd_ns, "--ignore-not-found",
                                  "-o", "name", "linkerd-config").strip() != ""
            if chart == "linkerd-crds":
                if installed:
                    out = self.cli(version, "upgrade", "--crds", *common, context=context, what=what)
                else:
                    out = self.cli(version, "install", "--crds", "--ignore-cluster", *common, what=what)
            elif chart == "linkerd-control-plane":
                self.wait_issuer(context, linkerd_ns)
                args = ["upgrade"] if installed else ["install", "--identity-external-issuer"]
                out = self.cli(version, *args, *common, context=context, what=what)
            elif chart == "linkerd-viz":
                out = self.cli(version, "viz", "install", "--ignore-cluster", *common, what=what)
            elif chart == "linkerd-multicluster":
                out = self.cli(version, "multicluster", "install", "--ignore-cluster", *common, what=what)
            else:
                raise MeshError("%s: chart %s is not one the test environment renders" % (what, chart))
        finally:
            os.unlink(vfile)
        docs = [d for d in yaml.safe_load_all(out) if d]
        if self.data_plane and chart == "linkerd-multicluster":
            self.wait_injector(context)
        self.apply(context, docs, "helm-controller", what=what)
        if self.data_plane and chart == "linkerd-control-plane":
            self.wait_injector(context)
        self.prune(context, "%s/%s" % (what, chart), docs)

    def wait_issuer(self, context, ns, timeout=60):
        """Flux waits for the identity stage's health (the Certificate Ready); so do we."""
        deadline = time.time() + timeout
        while True:
            got = self.kube(context, "get", "secret", "-n", ns, "--ignore-not-found", "-o", "json",
                            "linkerd-identity-issuer")
            if got.strip() and {"tls.crt", "tls.key", "ca.crt"} <= set(json.loads(got).get("data") or {}):
                return
            if time.time() > deadline:
                raise MeshError("%s: the Secret %s/linkerd-identity-issuer did not appear within %ds (is the "
                                "anchor or issuer in Vault? run `meshfleet secrets sync`)" % (context, ns, timeout))
            time.sleep(0.5)
