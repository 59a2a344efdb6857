"""The GitOps engine on the test clusters: real Flux, External Secrets and cert-manager.

`testenv/run gitops --dir DIR` (after `up`) makes each cluster of an environment what a
Flux user's cluster is after `flux bootstrap`, with the External Secrets Operator and
cert-manager installed, and Vault's Kubernetes auth set up for it:

* the CRDs of the controllers' own releases (from their Go modules: Flux's
  `config/crd/bases`, ESO's `config/crds/bases`, cert-manager's `deploy/crds`);
* per cluster, as processes with the cluster's admin kubeconfig (Flux's and the
  operators' own ClusterRoles are cluster-admin in practice; RBAC is not what is tested):
  source-controller, kustomize-controller, helm-controller, external-secrets and
  cert-manager's controllers (binaries from `testenv/run build`, see ../README.md);
* External Secrets authenticates to Vault as its pod would: with a token of its
  ServiceAccount `external-secrets/external-secrets` at
  /var/run/secrets/kubernetes.io/serviceaccount/token (ESO reads that fixed path when a
  ClusterSecretStore's Kubernetes auth names no account or Secret). The process runs in
  its own mount namespace (`unshare -m`) with a tmpfs on /run holding that token, renewed
  by `testenv/run controllers`; nothing on the host changes;
* OpenBao: for every ClusterSecretStore of the committed tree, its Kubernetes auth mount
  (`mountPath`) is enabled and configured against that cluster's API server (TokenReview
  with a `vault-auth` ServiceAccount bound to system:auth-delegator, the cluster CA), and
  its role binds `external-secrets/external-secrets` to a policy that reads the store's
  KV mount. A mount can trust one API server only: a tree whose stores on different
  clusters share a mount is refused with that reason;
* the loopback git server and Helm repository (repos.py): `fleet.git`, the repository the
  tree is committed to, and `charts/`, the Linkerd charts of every release in
  ../shared/linkerd (linkerd_charts.py);
* the bootstrap `flux bootstrap` would commit: GitRepository `flux-system` (this env's
  fleet.git, branch main) and Kustomization `flux-system` with path `./<path>/<cluster>`.

In an environment without OpenBao (`up --no-vault`: a fleet whose secrets are SOPS files
in git, decrypted by the kustomize-controller) External Secrets is not installed at all:
no CRDs, namespace, ServiceAccount, token or process; `commit` configures no Vault auth
(the tree has no ClusterSecretStore) and refuses a tree that has one.

`testenv/run commit --dir DIR --tree TREE` commits a rendered tree to fleet.git under
`gitops/` (or `--path`) and asks Flux to fetch it now (the `flux reconcile source git`
annotation). The only changes to the tree, printed by `commit`: each HelmRepository's
`url` becomes this env's chart repository, and a GitRepository of
https://github.com/kubernetes-sigs/gateway-api becomes this env's `gateway-api.git`, which
holds `config/crd` of the Go module sigs.k8s.io/gateway-api at the GitRepository's tag.
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import yaml

import linkerd_charts

FLUX_NS = "flux-system"
ESO_NS = "external-secrets"
ESO_SA = "external-secrets"
CM_NS = "cert-manager"
GATEWAY_API_GIT = "https://github.com/kubernetes-sigs/gateway-api"


class GitOpsError(Exception):
    pass


def git(*args, cwd, check=True):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="meshfleet tests",
               GIT_AUTHOR_EMAIL="tests@meshfleet.invalid", GIT_COMMITTER_NAME="meshfleet tests",
               GIT_COMMITTER_EMAIL="tests@meshfleet.invalid", GIT_TERMINAL_PROMPT="0")
    r = subprocess.run(["git"] + list(args), cwd=cwd, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise GitOpsError("git %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout.strip()


def load_docs(path):
    with open(path) as fh:
        return [d for d in yaml.safe_load_all(fh) if d]


class Cluster:
    """What the gitops setup needs of one cluster: kubectl as its admin."""

    def __init__(self, env_dir, name, bin_dir):
        self.name = name
        self.dir = os.path.join(env_dir, name)
        self.kubeconfig = os.path.join(self.dir, "admin.kubeconfig")
        self.kubectl_bin = os.path.join(bin_dir, "kubectl")
        with open(os.path.join(env_dir, "env.json")) as fh:
            info = json.load(fh)["clusters"][name]
        self.server = info["server"]
        self.ca_file = info["ca_file"]

    def kubectl(self, *args, stdin=None, check=True):
        r = subprocess.run([self.kubectl_bin, "--kubeconfig", self.kubeconfig] + list(args),
                           input=stdin, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise GitOpsError("%s: kubectl %s: %s" % (self.name, " ".join(args[:3]), r.stderr.strip()))
        return r.stdout

    def apply(self, docs, what):
        text = "\n---\n".join(yaml.safe_dump(d) for d in docs)
        self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=testenv", "-f", "-",
                     stdin=text)

    def apply_files(self, paths, what):
        args = []
        for p in paths:
            args += ["-f", p]
        self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=testenv", *args)

    def wait_established(self, names, timeout=60):
        self.kubectl("wait", "--for=condition=Established", "--timeout=%ds" % timeout,
                     *["crd/" + n for n in names])

    def token(self, namespace, account, seconds=86400):
        return self.kubectl("create", "token", account, "-n", namespace,
                            "--duration=%ds" % seconds).strip()


# --------------------------------------------------------------------------
# CRDs of the controllers' releases


def crd_files(module_dirs, flux=True, eso=True):
    """The CRD files of the pinned releases, from their Go modules (Flux's unless
    flux=False, External Secrets' unless eso=False, cert-manager's)."""
    files = []
    flux_crds = (("source-controller", "config/crd/bases"), ("kustomize-controller", "config/crd/bases"),
                 ("helm-controller", "config/crd/bases"))
    eso_crds = (("external-secrets", "config/crds/bases"),)
    for key, sub in (flux_crds if flux else ()) + (eso_crds if eso else ()) + (("cert-manager", "deploy/crds"),):
        d = os.path.join(module_dirs[key], sub)
        files += sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".yaml") and f != "kustomization.yaml")
    return files


def crd_names(paths):
    names = []
    for p in paths:
        names += [d["metadata"]["name"] for d in load_docs(p) if d.get("kind") == "CustomResourceDefinition"]
    return names


# --------------------------------------------------------------------------
# Vault (OpenBao) Kubernetes auth


class Vault:
    def __init__(self, env_dir):
        values = {}
        with open(os.path.join(env_dir, "vault.env")) as fh:
            for line in fh:
                k, _, v = line.strip().partition("=")
                values[k] = v
        self.addr = values["VAULT_ADDR"].rstrip("/")
        self.token = values["VAULT_TOKEN"]

    def call(self, method, path, body=None):
        req = urllib.request.Request("%s/v1/%s" % (self.addr, path), method=method,
                                     data=None if body is None else json.dumps(body).encode())
        req.add_header("X-Vault-Token", self.token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            # Never echo the request (it may hold a token): the path and Vault's errors.
            raise GitOpsError("vault %s %s: %s %s" % (method, path, e.code, e.read().decode("utf-8", "replace")))

    def ensure_kubernetes_auth(self, mount, cluster, reviewer_jwt, ca_pem, role, kv_mount):
        mounts = self.call("GET", "sys/auth")
        mounts = mounts.get("data", mounts)
        if mount.strip("/") + "/" not in mounts:
            self.call("POST", "sys/auth/" + mount, {"type": "kubernetes"})
        self.call("POST", "auth/%s/config" % mount, {
            "kubernetes_host": cluster.server,
            "kubernetes_ca_cert": ca_pem,
            "token_reviewer_jwt": reviewer_jwt,
            "disable_local_ca_jwt": True,
        })
        policy = "testenv-read-%s" % kv_mount.strip("/").replace("/", "-")
        self.call("PUT", "sys/policies/acl/" + policy, {
            "policy": 'path "%s/data/*" { capabilities = ["read"] }\n'
                      'path "%s/metadata/*" { capabilities = ["read", "list"] }\n' % (kv_mount, kv_mount)})
        self.call("POST", "auth/%s/role/%s" % (mount, role), {
            "bound_service_account_names": [ESO_SA],
            "bound_service_account_namespaces": [ESO_NS],
            "token_policies": [policy],
            "token_ttl": "1h",
        })


def stores_of(tree_dir, folder):
    """The ClusterSecretStores rendered for one cluster folder."""
    out = []
    for root, _, files in os.walk(os.path.join(tree_dir, folder)):
        for f in sorted(files):
            if f.endswith(".yaml"):
                out += [d for d in load_docs(os.path.join(root, f)) if d.get("kind") == "ClusterSecretStore"]
    return out


def configure_vault(env_dir, bin_dir, tree_dir, mapping):
    """Kubernetes auth for every ClusterSecretStore of the tree ({folder: cluster}).
    A tree without stores (SOPS secrets) needs no OpenBao at all."""
    vault = None
    used = {}
    for folder, cname in sorted(mapping.items()):
        cluster = Cluster(env_dir, cname, bin_dir)
        for store in stores_of(tree_dir, folder):
            provider = store["spec"]["provider"]["vault"]
            k8s = provider.get("auth", {}).get("kubernetes")
            if not k8s:
                continue
            mount = k8s.get("mountPath", "kubernetes")
            other = used.get(mount)
            if other and other != cname:
                raise GitOpsError(
                    "the ClusterSecretStores of clusters %s and %s both log in with Vault's Kubernetes "
                    "auth mount `%s`, but a mount validates tokens against one API server: each cluster "
                    "needs its own mount" % (other, cname, mount))
            used[mount] = cname
            if vault is None:
                if not os.path.exists(os.path.join(env_dir, "vault.env")):
                    raise GitOpsError("the tree's ClusterSecretStores read Vault, but this environment runs "
                                      "no OpenBao (started with `up --no-vault`)")
                vault = Vault(env_dir)
            reviewer = cluster.token("kube-system", "vault-auth")
            with open(cluster.ca_file) as fh:
                ca = fh.read()
            vault.ensure_kubernetes_auth(mount, cluster, reviewer, ca, k8s.get("role", "external-secrets"),
                                         provider["path"])
    return used


# --------------------------------------------------------------------------
# the controllers of one cluster


def prerequisites(cluster, flux=True, eso=True):
    """Namespaces, ServiceAccounts and the auth-delegator binding Vault's TokenReview uses."""
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            for ns in ([FLUX_NS] if flux else []) + ([ESO_NS] if eso else []) + [CM_NS]]
    if not eso:
        cluster.apply(docs, "prerequisites")
        return
    docs += [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ESO_SA, "namespace": ESO_NS}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "vault-auth", "namespace": "kube-system"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "testenv-vault-auth-delegator"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
         "subjects": [{"kind": "ServiceAccount", "name": "vault-auth", "namespace": "kube-system"}]},
    ]
    cluster.apply(docs, "prerequisites")


def eso_token_dir(cluster):
    return os.path.join(cluster.dir, "eso-serviceaccount")


def refresh_eso_token(cluster, seconds=86400):
    """Write a fresh token of ESO's ServiceAccount where its process reads it."""
    d = eso_token_dir(cluster)
    os.makedirs(d, mode=0o700, exist_ok=True)
    token = cluster.token(ESO_NS, ESO_SA, seconds)
    tmp = os.path.join(d, ".token")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    os.replace(tmp, os.path.join(d, "token"))
    shutil.copyfile(cluster.ca_file, os.path.join(d, "ca.crt"))
    with open(os.path.join(d, "namespace"), "w") as fh:
        fh.write(ESO_NS)


def controller_argvs(cluster, bins, free_port):
    """{component: (argv, env)} for one cluster's controllers."""
    base = dict(os.environ, KUBECONFIG=cluster.kubeconfig, RUNTIME_NAMESPACE=FLUX_NS)
    for k in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        base.pop(k, None)
    storage = os.path.join(cluster.dir, "flux-storage")
    os.makedirs(storage, exist_ok=True)
    home = os.path.join(cluster.dir, "flux-home")
    os.makedirs(home, exist_ok=True)
    base["HOME"] = home
    flux_common = ["--enable-leader-election=false", "--log-level=info", "--log-encoding=console",
                   "--watch-all-namespaces=true"]
    sport = free_port()
    out = {
        "source-controller": ([bins["source-controller"], "--storage-path=" + storage,
                               "--storage-addr=127.0.0.1:%d" % sport, "--storage-adv-addr=127.0.0.1:%d" % sport,
                               "--metrics-addr=127.0.0.1:%d" % free_port(),
                               "--health-addr=127.0.0.1:%d" % free_port(), "--events-addr="] + flux_common, base),
        # Dependencies not ready are retried after --requeue-dependency (30 s upstream):
        # a controller setting, not part of the rendered tree.
        "kustomize-controller": ([bins["kustomize-controller"], "--metrics-addr=127.0.0.1:%d" % free_port(),
                                  "--health-addr=127.0.0.1:%d" % free_port(), "--events-addr=",
                                  "--requeue-dependency=5s",
                                  # A new commit stops waiting for the old one's health
                                  # (Flux 2.7 has this gate, off by default): a revert
                                  # of a bad commit need not sit out its timeout.
                                  "--feature-gates=CancelHealthCheckOnNewRevision=true"] + flux_common, base),
        "helm-controller": ([bins["helm-controller"], "--metrics-addr=127.0.0.1:%d" % free_port(),
                             "--health-addr=127.0.0.1:%d" % free_port(), "--events-addr=",
                             "--requeue-dependency=5s"] + flux_common, base),
        "cert-manager": ([bins["cert-manager-controller"], "--kubeconfig=" + cluster.kubeconfig,
                          "--cluster-resource-namespace=" + CM_NS], base),
    }
    # ESO in its own mount namespace: a tmpfs on /run with the ServiceAccount folder
    # bind-mounted where in-cluster code looks for it.
    sa = eso_token_dir(cluster)
    script = ("mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount && "
              "mount --bind %s /run/secrets/kubernetes.io/serviceaccount && exec \"$@\"" % sa)
    out["external-secrets"] = (["unshare", "-m", "--propagation", "private", "sh", "-c", script, "eso",
                                bins["external-secrets"], "--metrics-addr=127.0.0.1:%d" % free_port(),
                                "--enable-leader-election=false", "--loglevel=info",
                                "--enable-cluster-external-secret-reconciler=false",
                                "--enable-push-secret-reconciler=false",
                                "--enable-cluster-push-secret-reconciler=false"], base)
    return out


# --------------------------------------------------------------------------
# repositories


def charts_repo(env_dir, releases, cache_dir):
    """The Linkerd charts of every release as a Helm repository in DIR/charts, packaged
    once per set of CLIs (and version of linkerd_charts.py) into cache_dir."""
    key = hashlib.sha256()
    with open(linkerd_charts.__file__, "rb") as fh:
        key.update(fh.read())
    for rel, paths in sorted(releases.items()):
        st = os.stat(paths["cli"])
        key.update(("%s %s %d %d\n" % (rel, paths["cli"], st.st_size, st.st_mtime_ns)).encode())
    cached = os.path.join(cache_dir, "charts-" + key.hexdigest()[:16])
    # Tests start environments in parallel: one packs, the others wait for it.
    with open(os.path.join(cache_dir, ".charts.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isdir(cached):
            tmp = cached + ".tmp%d" % os.getpid()
            shutil.rmtree(tmp, ignore_errors=True)
            linkerd_charts.write_repo({rel: paths["cli"] for rel, paths in releases.items()}, tmp)
            os.replace(tmp, cached)
    out = os.path.join(env_dir, "charts")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(cached, out)
    return out


def init_git(env_dir):
    root = os.path.join(env_dir, "git")
    os.makedirs(root, exist_ok=True)
    bare = os.path.join(root, "fleet.git")
    if not os.path.isdir(bare):
        git("init", "-q", "--bare", "-b", "main", bare, cwd=root)
    work = os.path.join(env_dir, "fleet-worktree")
    if not os.path.isdir(work):
        git("clone", "-q", bare, work, cwd=env_dir)
        git("checkout", "-q", "-b", "main", cwd=work, check=False)
    return root


def gateway_api_repo(env_dir, tag, go_env):
    """DIR/git/gateway-api.git with `config/crd` of sigs.k8s.io/gateway-api@tag, tagged."""
    bare = os.path.join(env_dir, "git", "gateway-api.git")
    if os.path.isdir(bare) and git("tag", "-l", tag, cwd=bare):
        return
    r = subprocess.run(["go", "mod", "download", "-json", "sigs.k8s.io/gateway-api@" + tag],
                       capture_output=True, text=True, env=go_env, cwd=env_dir)
    if r.returncode != 0:
        raise GitOpsError("go mod download sigs.k8s.io/gateway-api@%s: %s" % (tag, (r.stdout + r.stderr).strip()))
    src = json.loads(r.stdout)["Dir"]
    work = os.path.join(env_dir, "gateway-api-worktree")
    if not os.path.isdir(bare):
        git("init", "-q", "--bare", "-b", "main", bare, cwd=env_dir)
        shutil.rmtree(work, ignore_errors=True)
        git("clone", "-q", bare, work, cwd=env_dir)
        git("checkout", "-q", "-b", "main", cwd=work, check=False)
    shutil.rmtree(os.path.join(work, "config"), ignore_errors=True)
    shutil.copytree(os.path.join(src, "config", "crd"), os.path.join(work, "config", "crd"))
    for root, dirs, files in os.walk(os.path.join(work, "config")):
        for x in dirs + files:
            os.chmod(os.path.join(root, x), 0o755 if x in dirs else 0o644)
    git("add", "-A", cwd=work)
    git("commit", "-q", "--allow-empty", "-m", "config/crd of sigs.k8s.io/gateway-api " + tag, cwd=work)
    git("tag", tag, cwd=work)
    git("push", "-q", "origin", "HEAD:main", "--tags", cwd=work)


def substitute(text, kinds_urls):
    """Replace `url:` values of the given kinds' specs in a multi-document YAML text,
    keeping every other byte. kinds_urls: {(kind, old_url): new_url}."""
    out, changes = [], []
    for doc in re.split(r"(?m)^(?=---\s*$)", text):
        try:
            obj = yaml.safe_load(doc)
        except yaml.YAMLError:
            obj = None
        if isinstance(obj, dict):
            old = (obj.get("spec") or {}).get("url")
            new = kinds_urls.get((obj.get("kind"), old))
            if new is None:
                new = kinds_urls.get((obj.get("kind"), "*"))
            if old and new:
                doc, n = re.subn(r"(?m)^(  url: )%s\s*$" % re.escape(old), lambda m: m.group(1) + new, doc)
                if n != 1:
                    raise GitOpsError("could not replace the url of %s %s" % (obj["kind"], obj["metadata"]["name"]))
                changes.append("%s %s/%s: %s -> %s" % (obj["kind"], obj["metadata"].get("namespace", ""),
                                                      obj["metadata"]["name"], old, new))
        out.append(doc)
    return "".join(out), changes


def commit_tree(env_dir, tree, path, message, base_url, go_env, engine="flux"):
    """Copy `tree` to `path` in fleet.git (with the URL substitutions of `engine`'s
    sources), commit, push. Returns (commit, [substitutions])."""
    work = os.path.join(env_dir, "fleet-worktree")
    dest = os.path.join(work, path)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(tree, dest)
    urls = {("HelmRepository", "*"): base_url + "/charts", ("GitRepository", GATEWAY_API_GIT): base_url + "/git/gateway-api.git"}
    if engine == "argocd":
        import argocd
        for tag in sorted(argocd.gateway_api_tags(dest)):
            gateway_api_repo(env_dir, tag, go_env)
    changes = []
    for root, _, files in os.walk(dest):
        for f in sorted(files):
            if not f.endswith(".yaml"):
                continue
            p = os.path.join(root, f)
            with open(p) as fh:
                text = fh.read()
            if engine == "argocd":
                new, ch = argocd.substitute(text, base_url)
                changes += ["%s: %s" % (os.path.relpath(p, work), c) for c in ch]
                if new != text:
                    with open(p, "w") as fh:
                        fh.write(new)
                continue
            for obj in yaml.safe_load_all(text):
                if isinstance(obj, dict) and obj.get("kind") == "GitRepository" and \
                        obj.get("spec", {}).get("url") == GATEWAY_API_GIT:
                    gateway_api_repo(env_dir, obj["spec"]["ref"]["tag"], go_env)
            new, ch = substitute(text, urls)
            changes += ["%s: %s" % (os.path.relpath(p, work), c) for c in ch]
            if new != text:
                with open(p, "w") as fh:
                    fh.write(new)
    git("add", "-A", cwd=work)
    git("commit", "-q", "--allow-empty", "-m", message, cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work), changes


def bootstrap(cluster, folder, path, base_url):
    """The two objects `flux bootstrap` commits (gotk-sync.yaml), pointing at this env."""
    cluster.apply([
        {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
         "metadata": {"name": FLUX_NS, "namespace": FLUX_NS},
         "spec": {"interval": "1m", "url": base_url + "/git/fleet.git", "ref": {"branch": "main"}}},
        {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
         "metadata": {"name": FLUX_NS, "namespace": FLUX_NS},
         "spec": {"interval": "10m", "path": "./%s/%s" % (path.strip("/"), folder), "prune": True,
                  "sourceRef": {"kind": "GitRepository", "name": FLUX_NS}}},
    ], "bootstrap")


def request_reconcile(cluster, kind, name, namespace=FLUX_NS):
    """What `flux reconcile` does: annotate with the current time."""
    cluster.kubectl("annotate", "--overwrite", "-n", namespace, kind, name,
                    "reconcile.fluxcd.io/requestedAt=%s" % time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) +
                    ".%06d" % (time.time() % 1 * 1e6))
