"""Runs Linkerd's real controllers for the Deployments the charts made, as a kubelet would.

KWOK gives every pod a Running, Ready status but runs nothing. For the Linkerd
containers whose behaviour meshfleet depends on, this runs the real `controller`
binary of the Deployment's release (from its image tag, e.g.
`cr.l5d.io/linkerd/controller:edge-25.4.4`) as a process on this machine:

  * every container whose first argument is `service-mirror` (the chart's
    `controller-<link>` Deployments and `linkerd-local-service-mirror`);
  * the `destination` container of `linkerd-destination` (its cluster store registers
    remote-discovery targets from the credentials Secrets in the linkerd namespace);
  * the `identity` container of `linkerd-identity`: the real identity controller, with
    its two volumes as a kubelet keeps them (the issuer Secret `linkerd-identity-issuer`
    and the ConfigMap `linkerd-identity-trust-roots`, each written into a folder the way
    Kubernetes' atomic writer does: files linked through `..data`, swapped in one rename,
    so the controller's own watcher sees an issuer change as on a real node). The issuer
    folder is its `-issuer` flag; the trust roots have a fixed path in the binary
    (`/var/run/linkerd/identity/trust-roots/ca-bundle.crt`), so the process runs in a
    private mount namespace (`unshare -m`) where that path is bind-mounted from the
    cluster's folder: three clusters' controllers each read their own bundle. Its gRPC
    address (the Certify API, plain HTTP/2 as behind the pod's proxy) is written to
    DIR/kubelet/<cluster>-<namespace>-<deployment>-<container>.addr.
    A running controller's volumes follow a changed Secret or ConfigMap after
    VOLUME_DELAY_FILE's seconds (default 0): a real kubelet's sync period plus its cache
    TTL, a minute or more on a real node. A test writes the file to open that window;
    a (re)started controller always gets the current content, as a pod does at start.

Each process gets the Deployment's arguments with `-kubeconfig` (a TokenRequest token
of the pod's ServiceAccount, so the chart's RBAC is what it can do) and its listen
addresses moved to free ports on 127.0.0.1 inserted before the positional arguments,
the container's literal and downward-API environment, `HOSTNAME` set to a pod-like
name (the service mirror names its Lease holder after it), and `HTTPS_PROXY` set to the
cluster network (network.py), through which they dial other clusters' `apiServer`s. It is restarted whenever
the Deployment's pod template changes (`kubectl rollout restart`, a changed argument)
and stopped when the Deployment is deleted or scaled to zero; the token is re-requested
at each start. Logs: DIR/logs/<cluster>-<namespace>-<deployment>.log, with a line at
every start and stop.

With the data plane on (`testenv/run mesh --data-plane`, the file DIR/data-plane), the
`policy` container of `linkerd-destination` runs too: the real `linkerd-policy-controller`
of the release (linkerd_bins.DATA_PLANE) with the chart's arguments, `--kubeconfig` as
above, its three listen addresses (`--grpc-addr`, `--admin-addr`, `--server-addr`) moved to
free ports on 127.0.0.1 in place (clap refuses a repeated flag) and its webhook TLS files
(`--server-tls-key`/`--server-tls-certs`) from the Secret `linkerd-policy-validator-k8s-tls`
projected like the identity controller's volumes. Its gRPC address is written to
DIR/kubelet/<cluster>-<namespace>-linkerd-destination-policy.addr, the destination's to
...-destination.addr; the meshed pods' proxies reach both there (dataplane.py). Its log:
DIR/logs/<cluster>-<namespace>-linkerd-destination-policy.log.

With the data plane the `proxy-injector` container of `linkerd-proxy-injector` runs too,
the real `controller proxy-injector`, its volumes (linkerd-config, the trust roots, and TLS
files for 127.0.0.1 signed by the environment's own CA, DIR/kubelet/webhook-pki) mounted
at the image's fixed paths over a private tmpfs /run; the chart's
MutatingWebhookConfiguration is pointed at https://127.0.0.1:<port>/ with that CA
(re-pointed whenever `mesh` applies the chart's version again).

Not run: the validating webhooks (their configurations are left out of the install, see
mesh.py), and the injector without the data plane.
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import time

from kube import ApiError, token_kubeconfig

LISTEN_FLAGS = {
    "service-mirror": ("-metrics-addr",),
    "destination": ("-addr", "-metrics-addr"),
    "identity": ("-addr", "-admin-addr"),
    "policy": ("--grpc-addr", "--admin-addr", "--server-addr"),
    "proxy-injector": ("-addr", "-metrics-addr"),
}

# The proxy injector's webhook configuration (data plane only).
INJECTOR_WEBHOOK = "linkerd-proxy-injector-webhook-config"

# The policy controller's webhook certificate (the chart's Secret and mount folder).
POLICY_TLS_SECRET = "linkerd-policy-validator-k8s-tls"
POLICY_TLS_MOUNT = "/var/run/linkerd/tls"

# DIR/<this> exists when `testenv/run mesh --data-plane` asked for the data plane.
DATA_PLANE_FILE = "data-plane"

# Where the identity controller reads the trust anchors (hard-coded in the binary).
TRUST_ROOTS_MOUNT = "/var/run/linkerd/identity/trust-roots"

# DIR/kubelet/<this>: seconds between a Secret or ConfigMap change and a running
# controller's volume following it (absent: at once).
VOLUME_DELAY_FILE = "volume-update-delay"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def release_of(image):
    tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
    return tag


def template_hash(deploy):
    return hashlib.sha256(json.dumps(deploy["spec"]["template"], sort_keys=True).encode()).hexdigest()[:10]


def wanted_containers(deploy, data_plane=False):
    """(container, subcommand) pairs of a Deployment that this kubelet runs."""
    out = []
    for c in deploy["spec"]["template"]["spec"].get("containers", []):
        args = c.get("args") or []
        if args and args[0] == "service-mirror":
            out.append((c, "service-mirror"))
        elif deploy["metadata"]["name"] == "linkerd-destination" and c["name"] == "destination":
            out.append((c, "destination"))
        elif deploy["metadata"]["name"] == "linkerd-identity" and c["name"] == "identity":
            out.append((c, "identity"))
        elif data_plane and deploy["metadata"]["name"] == "linkerd-destination" and c["name"] == "policy":
            out.append((c, "policy"))
        elif data_plane and deploy["metadata"]["name"] == "linkerd-proxy-injector" and c["name"] == "proxy-injector":
            out.append((c, "proxy-injector"))
    return out


def policy_argv(binary, container, kubeconfig, ports, tls_dir):
    """The chart's `policy` arguments with the listen addresses and TLS files moved."""
    argv = [binary]
    for a in container.get("args") or []:
        flag = a.split("=", 1)[0]
        if flag in ports:
            a = "%s=127.0.0.1:%d" % (flag, ports[flag])
        elif flag in ("--server-tls-key", "--server-tls-certs") and a.startswith(flag + "=" + POLICY_TLS_MOUNT):
            a = "%s=%s%s" % (flag, tls_dir, a[len(flag) + 1 + len(POLICY_TLS_MOUNT):])
        argv.append(a)
    return argv + ["--kubeconfig=%s" % kubeconfig]


def controller_argv(binary, container, subcommand, kubeconfig, ports):
    args = list(container.get("args") or [])[1:]
    flags = [a for a in args if a.startswith("-")]
    positional = [a for a in args if not a.startswith("-")]
    ours = ["-kubeconfig=%s" % kubeconfig]
    ours += ["%s=127.0.0.1:%d" % (flag, ports[flag]) for flag in LISTEN_FLAGS[subcommand]]
    # Go's flag package stops at the first positional argument and the last
    # occurrence of a flag wins: ours go after the chart's flags, before positionals.
    return [binary, subcommand] + flags + ours + positional


def volume_differs(folder, files):
    """Whether the files projected in `folder` differ from `files` (name -> bytes)."""
    for name, content in files.items():
        try:
            with open(os.path.join(folder, "..data", name), "rb") as fh:
                if fh.read() != content:
                    return True
        except OSError:
            return True
    return False


def write_volume(folder, files):
    """Write `files` (name -> bytes) into `folder` as Kubernetes' atomic writer does: a
    new timestamped folder, `..data` pointing at it (swapped by one rename), and each
    file a link through `..data`. Returns whether anything changed."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    data = os.path.join(folder, "..data")
    current = {}
    for name in files:
        try:
            with open(os.path.join(data, name), "rb") as fh:
                current[name] = fh.read()
        except OSError:
            pass
    if current == files:
        return False
    old = os.readlink(data) if os.path.islink(data) else None
    stamp = "..%d" % time.time_ns()
    os.mkdir(os.path.join(folder, stamp), 0o700)
    for name, content in files.items():
        fd = os.open(os.path.join(folder, stamp, name), os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
    tmp = os.path.join(folder, "..data_tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(stamp, tmp)
    os.rename(tmp, data)
    for name in files:
        link = os.path.join(folder, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..data", name), link)
    if old:
        for name in os.listdir(os.path.join(folder, old)):
            os.unlink(os.path.join(folder, old, name))
        os.rmdir(os.path.join(folder, old))
    return True


def secret_volume(cluster, namespace, name):
    import base64
    secret = cluster.get("v1", "secrets", namespace, name)
    if not secret:
        return None
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def identity_volumes(cluster, namespace):
    """The identity controller's two volumes as a kubelet would project them."""
    import base64
    out = {}
    secret = cluster.get("v1", "secrets", namespace, "linkerd-identity-issuer")
    if secret:
        out["issuer"] = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    roots = cluster.get("v1", "configmaps", namespace, "linkerd-identity-trust-roots")
    if roots:
        out["trust-roots"] = {k: v.encode() for k, v in (roots.get("data") or {}).items()}
    return out


def container_env(container, deploy, pod_name):
    env = {}
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            field = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if field == "metadata.namespace":
                env[e["name"]] = deploy["metadata"]["namespace"]
            elif field == "metadata.name":
                env[e["name"]] = pod_name
    return env


class Process:
    def __init__(self, key, popen, template, log_path):
        self.key = key
        self.popen = popen
        self.template = template
        self.log_path = log_path
        self.exited_at = None

    def stop(self, why):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        with open(self.log_path, "ab") as fh:
            fh.write(("==== %s kubelet: stopped (%s)\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), why)).encode())


class Kubelet:
    """Keeps one process per wanted container of every cluster's Deployments."""

    def __init__(self, env_dir, clusters, binaries, log, proxy=None):
        self.dir = env_dir
        self.proxy = proxy  # HTTPS_PROXY of the cluster network (network.py)
        self.clusters = clusters
        self.binaries = binaries  # release -> {"controller": path}
        self.log = log
        self.procs = {}
        # key -> (the old Process, addr file, new listen port or None, when the new one
        # started): a changed pod template is rolled make-before-break, see handover().
        self.handover = {}
        self.pending = {}  # (key, volume, content digest) -> when first seen changed
        self.data_plane = os.path.exists(os.path.join(env_dir, DATA_PLANE_FILE))
        self.injector_ports = {}
        os.makedirs(os.path.join(env_dir, "kubelet"), mode=0o700, exist_ok=True)

    def volume_dir(self, key, volume):
        return os.path.join(self.dir, "kubelet", "%s-%s-%s-%s.volumes" % key, volume)

    def volume_delay(self):
        try:
            with open(os.path.join(self.dir, "kubelet", VOLUME_DELAY_FILE)) as fh:
                return float(fh.read().strip() or 0)
        except (OSError, ValueError):
            return 0.0

    def sync_volumes(self, cluster, key, running):
        """Bring an identity controller's volumes up to date; False while one is missing.
        For a `running` controller a changed object reaches its volume only once it has
        been seen changed for the configured delay."""
        volumes = identity_volumes(cluster, key[1])
        delay = self.volume_delay() if running else 0.0
        for volume in ("issuer", "trust-roots"):
            if volume not in volumes:
                return False
            folder = self.volume_dir(key, volume)
            if delay > 0 and volume_differs(folder, volumes[volume]):
                digest = hashlib.sha256(repr(sorted(volumes[volume].items())).encode()).hexdigest()
                seen = self.pending.setdefault((key, volume, digest), time.time())
                if time.time() - seen < delay:
                    continue
                del self.pending[(key, volume, digest)]
            if write_volume(folder, volumes[volume]):
                self.log("%s: %s volume of %s/%s updated" % (cluster.name, volume, key[1], key[2]))
        return True

    def webhook_pki(self):
        """A CA and a serving certificate for 127.0.0.1 (made once per environment): the
        API server calls the proxy injector at https://127.0.0.1:<port>/."""
        folder = os.path.join(self.dir, "kubelet", "webhook-pki")
        crt = os.path.join(folder, "tls.crt")
        if not os.path.exists(crt):
            os.makedirs(folder, mode=0o700, exist_ok=True)

            def openssl(*args):
                subprocess.run(["openssl"] + list(args), cwd=folder, check=True, capture_output=True)
            openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=testenv webhook CA", "-days", "30")
            openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=127.0.0.1")
            with open(os.path.join(folder, "ext"), "w") as fh:
                fh.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
            openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                    "-out", "tls.crt.tmp", "-days", "30", "-extfile", "ext")
            os.replace(os.path.join(folder, "tls.crt.tmp"), crt)
        out = {}
        for name in ("ca.crt", "tls.crt", "tls.key"):
            with open(os.path.join(folder, name), "rb") as fh:
                out[name] = fh.read()
        return out

    def injector_volumes(self, cluster, key):
        """The injector's volumes: linkerd-config's values, the trust roots, and its TLS
        files (the environment's, for 127.0.0.1, instead of the chart's Secret for the
        Service name the API server cannot dial here). False while one is missing."""
        config = cluster.get("v1", "configmaps", key[1], "linkerd-config")
        roots = cluster.get("v1", "configmaps", key[1], "linkerd-identity-trust-roots")
        if not config or not roots:
            return False
        pki = self.webhook_pki()
        write_volume(self.volume_dir(key, "config"), {k: v.encode() for k, v in (config.get("data") or {}).items()})
        write_volume(self.volume_dir(key, "trust-roots"), {k: v.encode() for k, v in (roots.get("data") or {}).items()})
        write_volume(self.volume_dir(key, "tls"), {"tls.crt": pki["tls.crt"], "tls.key": pki["tls.key"]})
        return True

    def point_webhook(self, cluster, key):
        """The chart's MutatingWebhookConfiguration calls the Service; here it calls the
        running injector at its loopback address with the environment's CA (kept so:
        `mesh` applies the chart's version again).

        Only at an injector that listens, as a Service routes only to ready pods: while a
        new injector starts, the webhook keeps calling the old one (hand_over() points it
        at the new one before it stops the old). A call to an address nobody listens on
        fails, the chart's `failurePolicy: Ignore` then admits the pod uninjected, and a
        Deployment restarted in that second gets a pod without a proxy: one the data
        plane does not run and KWOK reports Ready at once, so the rollout deletes the
        serving pod and its endpoint leads nowhere."""
        import base64
        port = self.injector_ports.get(key)
        if not port or key in self.handover:
            return
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return  # not listening yet: the next round
        mwc = cluster.get("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", None, INJECTOR_WEBHOOK)
        if not mwc:
            return
        want = {"url": "https://127.0.0.1:%d/" % port,
                "caBundle": base64.b64encode(self.webhook_pki()["ca.crt"]).decode()}
        hooks = mwc.get("webhooks") or []
        if all(h.get("clientConfig") == want for h in hooks):
            return
        for h in hooks:
            h["clientConfig"] = dict(want)
        cluster.merge_patch("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", None,
                            INJECTOR_WEBHOOK, {"webhooks": hooks})
        self.log("%s: %s calls the proxy injector at %s" % (cluster.name, INJECTOR_WEBHOOK, want["url"]))

    def reconcile(self):
        self.data_plane = os.path.exists(os.path.join(self.dir, DATA_PLANE_FILE))
        seen = set()
        for cluster in self.clusters:
            for deploy in cluster.list("apps/v1", "deployments"):
                if deploy["spec"].get("replicas", 1) == 0:
                    continue
                for container, sub in wanted_containers(deploy, self.data_plane):
                    key = (cluster.name, deploy["metadata"]["namespace"], deploy["metadata"]["name"], container["name"])
                    seen.add(key)
                    self.ensure(cluster, deploy, container, sub, key)
        for key in [k for k in self.procs if k not in seen]:
            self.procs.pop(key).stop("Deployment deleted or scaled to zero")
            if key in self.handover:
                self.handover.pop(key)[0].stop("Deployment deleted or scaled to zero")
            self.log("%s: stopped %s/%s (gone)" % key[:3])
        self.hand_over()

    def hand_over(self):
        """A rolling update keeps the old pod until the new one is ready: the old
        controller runs until the new one listens (or, without a listen address, 5 s;
        at most 60 s), then its address file names the new one and the old one stops."""
        for key, (old, addr, listen, since) in list(self.handover.items()):
            waited = time.time() - since
            if listen is None:
                ready = waited > 5
            else:
                try:
                    socket.create_connection(("127.0.0.1", listen), timeout=0.5).close()
                    ready = True
                except OSError:
                    ready = False
            if not ready and waited < 60:
                continue
            if os.path.exists(addr + ".next"):
                os.replace(addr + ".next", addr)
            del self.handover[key]
            if key in self.injector_ports:
                # The webhook follows before the old injector stops (see point_webhook).
                cluster = next((c for c in self.clusters if c.name == key[0]), None)
                if cluster is not None:
                    self.point_webhook(cluster, key)
            old.stop("replaced by the new pod (ready)")
            self.log("%s: %s/%s: the new pod is ready, the old one stopped" % key[:3])

    def ensure(self, cluster, deploy, container, sub, key):
        tmpl = template_hash(deploy)
        # A kubelet keeps a running pod's Secret and ConfigMap volumes current, and
        # does not start a pod before they exist.
        proc = self.procs.get(key)
        running = bool(proc and proc.template == tmpl and proc.popen.poll() is None)
        if sub == "identity" and not self.sync_volumes(cluster, key, running):
            return
        if sub == "policy":
            tls = secret_volume(cluster, key[1], POLICY_TLS_SECRET)
            if tls is None:
                return
            write_volume(self.volume_dir(key, "policy-tls"), tls)
        if sub == "proxy-injector":
            if not self.injector_volumes(cluster, key):
                return
            if running:
                self.point_webhook(cluster, key)
        if proc and proc.template == tmpl:
            if proc.popen.poll() is None:
                return
            # Exited on its own: restart it like a kubelet, after a few seconds so that a
            # controller failing at start does not spin.
            if proc.exited_at is None:
                proc.exited_at = time.time()
            if time.time() - proc.exited_at < 5:
                return
        old = None
        if proc and proc.template != tmpl and proc.popen.poll() is None and key not in self.handover:
            old = proc  # stopped by hand_over() once the new one is ready
        elif proc:
            proc.stop("pod template changed" if proc.template != tmpl else "exited, restarting")
        release = release_of(container.get("image", ""))
        binary = (self.binaries.get(release) or {}).get("policy-controller" if sub == "policy" else "controller")
        if not binary:
            self.log("%s: no controller binary for image %s (have %s)" % (
                "/".join(key[:3]), container.get("image"), ", ".join(sorted(self.binaries))))
            return
        ns, name = deploy["metadata"]["namespace"], deploy["metadata"]["name"]
        account = deploy["spec"]["template"]["spec"].get("serviceAccountName") or "default"
        try:
            token = cluster.service_account_token(ns, account)
        except ApiError as e:
            self.log("%s: cannot get a token for ServiceAccount %s/%s: %s" % ("/".join(key[:3]), ns, account, e))
            return
        kcfg = os.path.join(self.dir, "kubelet", "%s-%s-%s-%s.kubeconfig" % key)
        fd = os.open(kcfg + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token_kubeconfig(cluster, token))
        os.replace(kcfg + ".tmp", kcfg)
        ports = {flag: free_port() for flag in LISTEN_FLAGS[sub]}
        pod_name = "%s-%s-kubelet" % (name, tmpl)
        if sub == "policy":
            argv = policy_argv(binary, container, kcfg, ports, self.volume_dir(key, "policy-tls"))
        else:
            argv = controller_argv(binary, container, sub, kcfg, ports)
        if sub == "proxy-injector":
            # Its TLS files, the values and the trust roots have fixed paths under /run.
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                    "mount -t tmpfs tmpfs /run && mkdir -p /run/linkerd/config /run/linkerd/tls "
                    "/run/linkerd/identity/trust-roots && mount --bind \"$MF_CONFIG\" /run/linkerd/config && "
                    "mount --bind \"$MF_TLS\" /run/linkerd/tls && mount --bind \"$MF_ROOTS\" "
                    "/run/linkerd/identity/trust-roots && unset MF_CONFIG MF_TLS MF_ROOTS && exec \"$@\"",
                    "container"] + argv
            self.injector_ports[key] = ports["-addr"]
        if sub == "identity":
            os.makedirs(TRUST_ROOTS_MOUNT, exist_ok=True)
            argv.insert(2, "-issuer=%s" % self.volume_dir(key, "issuer"))
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                    'mount --bind "$0" %s && exec "$@"' % TRUST_ROOTS_MOUNT,
                    self.volume_dir(key, "trust-roots")] + argv
        addr = os.path.join(self.dir, "kubelet", "%s-%s-%s-%s.addr" % key)
        listen = ports.get("-addr") or ports.get("--grpc-addr")
        with open(addr + ".tmp", "w") as fh:
            fh.write("127.0.0.1:%d\n" % listen if listen else "")
        os.replace(addr + ".tmp", addr + ".next" if old else addr)
        if old:
            self.handover[key] = (old, addr, listen, time.time())
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOSTNAME": pod_name}
        if self.proxy and sub != "policy":
            # (The policy controller talks only to its own API server; kube-rs refuses a
            # proxy it was built without.)
            env["HTTPS_PROXY"] = self.proxy
        env.update(container_env(container, deploy, pod_name))
        if sub == "proxy-injector":
            env.update({"MF_CONFIG": self.volume_dir(key, "config"), "MF_TLS": self.volume_dir(key, "tls"),
                        "MF_ROOTS": self.volume_dir(key, "trust-roots")})
        log_path = os.path.join(self.dir, "logs", "%s-%s-%s%s.log" % (
            cluster.name, ns, name, "-policy" if sub == "policy" else ""))
        logf = os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        logf.write(("==== %s kubelet: start %s (template %s, release %s)\n" % (
            time.strftime("%Y-%m-%dT%H:%M:%S"), " ".join(a if not a.startswith("-kubeconfig") else "-kubeconfig=<token>" for a in argv[1:]),
            tmpl, release)).encode())
        logf.flush()
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                 env=env, cwd=self.dir, close_fds=True)
        logf.close()
        self.procs[key] = Process(key, popen, tmpl, log_path)
        self.log("%s: started %s %s (%s)" % (cluster.name, sub, "%s/%s" % (ns, name), release))

    def stop_all(self):
        for proc in self.procs.values():
            proc.stop("environment stopping")
        for old, _, _, _ in self.handover.values():
            old.stop("environment stopping")
        self.procs.clear()
        self.handover.clear()
