"""The data plane of `testenv/run mesh --data-plane`: meshed pods that really run.

KWOK schedules every pod and reports it Running without executing anything. For each pod
whose spec has a `linkerd-proxy` container (in `initContainers` as a native sidecar at
edge-26.8.3, or in `containers`), this kubelet runs the pod as a real one, as far as the
mesh can tell:

  * **its own network namespace** (`ip netns`) holding the pod's IP, the one KWOK wrote
    into `status.podIP` (from the cluster's `up --pod-cidr`, a fleet's `network.pods`), on
    an `eth0` veth whose other end is on the cluster's bridge. The bridges live in one
    "node" namespace per environment (IP forwarding on there, never on the host), so pods of
    all clusters reach each other the way a flat multi-cluster network routes them, and
    nothing on the host's own network changes;
  * **proxy-init**: the pod's `linkerd-init` container, the real `linkerd2-proxy-init`
    with the injector's arguments, in the pod's namespace (its iptables-nft redirect:
    inbound to 4143, outbound to 4140, the proxy's UID 2102 exempt);
  * **the proxy**: the `linkerd-proxy` container's entrypoint, the real
    `linkerd2-proxy-identity` (key and CSR in the end-entity folder, then it execs the
    real `linkerd2-proxy` of the release, found at the image's path `/usr/lib/linkerd/`),
    as UID/GID 2102, with exactly the environment of the container spec (literal values,
    the downward API, `$(VAR)` expansion as a kubelet does it) except the three
    control-plane addresses, below. Its volumes are projected as a kubelet does (an
    emptyDir for the end-entity folder, the `identity.l5d.io` token of the pod's
    ServiceAccount bound to the pod), each bind-mounted at the container's mountPath in a
    private mount namespace over a tmpfs `/run`;
  * **the workload containers**, their command and args run as host programs
    (`python3 -m http.server 8080`, `curl`: the image is not pulled) in the pod's network
    namespace, as root, so proxy-init's rules send their traffic through the proxy.
    With `restartPolicy: Never` (a Job's pod, `meshfleet verify`'s client) a workload that
    exits is not restarted: the pod's status is written as a kubelet writes it (phase,
    exit codes, the termination message from a file mounted at `terminationMessagePath`
    when that is under the private `/run`, or the log's tail with FallbackToLogsOnError).

**Control-plane addresses.** The injector points the proxy at
`linkerd-dst-headless.<ns>.svc.<domain>.:8086`, `linkerd-policy...:8090` and
`linkerd-identity-headless...:8080`, resolved by the cluster's DNS and reached over mTLS
through the controllers' own proxies. The controllers here run on the host (kubelet.py)
without proxies, so the three `*_SVC_ADDR` variables become `127.0.0.1:<port>`, where a
forwarder of this process listens inside the pod's namespace and carries each connection
to the controller's address (DIR/kubelet/*.addr). The proxy treats a loopback control
address as plain (as the identity pod's own proxy does with `localhost.:8080`), so
control-plane calls are not mTLS; everything between workloads is.

**Names.** `ip netns exec` binds /etc/netns/<pod>/hosts over /etc/hosts: that file maps
every Service of the pod's cluster (`name.ns.svc.<domain>`, `name.ns.svc`, `name.ns`) to
its ClusterIP, refreshed every second (the mirror Services appear there as the service
mirror makes them). It stands in for the cluster's DNS, for workloads only: the proxy
discovers by the connection's original destination, as in a cluster.

**External addresses.** The node namespace DNATs, as kube-proxy does, each LoadBalancer
ingress IP and external IP of a Service backed by a running meshed pod to that pod's IP
and target port, and each Link's `gatewayAddress` with its `gatewayPort` and probe port
to the target cluster's `linkerd-gateway` pod, through that Service's port or nodePort
(LoadBalancer, NodePort and ClusterIP gateways alike: the address the fleet says reaches
the gateway does reach it, as the fleet's network promises).

Per pod: DIR/pods/<cluster>_<namespace>_<pod>.json (`netns`, `ip`, the logs) and the logs
DIR/logs/<cluster>-<namespace>-<pod>-<container>.log. Everything is removed when the pod
goes or the environment stops (`down` also deletes the namespaces a killed process left).
"""

import ctypes
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

PROXY = "linkerd-proxy"
INIT = "linkerd-init"
PROXY_UID = 2102
IMAGE_BIN = "/usr/lib/linkerd"
# Where the pod's forwarders listen, in its own namespace, per control-plane service.
CONTROL = {
    "LINKERD2_PROXY_DESTINATION_SVC_ADDR": ("destination", 18086),
    "LINKERD2_PROXY_POLICY_SVC_ADDR": ("policy", 18090),
    "LINKERD2_PROXY_IDENTITY_SVC_ADDR": ("identity", 18080),
}
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def sh(*argv, check=True):
    r = subprocess.run(list(argv), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), r.returncode, (r.stderr or r.stdout).strip()[:500]))
    return r


def env_hash(env_dir):
    return hashlib.sha256(os.path.abspath(env_dir).encode()).hexdigest()[:5]


def node_netns(env_dir):
    return "mf%s-node" % env_hash(env_dir)


def missing(env_dir, releases):
    """Why the data plane cannot run here, or None."""
    if os.geteuid() != 0:
        return "the data plane needs root (network namespaces, veth pairs, iptables)"
    for tool, pkg in (("ip", "iproute2"), ("iptables-nft", "iptables"), ("setpriv", "util-linux"),
                      ("unshare", "util-linux")):
        if not shutil.which(tool):
            return "the data plane needs `%s` (Debian: apt-get install %s)" % (tool, pkg)
    if not any("proxy" in r for r in releases.values()):
        return ("no Linkerd release with its data plane (proxy, proxy-identity, proxy-init, policy-controller) "
                "in testenv/bin/linkerd: run `testenv/run build`")
    with open(os.path.join(env_dir, "env.json")) as fh:
        clusters = json.load(fh)["clusters"]
    nets = [(n, ipaddress.ip_network(c.get("pod_cidr") or "10.244.0.0/16")) for n, c in clusters.items()]
    for i, (a, na) in enumerate(nets):
        for b, nb in nets[i + 1:]:
            if na.overlaps(nb):
                return ("the clusters %s and %s have overlapping pod addresses (%s, %s): start them with "
                        "`testenv/run up --pod-cidr NAME=CIDR` (a fleet's network.pods)" % (a, b, na, nb))
    return None


def cleanup(env_dir):
    """Delete the network namespaces of an environment (for `down` after a kill)."""
    prefix = "mf%s-" % env_hash(env_dir)
    r = sh("ip", "netns", "list", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(prefix):
            # The containers run in sessions of their own: end them with their namespace.
            for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            sh("ip", "netns", "delete", name, check=False)
            shutil.rmtree(os.path.join("/etc/netns", name), ignore_errors=True)


def expand(value, env):
    """Kubernetes' $(VAR) expansion ($$ escapes; unknown references stay as written)."""
    def one(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", one, value)


def field_value(pod, path):
    md, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    simple = {"metadata.namespace": md.get("namespace"), "metadata.name": md.get("name"),
              "metadata.uid": md.get("uid"), "spec.nodeName": spec.get("nodeName"),
              "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
              "status.podIP": status.get("podIP"), "status.hostIP": status.get("hostIP"),
              "status.podIPs": status.get("podIP")}
    if path in simple:
        return simple[path] or ""
    m = re.match(r"metadata\.(labels|annotations)\['(.*)'\]$", path)
    if m:
        return (md.get(m.group(1)) or {}).get(m.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):
        items = md.get(path.split(".")[1]) or {}
        return "\n".join('%s="%s"' % (k, v) for k, v in sorted(items.items()))
    return ""


def container_env(pod, container):
    env = {}
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = expand(e["value"], env)
        else:
            ref = (e.get("valueFrom") or {}).get("fieldRef")
            if ref:
                env[e["name"]] = field_value(pod, ref["fieldPath"])
    return env


class Forwarder:
    """Listening sockets inside pods' network namespaces, each connection carried to a
    host address read when it arrives."""

    def __init__(self):
        self.listeners = {}

    def listen(self, netns, port, target):
        # Made inside the namespace, the socket binds and listens there from any thread.
        sock = socket_in(netns)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        self.listeners.setdefault(netns, []).append(sock)
        threading.Thread(target=self.accept, args=(sock, target), daemon=True).start()

    def accept(self, sock, target):
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self.carry, args=(conn, target), daemon=True).start()

    @staticmethod
    def carry(conn, target):
        try:
            addr = target()
            if not addr:
                conn.close()
                return
            host, port = addr.rsplit(":", 1)
            up = socket.create_connection((host, int(port)), timeout=5)
            up.settimeout(None)
        except OSError:
            conn.close()
            return

        def pump(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    b.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        t = threading.Thread(target=pump, args=(up, conn), daemon=True)
        t.start()
        pump(conn, up)
        t.join()
        conn.close()
        up.close()

    def close(self, netns):
        for s in self.listeners.pop(netns, []):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class Pod:
    def __init__(self, key, uid, netns, ip):
        self.key = key
        self.uid = uid
        self.netns = netns
        self.ip = ip
        self.procs = []  # (container, Popen, restart)
        self.domain = "cluster.local"
        self.cluster = None
        self.pod = None
        self.folder = None
        self.ended = {}  # workload container name -> exit code, when the pod never restarts it
        self.reported = False


class DataPlane:
    def __init__(self, env_dir, clusters, binaries, log):
        self.dir = env_dir
        self.clusters = clusters
        self.binaries = binaries
        self.log = log
        self.hash = env_hash(env_dir)
        self.node = node_netns(env_dir)
        self.pods = {}
        self.failed = {}  # key -> (uid, when) of a pod that failed to start
        self.counter = 0
        self.forwarder = Forwarder()
        self.bridges = {}  # cluster -> (bridge name, gateway ip, network)
        self.nat = None
        with open(os.path.join(env_dir, "env.json")) as fh:
            self.info = json.load(fh)["clusters"]
        os.makedirs(os.path.join(env_dir, "pods"), mode=0o700, exist_ok=True)
        self.bin = os.path.join(env_dir, "pods", "image-bin")

    # -- the node --------------------------------------------------------------

    def ensure_node(self):
        if self.bridges:
            return
        cleanup(self.dir)
        sh("ip", "netns", "add", self.node)
        sh("ip", "-n", self.node, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for i, c in enumerate(self.clusters):
            net = ipaddress.ip_network(self.info[c.name].get("pod_cidr") or "10.244.0.0/16")
            gw = net.broadcast_address - 1
            br = "br%d" % i
            sh("ip", "-n", self.node, "link", "add", br, "type", "bridge")
            sh("ip", "-n", self.node, "addr", "add", "%s/%d" % (gw, net.prefixlen), "dev", br)
            sh("ip", "-n", self.node, "link", "set", br, "up")
            self.bridges[c.name] = (br, str(gw), net)
        sh("ip", "netns", "exec", self.node, "iptables-nft", "-t", "nat", "-N", "MF-EXTERNAL")
        sh("ip", "netns", "exec", self.node, "iptables-nft", "-t", "nat", "-A", "PREROUTING", "-j", "MF-EXTERNAL")
        # The image's /usr/lib/linkerd: the proxy-identity entrypoint execs the proxy there.
        os.makedirs(self.bin, exist_ok=True)
        rel = [r for r in self.binaries.values() if "proxy" in r][-1]
        for name, key in (("linkerd2-proxy", "proxy"), ("linkerd2-proxy-identity", "proxy-identity"),
                          ("linkerd2-proxy-init", "proxy-init")):
            # Linked (or copied), not symlinked: the proxy runs as UID 2102, which may not
            # traverse the folders of testenv/bin; the bind mount hides this folder's parents.
            link = os.path.join(self.bin, name)
            if os.path.lexists(link):
                os.unlink(link)
            try:
                os.link(rel[key], link)
            except OSError:
                shutil.copy2(rel[key], link)
        os.makedirs(IMAGE_BIN, exist_ok=True)
        self.log("data plane: node namespace %s, bridges %s" % (
            self.node, ", ".join("%s=%s (%s)" % (c, b[0], b[2]) for c, b in self.bridges.items())))

    # -- reconcile -------------------------------------------------------------

    def reconcile(self):
        self.ensure_node()
        seen = set()
        services = {}
        for cluster in self.clusters:
            pods = cluster.list("v1", "pods")
            svcs = cluster.list("v1", "services")
            services[cluster.name] = (svcs, pods)
            seen.update((cluster.name, pod["metadata"]["namespace"], pod["metadata"]["name"])
                        for pod in pods if self.meshed(pod))
        gone = [k for k in self.pods if k not in seen]
        # As kube-proxy: a pod being deleted leaves the external addresses before it stops;
        # and it stops before new pods start (KWOK gives a deleted pod's IP to the next
        # one at once, where a CNI frees it only when the old sandbox is torn down).
        self.sync_external(services, leaving=set(gone))
        stopped = [self.stop(key, "pod gone", keep_netns=True) for key in gone]
        if stopped:
            # As a kubelet: the sandbox goes a while after its containers exited. Deleting
            # the namespace at once drops the FIN the proxy's exit just sent (still queued
            # on the veth), and a peer's connection to the pod then hangs until its
            # keep-alive times out.
            time.sleep(1.0)
        for p in stopped:
            if p:
                self.remove_netns(p)
        for cluster in self.clusters:
            for pod in services[cluster.name][1]:
                if not self.meshed(pod):
                    continue
                key = (cluster.name, pod["metadata"]["namespace"], pod["metadata"]["name"])
                running = self.pods.get(key)
                if running and running.uid != pod["metadata"]["uid"]:
                    self.stop(key, "pod replaced")
                    running = None
                if running:
                    self.restart_exited(running)
                    if not running.reported:
                        self.report_ready(running, pod)
                    continue
                failed = self.failed.get(key)
                if failed and failed[0] == pod["metadata"]["uid"] and time.time() - failed[1] < 10:
                    continue
                try:
                    self.start(cluster, pod, key)
                    self.failed.pop(key, None)
                except Exception as e:  # noqa: BLE001 - as a kubelet: report, retry later
                    self.failed[key] = (pod["metadata"]["uid"], time.time())
                    self.log("data plane: %s/%s/%s did not start: %s" % (key + (e,)))
                    self.stop(key, "start failed")
        for pod in self.pods.values():
            self.write_hosts(pod, services[pod.key[0]][0])

    @staticmethod
    def meshed(pod):
        spec = pod["spec"]
        if (pod["metadata"].get("labels") or {}).get("linkerd.io/control-plane-component"):
            return False  # the controllers run on the host (kubelet.py)
        if pod["metadata"].get("deletionTimestamp") or not (pod.get("status") or {}).get("podIP"):
            return False
        if (pod.get("status") or {}).get("phase") != "Running":
            return False
        if any("/linkerd/controller:" in c.get("image", "") for c in spec["containers"]):
            return False  # the service mirrors: kubelet.py runs them on the host
        return any(c["name"] == PROXY for c in (spec.get("initContainers") or []) + spec["containers"])

    # -- one pod ---------------------------------------------------------------

    def start(self, cluster, pod, key):
        self.counter += 1
        n = self.counter
        netns = "mf%s-%d" % (self.hash, n)
        ip = pod["status"]["podIP"]
        br, gw, net = self.bridges[cluster.name]
        if ipaddress.ip_address(ip) not in net:
            raise RuntimeError("pod IP %s is outside the cluster's pod range %s" % (ip, net))
        p = Pod(key, pod["metadata"]["uid"], netns, ip)
        p.cluster, p.pod = cluster, pod
        self.pods[key] = p
        host_end, pod_end = "mf%s%dh" % (self.hash, n), "mf%s%dp" % (self.hash, n)
        os.makedirs("/etc/netns/%s" % netns, exist_ok=True)
        with open("/etc/netns/%s/hosts" % netns, "w") as fh:
            fh.write("127.0.0.1 localhost\n")
        with open("/etc/netns/%s/resolv.conf" % netns, "w") as fh:
            fh.write("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
        sh("ip", "netns", "add", netns)
        sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", pod_end)
        sh("ip", "link", "set", host_end, "netns", self.node)
        sh("ip", "-n", self.node, "link", "set", host_end, "master", br, "up")
        sh("ip", "link", "set", pod_end, "netns", netns)
        sh("ip", "-n", netns, "link", "set", pod_end, "name", "eth0")
        sh("ip", "-n", netns, "addr", "add", "%s/%d" % (ip, net.prefixlen), "dev", "eth0")
        sh("ip", "-n", netns, "link", "set", "eth0", "up")
        sh("ip", "-n", netns, "link", "set", "lo", "up")
        sh("ip", "-n", netns, "route", "add", "default", "via", gw)
        spec = pod["spec"]
        folder = os.path.join(self.dir, "pods", "%s_%s_%s" % key)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder, mode=0o755)
        p.folder = folder
        ns = key[1]
        addr_file = {sub: os.path.join(self.dir, "kubelet", "%s-%s-%s.addr" % (cluster.name, self.linkerd_ns(cluster), d))
                     for sub, d in (("destination", "linkerd-destination-destination"),
                                    ("policy", "linkerd-destination-policy"),
                                    ("identity", "linkerd-identity-identity"))}
        for _, (sub, port) in CONTROL.items():
            self.forwarder.listen(netns, port, lambda f=addr_file[sub]: read_addr(f))
        logs = {}
        init = [c for c in spec.get("initContainers") or []]
        for c in init:
            if c["name"] == INIT:
                log_path = self.log_path(key, c["name"])
                logs[c["name"]] = log_path
                argv = [self.binaries_of(c)["proxy-init"]] + list(c.get("args") or [])
                with open(log_path, "ab") as logf:
                    r = subprocess.run(["ip", "netns", "exec", netns] + argv, stdout=logf, stderr=subprocess.STDOUT)
                if r.returncode != 0:
                    raise RuntimeError("proxy-init exited %d (log %s)" % (r.returncode, log_path))
        for c in init + spec["containers"]:
            if c["name"] == INIT:
                continue
            if c in init and c.get("restartPolicy") != "Always":
                continue  # other init containers: none in the pods this runs
            if c["name"] == PROXY:
                logs[c["name"]] = self.start_proxy(cluster, pod, p, c, folder)
            else:
                logs[c["name"]] = self.start_workload(pod, p, c, folder)
        with open(os.path.join(self.dir, "pods", "%s_%s_%s.json" % key), "w") as fh:
            json.dump({"cluster": key[0], "namespace": ns, "pod": key[2], "netns": netns, "ip": ip,
                       "logs": logs, "bridge_gateway": gw, "node_netns": self.node}, fh, indent=1)
        self.log("data plane: %s/%s/%s runs in %s at %s (%s)" % (key + (netns, ip, ", ".join(logs))))

    def linkerd_ns(self, cluster):
        for cm in cluster.list("v1", "configmaps"):
            if cm["metadata"]["name"] == "linkerd-config":
                return cm["metadata"]["namespace"]
        return "linkerd"

    def binaries_of(self, container):
        tag = container.get("image", "").rsplit(":", 1)[-1]
        rel = self.binaries.get(tag) or {}
        if "proxy" not in rel:
            raise RuntimeError("no data plane for image %s (have %s)" % (
                container.get("image"), ", ".join(r for r, b in self.binaries.items() if "proxy" in b)))
        return rel

    def log_path(self, key, container):
        return os.path.join(self.dir, "logs", "%s-%s-%s-%s.log" % (key + (container,)))

    def volumes(self, cluster, pod, container, folder):
        """(host folder, mountPath) per volumeMount of the container, projected."""
        by_name = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        out = []
        for m in container.get("volumeMounts") or []:
            v = by_name.get(m["name"])
            if v is None or not m["mountPath"].startswith(("/var/run/", "/run/")):
                continue  # only under the private tmpfs /run: nothing is made on the host
            host = os.path.join(folder, "volumes", m["name"])
            os.makedirs(host, exist_ok=True)
            if "emptyDir" in v:
                os.chown(host, PROXY_UID, PROXY_UID)
            elif "projected" in v:
                for src in v["projected"].get("sources") or []:
                    sat = src.get("serviceAccountToken")
                    if sat:
                        token = cluster.service_account_token(
                            pod["metadata"]["namespace"], pod["spec"].get("serviceAccountName") or "default",
                            seconds=int(sat.get("expirationSeconds") or 3600), audience=sat.get("audience"),
                            pod=(pod["metadata"]["name"], pod["metadata"]["uid"]))
                        write_file(os.path.join(host, sat["path"]), token)
                    cm = src.get("configMap")
                    if cm and cm.get("name") == "kube-root-ca.crt":
                        write_file(os.path.join(host, "ca.crt"), cluster.ca_pem())
                    if src.get("downwardAPI"):
                        for item in src["downwardAPI"].get("items") or []:
                            write_file(os.path.join(host, item["path"]),
                                       field_value(pod, item["fieldRef"]["fieldPath"]))
            out.append((host, m["mountPath"]))
        return out

    def run_in_pod(self, p, argv, env, mounts, log_path, user=None, cwd=None):
        """A container: in the pod's network namespace, a private mount namespace with a
        tmpfs /run, the volumes bind-mounted there and the image's /usr/lib/linkerd."""
        steps = ['mount -t tmpfs tmpfs /run', 'mount --bind "$MF_BIN" %s' % IMAGE_BIN]
        extra = {"MF_BIN": self.bin}
        for i, (host, path) in enumerate(mounts):
            extra["MF_VOL%d" % i] = host
            if os.path.isfile(host):
                steps.append('mkdir -p "%s" && touch "%s"' % (os.path.dirname(path), path))
            else:
                steps.append('mkdir -p "%s"' % path)
            steps.append('mount --bind "$MF_VOL%d" "%s"' % (i, path))
        steps.append("unset %s" % " ".join(sorted(extra)))
        as_user = "setpriv --reuid=%d --regid=%d --clear-groups " % (user, user) if user is not None else ""
        script = " && ".join(steps) + ' && exec %s"$@"' % as_user
        full = ["ip", "netns", "exec", p.netns, "unshare", "-m", "--propagation", "private",
                "sh", "-c", script, "container"] + argv
        penv = dict(env)
        penv.update(extra)
        penv.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        logf = open(log_path, "ab")
        logf.write(("==== %s data plane: start %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), " ".join(argv))).encode())
        logf.flush()
        proc = subprocess.Popen(full, env=penv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                cwd=cwd, start_new_session=True)
        logf.close()
        return proc

    def start_proxy(self, cluster, pod, p, c, folder):
        self.binaries_of(c)
        env = container_env(pod, c)
        m = re.search(r"\.svc\.(.+?)\.?:\d+$", env.get("LINKERD2_PROXY_DESTINATION_SVC_ADDR", ""))
        p.domain = m.group(1) if m else "cluster.local"
        for var, (_, port) in CONTROL.items():
            if var in env:
                env[var] = "127.0.0.1:%d" % port
        argv = list(c.get("command") or []) + list(c.get("args") or [])
        argv = [expand(a, env) for a in argv] or ["%s/linkerd2-proxy-identity" % IMAGE_BIN]
        log_path = self.log_path(p.key, c["name"])
        proc = self.run_in_pod(p, argv, env, self.volumes(cluster, pod, c, folder), log_path, user=PROXY_UID,
                               cwd=folder)
        p.procs.append((c, proc, lambda: self.run_in_pod(
            p, argv, env, self.volumes(cluster, pod, c, folder), log_path, user=PROXY_UID, cwd=folder)))
        return log_path

    def start_workload(self, pod, p, c, folder):
        env = container_env(pod, c)
        argv = [expand(a, env) for a in list(c.get("command") or []) + list(c.get("args") or [])]
        if not argv:
            argv = ["sleep", "infinity"]  # an image's own entrypoint (`pause`): nothing to run
        log_path = self.log_path(p.key, c["name"])
        mounts = []
        path = c.get("terminationMessagePath") or "/dev/termination-log"
        if path.startswith("/run/"):
            # As a kubelet: the termination message file, mounted at terminationMessagePath.
            # Only under the container's private /run: elsewhere the mount point would be
            # made on the host's own file system (then the message comes from the log).
            host = os.path.join(folder, "%s.termination-log" % c["name"])
            write_file(host, "")
            mounts.append((host, path))
        proc = self.run_in_pod(p, argv, env, mounts, log_path, cwd=folder)
        p.procs.append((c, proc, lambda: self.run_in_pod(p, argv, env, mounts, log_path, cwd=folder)))
        return log_path

    def restart_exited(self, p):
        policy = p.pod["spec"].get("restartPolicy") or "Always"
        for i, (c, proc, again) in enumerate(p.procs):
            if proc.poll() is None or c["name"] in p.ended:
                continue
            workload = c["name"] != PROXY
            if workload and (policy == "Never" or (policy == "OnFailure" and proc.returncode == 0)):
                p.ended[c["name"]] = proc.returncode
                self.log("data plane: %s/%s/%s: container %s exited %s (restartPolicy %s)" % (
                    p.key + (c["name"], proc.returncode, policy)))
                continue
            self.log("data plane: %s/%s/%s: container %s exited %s, restarting" % (p.key + (c["name"], proc.returncode)))
            p.procs[i] = (c, again(), again)
        workloads = [c for c in p.pod["spec"]["containers"]]
        if p.ended and not p.reported and all(c["name"] in p.ended for c in workloads):
            self.finish_status(p, workloads)

    def container_ready(self, p, c, proc):
        """A kubelet's readiness of one running container: its process runs and its
        readinessProbe (httpGet, from inside the pod's network namespace) answers 2xx or
        3xx; without a probe, running is ready."""
        if proc.poll() is not None:
            return False
        get = (c.get("readinessProbe") or {}).get("httpGet")
        if not get:
            return True
        port = get.get("port")
        if not isinstance(port, int):
            port = next((cp["containerPort"] for cp in c.get("ports") or [] if cp.get("name") == port), None)
            if port is None:
                return False
        return http_get_in(p.netns, int(port), get.get("path") or "/")

    def report_ready(self, p, pod):
        """Ready and ContainersReady in the pod's status as a kubelet reports them (KWOK
        left them false for the pods this runs, see KWOK_DATA_PLANE_RUNS in testenv/run):
        true once every container is ready, false again when one is not. Probed every
        round (a second) rather than every `periodSeconds`."""
        ready = {c["name"]: self.container_ready(p, c, proc) for c, proc, _ in p.procs}
        status = pod.get("status") or {}
        want = "True" if ready and all(ready.values()) else "False"
        conditions = status.get("conditions") or []
        have = next((c.get("status") for c in conditions if c.get("type") == "Ready"), None)
        if have == want:
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        kept = [c for c in conditions if c.get("type") not in ("Ready", "ContainersReady")]
        for kind in ("ContainersReady", "Ready"):
            kept.append({"type": kind, "status": want, "lastTransitionTime": now})
        patch = {"conditions": kept}
        for key in ("containerStatuses", "initContainerStatuses"):
            statuses = []
            for cs in status.get(key) or []:
                cs = dict(cs)
                if cs.get("name") in ready:
                    cs["ready"] = ready[cs["name"]]
                statuses.append(cs)
            if statuses:
                patch[key] = statuses
        md = pod["metadata"]
        p.cluster.merge_patch("v1", "pods", md["namespace"], md["name"], {"status": patch}, sub="status")
        pod.setdefault("status", {})["conditions"] = kept
        self.log("data plane: %s/%s/%s: Ready %s (%s)" % (p.key + (want, ", ".join(
            "%s %s" % (n, "ready" if r else "not ready") for n, r in sorted(ready.items())))))

    def finish_status(self, p, workloads):
        """The pod's status as a kubelet writes it when its containers ended and none is
        restarted: phase Succeeded or Failed, each container terminated with its exit code
        and termination message (the file at terminationMessagePath, or with
        FallbackToLogsOnError after a failure, the log's last 80 lines). The real
        job-controller then completes or fails the Job; the pod, no longer Running, is
        stopped at the next round (its proxy too)."""
        ended = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        statuses = []
        for c in workloads:
            code = p.ended[c["name"]]
            message = ""
            host = os.path.join(p.folder, "%s.termination-log" % c["name"])
            if os.path.exists(host):
                with open(host, errors="replace") as fh:
                    message = fh.read()[:4096]
            if not message and code != 0 and c.get("terminationMessagePolicy") == "FallbackToLogsOnError":
                with open(self.log_path(p.key, c["name"]), errors="replace") as fh:
                    lines = [l for l in fh.read().splitlines() if not l.startswith("==== ")]
                message = "\n".join(lines[-80:])[-2048:]
            terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "finishedAt": ended}
            if message:
                terminated["message"] = message
            statuses.append({"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False,
                             "started": False, "restartCount": 0, "state": {"terminated": terminated}})
        failed = any(code != 0 for code in p.ended.values())
        status = {"phase": "Failed" if failed else "Succeeded", "containerStatuses": statuses,
                  "conditions": [
                      {"type": "PodScheduled", "status": "True", "lastTransitionTime": ended},
                      {"type": "Initialized", "status": "True", "lastTransitionTime": ended},
                      {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": ended},
                      {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": ended}]}
        md = p.pod["metadata"]
        p.cluster.merge_patch("v1", "pods", md["namespace"], md["name"], {"status": status}, sub="status")
        p.reported = True
        self.log("data plane: %s/%s/%s: %s" % (p.key + (status["phase"],)))

    def stop(self, key, why, keep_netns=False):
        p = self.pods.pop(key, None)
        if not p:
            return None
        # As a kubelet: the workload containers first, then a native sidecar (the proxy as
        # an init container with restartPolicy Always) once they have exited.
        native = {c["name"] for c in (p.pod["spec"].get("initContainers") or []) if c.get("restartPolicy") == "Always"}
        waves = [[x for x in p.procs if x[0]["name"] not in native], [x for x in p.procs if x[0]["name"] in native]]
        for wave in waves:
            for _, proc, _ in wave:
                if proc.poll() is None:
                    try:
                        os.killpg(proc.pid, signal.SIGTERM)
                    except OSError:
                        pass
            deadline = time.time() + 5
            for _, proc, _ in wave:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except OSError:
                        pass
                    proc.wait()
        self.forwarder.close(p.netns)
        try:
            os.unlink(os.path.join(self.dir, "pods", "%s_%s_%s.json" % key))
        except OSError:
            pass
        if not keep_netns:
            self.remove_netns(p)
        self.log("data plane: %s/%s/%s stopped (%s)" % (key + (why,)))
        return p

    @staticmethod
    def remove_netns(p):
        sh("ip", "netns", "delete", p.netns, check=False)
        shutil.rmtree("/etc/netns/%s" % p.netns, ignore_errors=True)

    def stop_all(self):
        for p in self.pods.values():  # all at once, then each waited for (`down` waits 10 s)
            for _, proc, _ in p.procs:
                if proc.poll() is None:
                    try:
                        os.killpg(proc.pid, signal.SIGTERM)
                    except OSError:
                        pass
        for key in list(self.pods):
            self.stop(key, "environment stopping")
        sh("ip", "netns", "delete", self.node, check=False)

    # -- names and external addresses -----------------------------------------

    def write_hosts(self, p, services):
        domain = p.domain
        lines = ["127.0.0.1 localhost"]
        for s in services:
            ip = s["spec"].get("clusterIP")
            if not ip or ip == "None":
                continue
            name, ns = s["metadata"]["name"], s["metadata"]["namespace"]
            lines.append("%s %s.%s.svc.%s %s.%s.svc %s.%s" % (ip, name, ns, domain, name, ns, name, ns))
        text = "\n".join(lines) + "\n"
        path = "/etc/netns/%s/hosts" % p.netns
        try:
            with open(path) as fh:
                if fh.read() == text:
                    return
            # In place: `ip netns exec` bind-mounted this very file.
            with open(path, "r+") as fh:
                fh.seek(0)
                fh.write(text)
                fh.truncate()
        except OSError:
            pass

    def sync_external(self, services, leaving=()):
        """DNAT in the node namespace, kube-proxy style: each LoadBalancer ingress IP and
        external IP of a Service backed by a running meshed pod, and each Link's gateway
        address and ports (gateway and probe; a NodePort Service's nodePort or a Service
        port) to that Service's pod and target port on the Link's target cluster."""
        backends = {}  # (cluster, namespace, service) -> (pod ip, {port or nodePort: targetPort})
        rules = []
        for cname, (svcs, pods) in services.items():
            running = {p.ip for k, p in self.pods.items() if k[0] == cname and k not in leaving}
            for s in svcs:
                sel = s["spec"].get("selector") or {}
                # As kube-proxy: only ready endpoints get traffic.
                match = sorted(pod["status"]["podIP"] for pod in pods
                               if (pod.get("status") or {}).get("podIP") in running and sel and is_ready(pod)
                               and pod["metadata"]["namespace"] == s["metadata"]["namespace"]
                               and all((pod["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items()))
                if not match:
                    continue
                ports = {}
                for port in s["spec"].get("ports") or []:
                    target = port.get("targetPort", port["port"])
                    if isinstance(target, int):
                        ports[port["port"]] = target
                        if port.get("nodePort"):
                            ports[port["nodePort"]] = target
                backends[(cname, s["metadata"]["namespace"], s["metadata"]["name"])] = (match[0], ports)
                addrs = [i.get("ip") for i in ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
                         if i.get("ip")] + list(s["spec"].get("externalIPs") or [])
                for port in s["spec"].get("ports") or []:
                    if port["port"] in ports:
                        rules += [(a, port["port"], match[0], ports[port["port"]]) for a in addrs]
        for cluster in self.clusters:
            try:
                links = cluster.list("multicluster.linkerd.io/v1alpha3", "links")
            except Exception:  # noqa: BLE001 - no Link CRD (yet) on this cluster
                continue
            for link in links:
                spec = link.get("spec") or {}
                target = self.link_target(cluster, link)
                gw = [v for k, v in backends.items() if k[0] == target and k[2] == "linkerd-gateway"]
                if not gw:
                    continue
                ip, ports = gw[0]
                wanted = [spec.get("gatewayPort"), (spec.get("probeSpec") or {}).get("port")]
                for addr in (spec.get("gatewayAddress") or "").split(","):
                    for port in wanted:
                        if addr.strip() and port and int(port) in ports:
                            rules.append((addr.strip(), int(port), ip, ports[int(port)]))
        rules = sorted(set(rules))
        if rules == self.nat:
            return
        ipt = ["ip", "netns", "exec", self.node, "iptables-nft", "-t", "nat"]
        sh(*ipt, "-F", "MF-EXTERNAL")
        for addr, port, ip, target in rules:
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                continue  # a DNS name: the service mirror resolves it, not the network
            sh(*ipt, "-A", "MF-EXTERNAL", "-d", addr, "-p", "tcp", "--dport", str(port),
               "-j", "DNAT", "--to-destination", "%s:%d" % (ip, target))
        self.nat = rules
        self.log("data plane: external addresses %s" % (
            ", ".join("%s:%d->%s:%d" % r for r in rules) or "none"))

    def link_target(self, cluster, link):
        """The environment's cluster a Link points at: the one whose API server its credentials
        Secret's kubeconfig names (by port: every test API server is on 127.0.0.1, and fleets
        name them `https://kubernetes.default.svc:<port>`). The Link's name and
        `targetClusterName` are the fleet's link name, which need not be the cluster's."""
        import base64
        import yaml
        name = (link.get("spec") or {}).get("clusterCredentialsSecret")
        if not name:
            return None
        secret = cluster.get("v1", "secrets", link["metadata"]["namespace"], name)
        try:
            text = base64.b64decode(((secret or {}).get("data") or {})["kubeconfig"]).decode()
            server = yaml.safe_load(text)["clusters"][0]["cluster"]["server"]
        except (KeyError, IndexError, TypeError, ValueError, yaml.YAMLError):
            return None
        port = server.rstrip("/").rsplit(":", 1)[-1]
        for cname, info in self.info.items():
            if info["server"].rstrip("/").rsplit(":", 1)[-1] == port:
                return cname
        return None


def is_ready(pod):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def socket_in(netns):
    """A TCP socket made inside a network namespace (a socket stays in the namespace it
    was made in), from a thread that enters it."""
    box = {}

    def in_ns():
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            fd = os.open("/run/netns/%s" % netns, os.O_RDONLY)
        except OSError as e:
            os.close(own)
            box["error"] = e
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                box["error"] = OSError(ctypes.get_errno(), "setns")
                return
            try:
                box["sock"] = socket.socket()
            finally:
                _libc.setns(own, CLONE_NEWNET)
        finally:
            os.close(fd)
            os.close(own)
    t = threading.Thread(target=in_ns)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["sock"]


def http_get_in(netns, port, path, timeout=1.0):
    """A kubelet's httpGet probe, from inside the pod: 2xx or 3xx within `timeout`."""
    try:
        s = socket_in(netns)
    except OSError:
        return False
    try:
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: kube-probe\r\nConnection: close\r\n\r\n"
                   % (path, port)).encode())
        head = s.recv(64).decode("latin-1")
        parts = head.split(" ", 2)
        return len(parts) > 1 and parts[1][:1] in ("2", "3")
    except (OSError, ValueError):
        return False
    finally:
        s.close()


def read_addr(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return ""


def write_file(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o644)
