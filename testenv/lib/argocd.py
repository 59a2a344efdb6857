"""The Argo CD engine on the test clusters (`testenv/run gitops --engine argocd`).

What an Argo CD user's clusters are after installing Argo CD on the hub and
registering every cluster with it, with the External Secrets Operator and cert-manager
on every cluster (as for Flux, gitops.py):

* on the hub (`--hub`, the first cluster unless named): Argo CD's CRDs of the pinned
  release, read from its Go module (`manifests/crds`), the namespace `argocd` and the
  ConfigMaps and Secrets of the release's `manifests/install.yaml` as they are there,
  plus the one setting a meshfleet user adds (below); the AppProject `default`, which
  Argo CD's API server creates at start-up (no API server runs here);
* Argo CD's **application-controller** and **repo-server** (binaries built from
  github.com/argoproj/argo-cd/v3 by `testenv/run build`, ../go/argocd) and the
  **redis** they cache in (`redis-server` from Debian), as processes; the repo-server
  runs `helm` and `kustomize` built from their own Go modules (../go/helm,
  ../go/kustomize, at the versions the release's hack/tool-versions.sh names). The
  controller reaches the hub as "in-cluster" (`https://kubernetes.default.svc`)
  through Argo CD's own development switch ARGOCD_FAKE_IN_CLUSTER=true with KUBECONFIG
  = the hub's admin kubeconfig; every other cluster through its cluster Secret;
* every cluster of the environment registered as `argocd cluster add` registers it: a
  ServiceAccount `kube-system/argocd-manager` bound to a cluster-admin ClusterRole
  `argocd-manager-role`, its long-lived token Secret, and in `argocd` on the hub a
  Secret named after the cluster, labelled `argocd.argoproj.io/secret-type: cluster`,
  with `name`, `server` (the cluster's API server) and `config` (bearer token, CA,
  and `disableCompression: true`, also on a declared `in-cluster` Secret: on 127.0.0.1
  gzip only costs CPU, and the controller fetches the multi-MB /openapi/v2 again on
  every CRD event);
* the setting Argo CD needs for an app-of-apps' sync waves to wait for the child
  Applications to be Healthy: Argo CD 1.8 removed the health assessment of
  `argoproj.io/Application`, so without it the root Application marks each child
  Healthy as soon as it exists and the next wave starts at once. The Lua health check
  is read from the release's own docs (docs/operator-manual/health.md) into argocd-cm
  `resource.customizations.health.argoproj.io_Application`, exactly as documented.

`testenv/run commit` copies the tree to fleet.git (as for Flux), applies each cluster
folder's `app-of-apps.yaml` on the hub (what a user does once with kubectl) and asks
Argo CD to refresh every Application now (the `argocd.argoproj.io/refresh: normal`
annotation, what a git webhook or `argocd app get --refresh` does). The only changes to
the tree, printed by `commit`: an Application whose source is a Helm chart gets this
env's chart repository as `repoURL`, and one whose `repoURL` is
https://github.com/kubernetes-sigs/gateway-api gets this env's `gateway-api.git`. The
fleet's own repository URL is the fleet file's `gitops.repository.url`: tests set it to
this env's fleet.git.
"""

import base64
import json
import os
import re
import time

import yaml

import gitops

ARGOCD_NS = "argocd"
MANAGER_SA = "argocd-manager"
HEALTH_KEY = "resource.customizations.health.argoproj.io_Application"
# In every cluster's `config` (Argo CD's ClusterConfig.DisableCompression): every API
# server here is on 127.0.0.1, where gzip only costs CPU, and the controller fetches
# /openapi/v2 (every CRD's schema, several MB) again on CRD events, which the API server
# gzipped each time (40 % of the hub's API server CPU, docs/testing.md). Transport only:
# what is applied and compared is the same.
TRANSPORT = {"disableCompression": True}


def crd_files(module_dir):
    d = os.path.join(module_dir, "manifests", "crds")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith("-crd.yaml"))


def application_health_lua(module_dir):
    """The Lua health check of argoproj.io/Application, as Argo CD's docs give it."""
    with open(os.path.join(module_dir, "docs", "operator-manual", "health.md")) as fh:
        text = fh.read()
    m = re.search(r"```yaml\n(.*?%s.*?)```" % re.escape(HEALTH_KEY), text, re.S)
    if not m:
        raise gitops.GitOpsError("no %s example in Argo CD's docs/operator-manual/health.md" % HEALTH_KEY)
    doc = yaml.safe_load(m.group(1))
    return doc["data"][HEALTH_KEY]


def install_objects(module_dir):
    """The namespace, the release's ConfigMaps and Secrets, the Application health check,
    and the AppProject `default`."""
    with open(os.path.join(module_dir, "manifests", "install.yaml")) as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d and d.get("kind") in ("ConfigMap", "Secret")]
    for d in docs:
        d["metadata"]["namespace"] = ARGOCD_NS
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "argocd-cm":
            d.setdefault("data", {})[HEALTH_KEY] = application_health_lua(module_dir)
    project = {
        # What argocd-server's start-up creates when it is missing (server/server.go).
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": "default", "namespace": ARGOCD_NS},
        "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                 "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]},
    }
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ARGOCD_NS}}
    # The hub as "in-cluster", declared as Argo CD's docs show (a cluster Secret for
    # https://kubernetes.default.svc) only for TRANSPORT; its credentials still come from
    # the environment.
    in_cluster = {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "in-cluster", "namespace": ARGOCD_NS,
                     "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
        "stringData": {"name": "in-cluster", "server": "https://kubernetes.default.svc",
                       "config": json.dumps(dict(TRANSPORT, tlsClientConfig={"insecure": False}))},
    }
    return [ns] + docs + [in_cluster], [project]


def register(hub, cluster):
    """What `argocd cluster add` does: argocd-manager on the cluster, its token in a
    cluster Secret on the hub named after the cluster."""
    cluster.apply([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": MANAGER_SA, "namespace": "kube-system"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "argocd-manager-role"},
         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                   {"nonResourceURLs": ["*"], "verbs": ["*"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "argocd-manager-role-binding"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "argocd-manager-role"},
         "subjects": [{"kind": "ServiceAccount", "name": MANAGER_SA, "namespace": "kube-system"}]},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
         "metadata": {"name": MANAGER_SA + "-long-lived-token", "namespace": "kube-system",
                      "annotations": {"kubernetes.io/service-account.name": MANAGER_SA}}},
    ], "argocd-manager")
    deadline = time.time() + 30
    while True:
        out = cluster.kubectl("get", "secret", "-n", "kube-system", MANAGER_SA + "-long-lived-token",
                              "-o", "jsonpath={.data.token}")
        if out:
            token = base64.b64decode(out).decode()
            break
        if time.time() > deadline:
            raise gitops.GitOpsError("%s: the token controller did not fill %s's token" % (cluster.name, MANAGER_SA))
        time.sleep(0.2)
    with open(cluster.ca_file, "rb") as fh:
        ca = base64.b64encode(fh.read()).decode()
    config = dict(TRANSPORT, bearerToken=token, tlsClientConfig={"insecure": False, "caData": ca})
    hub.apply([{
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": cluster.name, "namespace": ARGOCD_NS,
                     "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
        "stringData": {"name": cluster.name, "server": cluster.server, "config": json.dumps(config)},
    }], "cluster Secret")


def controller_argvs(hub, bins, free_port, env_dir):
    """{component: (argv, env)}: redis, repo-server and application-controller."""
    home = os.path.join(env_dir, "argocd")
    tmp = os.path.join(home, "tmp")
    os.makedirs(tmp, exist_ok=True)
    base = dict(os.environ, HOME=home, TMPDIR=tmp, KUBECONFIG=hub.kubeconfig,
                PATH=os.path.dirname(bins["helm"]) + os.pathsep + os.environ.get("PATH", ""))
    for k in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        base.pop(k, None)
    redis_port = free_port()
    repo_port = free_port()
    redis = "127.0.0.1:%d" % redis_port
    repo_env = dict(base, ARGOCD_GPG_ENABLED="false", ARGOCD_ASK_PASS_SOCK=os.path.join(home, "ask-pass.sock"))
    ctrl_env = dict(base, ARGOCD_FAKE_IN_CLUSTER="true")
    return {
        "argocd-redis": (["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
                          "--appendonly", "no", "--dir", home], base),
        "argocd-repo-server": ([bins["argocd-repo-server"], "--address", "127.0.0.1", "--port", str(repo_port),
                                "--metrics-address", "127.0.0.1", "--metrics-port", str(free_port()),
                                "--disable-tls", "--redis", redis, "--logformat", "text"], repo_env),
        "argocd-application-controller": ([bins["argocd-application-controller"], "--namespace", ARGOCD_NS,
                                           "--repo-server", "127.0.0.1:%d" % repo_port, "--repo-server-plaintext",
                                           "--redis", redis, "--metrics-port", str(free_port()),
                                           "--logformat", "text"], ctrl_env),
    }, redis_port


# --------------------------------------------------------------------------
# commit


def substitute(text, base_url):
    """The Applications' `repoURL`s of Helm charts and of the Gateway API repository
    become this env's, every other byte kept. Returns (text, [changes])."""
    out, changes = [], []
    for doc in re.split(r"(?m)^(?=---\s*$)", text):
        try:
            obj = yaml.safe_load(doc)
        except yaml.YAMLError:
            obj = None
        if isinstance(obj, dict) and obj.get("kind") == "Application":
            src = (obj.get("spec") or {}).get("source") or {}
            old = src.get("repoURL")
            new = None
            if src.get("chart"):
                new = base_url + "/charts"
            elif old == gitops.GATEWAY_API_GIT:
                new = base_url + "/git/gateway-api.git"
            if old and new:
                doc, n = re.subn(r"(?m)^(    repoURL: )%s\s*$" % re.escape(old), lambda m: m.group(1) + new, doc)
                if n != 1:
                    raise gitops.GitOpsError("could not replace the repoURL of Application %s" % obj["metadata"]["name"])
                changes.append("Application %s/%s: %s -> %s" % (obj["metadata"].get("namespace", ""),
                                                               obj["metadata"]["name"], old, new))
        out.append(doc)
    return "".join(out), changes


def gateway_api_tags(tree):
    tags = set()
    for root, _, files in os.walk(tree):
        for f in files:
            if f.endswith(".yaml"):
                for d in gitops.load_docs(os.path.join(root, f)):
                    src = (d.get("spec") or {}).get("source") or {}
                    if d.get("kind") == "Application" and src.get("repoURL") == gitops.GATEWAY_API_GIT:
                        tags.add(src["targetRevision"])
    return tags


def apply_roots(hub, committed, folders):
    """`kubectl apply -f <folder>/app-of-apps.yaml` for every cluster folder committed."""
    for folder in folders:
        p = os.path.join(committed, folder, "app-of-apps.yaml")
        if os.path.exists(p):
            hub.apply_files([p], "app-of-apps")


def refresh_all(hub):
    """What a git webhook does: every Application is refreshed now."""
    hub.kubectl("annotate", "--overwrite", "-n", ARGOCD_NS, "applications.argoproj.io", "--all",
                "argocd.argoproj.io/refresh=normal")
