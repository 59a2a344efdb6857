"""Runs the pods of meshfleet's Jobs (`installMethod: jobs`) for real, as a kubelet would.

KWOK gives every pod a Running status and, through its pod-complete stage, completes
every Job's pod without running anything. The pods of the Jobs meshfleet renders
(label `app.kubernetes.io/managed-by: meshfleet` on the pod template, owned by a Job) are
left out of that stage (see `kwok_stages` in testenv/run), and this module runs them
instead, exactly as crates/meshfleet/tests/it/jobs_cli/pod.rs runs a Job's script:

  * `sh -c SCRIPT` (the container's `command`) with only the real `linkerd` CLI and
    the environment's `kubectl` on `PATH`: what the Job's image holds;
  * the container's literal environment, with `/tmp` (the Job's scratch `emptyDir`) and
    paths under it moved to a scratch folder, also `TMPDIR`;
  * its ConfigMap and Secret volumes written as files under a folder that replaces the
    mount root (`MESHFLEET_MOUNT`); as a kubelet, the pod is started only once every
    volume's object exists (the control-plane Job waits for the issuer Secret);
  * a kubeconfig with a TokenRequest token of the pod's ServiceAccount, so the Job's
    rendered RBAC is exactly what the script may do.

Which `linkerd`: the script's own guard names the release the image must have
(`want=edge-25.4.4`); the pod gets that release's CLI, as an image built for the
fleet's version has it (`gitops.jobs.image` must, see docs/install-methods-and-upgrades.md).
A script without the guard gets the release of the image's tag; when that release is
not in the environment the pod fails with exit code 127 (the image has no such CLI).

A pod is started once KWOK reports it Running (scheduled, "container started"); when
the script exits the pod's status is written as a kubelet writes it (phase Succeeded or
Failed, the container terminated with the exit code), so the real job-controller
completes, retries or fails the Job. A pod that is deleted (a pruned Job, an active
deadline) has its script killed. Each run logs to DIR/logs/<cluster>-<namespace>-<pod>.log
(the script's output and a line at start and end) and appends one JSON line to
DIR/kubelet/job-runs.jsonl: cluster, namespace, job, pod, pod uid, release, exit code,
seconds. The scratch and mount folders are removed at the end of the run (the pod's
emptyDir is memory, gone with the pod).
"""

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time

from kube import ApiError, token_kubeconfig

# The label meshfleet puts on every object it renders, the Jobs' pod templates included.
MANAGED_BY = ("app.kubernetes.io/managed-by", "meshfleet")
SELECTOR = "%s=%s" % MANAGED_BY

# Where the Jobs mount their files (crates/meshfleet-render/src/jobs/script.rs MOUNT).
MOUNT = "/var/run/meshfleet"

WANT_RE = re.compile(r"^want=(\S+)$", re.M)


def job_of(pod):
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "Job":
            return ref.get("name")
    return None


def meshed(pod):
    """A pod with Linkerd's proxy (`meshfleet verify`'s client): dataplane.py runs it."""
    spec = pod["spec"]
    return any(c.get("name") == "linkerd-proxy" for c in (spec.get("initContainers") or []) + spec["containers"])


def release_of_image(image):
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[-1] if ":" in last else ""


def script_of(container):
    cmd = list(container.get("command") or []) + list(container.get("args") or [])
    if len(cmd) >= 3 and cmd[0] in ("/bin/sh", "sh") and cmd[1] == "-c":
        return cmd[2]
    return None


def map_scratch(value, scratch):
    """`/tmp` and paths under it moved to `scratch` (the pod's scratch emptyDir)."""
    if value == "/tmp" or value.startswith("/tmp/"):
        return scratch + value[len("/tmp"):]
    return value


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Run:
    def __init__(self, key, pod, popen, folder, log_path, release):
        self.key = key  # (cluster, namespace, pod name, uid)
        self.pod = pod
        self.popen = popen
        self.folder = folder
        self.log_path = log_path
        self.release = release
        self.started = time.time()
        self.started_at = now()
        self.took = None  # seconds, once the script exited


class JobKubelet:
    """Runs the script of every Running pod of a meshfleet Job on every cluster."""

    def __init__(self, env_dir, clusters, releases, kubectl, log):
        self.dir = env_dir
        self.clusters = clusters
        self.releases = releases  # release -> {"cli": path, ...}
        self.kubectl = kubectl
        self.log = log
        self.runs = {}  # uid -> Run
        self.done = set()  # uids whose status was written
        self.waiting = {}  # uid -> what the pod waits for (logged once)
        self.work = os.path.join(env_dir, "kubelet", "jobs")
        os.makedirs(self.work, mode=0o700, exist_ok=True)

    def reconcile(self):
        seen = set()
        unreachable = set()
        for cluster in self.clusters:
            try:
                pods = cluster.list("v1", "pods", label_selector=SELECTOR)
            except (ApiError, OSError) as e:
                # A stopped cluster (a test may stop one): keep its runs, try again later.
                unreachable.add(cluster.name)
                self.wait_for(cluster.name, "%s: cannot list pods: %s" % (cluster.name, e))
                continue
            self.waiting.pop(cluster.name, None)
            for pod in pods:
                if not job_of(pod) or meshed(pod):
                    continue
                uid = pod["metadata"]["uid"]
                seen.add(uid)
                self.pod(cluster, pod)
        seen |= {u for u, r in self.runs.items() if r.key[0].name in unreachable}
        for uid in [u for u in self.runs if u not in seen]:
            self.kill(self.runs.pop(uid), "pod deleted")
        self.done &= seen
        names = {c.name for c in self.clusters}
        for uid in [u for u in self.waiting if u not in seen and u not in names]:
            del self.waiting[uid]
        self.collect()

    def pod(self, cluster, pod):
        md = pod["metadata"]
        uid = md["uid"]
        if md.get("deletionTimestamp"):
            run = self.runs.pop(uid, None)
            if run:
                self.kill(run, "pod deleted")
            return
        if uid in self.runs or uid in self.done:
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            self.done.add(uid)
            return
        # KWOK's pod-ready stage marks a scheduled pod Running: its container "started".
        if phase != "Running":
            return
        self.start(cluster, pod)

    def wait_for(self, uid, what):
        if self.waiting.get(uid) != what:
            self.waiting[uid] = what
            self.log("jobs: %s" % what)

    def volumes(self, cluster, pod, container, mount, scratch):
        """Write the pod's ConfigMap and Secret volumes under `mount`; the name of the
        first missing object (the pod waits for it, as on a kubelet), else None."""
        ns = pod["metadata"]["namespace"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        for vm in container.get("volumeMounts") or []:
            volume = volumes.get(vm["name"]) or {}
            path = vm["mountPath"]
            if "emptyDir" in volume:
                if map_scratch(path, scratch) != scratch:
                    raise ValueError("scratch volume mounted at %s, not /tmp" % path)
                continue
            if "projected" in volume or vm["name"].startswith("kube-api-access"):
                continue  # the token volume: the script authenticates through KUBECONFIG
            if not path.startswith(MOUNT + "/"):
                raise ValueError("volume %s mounted at %s, outside %s" % (vm["name"], path, MOUNT))
            if "configMap" in volume:
                kind, name = "configmaps", volume["configMap"]["name"]
            elif "secret" in volume:
                kind, name = "secrets", volume["secret"]["secretName"]
            else:
                raise ValueError("volume %s is neither a ConfigMap, a Secret nor an emptyDir" % vm["name"])
            obj = cluster.get("v1", kind, ns, name)
            if obj is None:
                return "%s %s/%s" % (kind[:-1], ns, name)
            folder = os.path.join(mount, path[len(MOUNT) + 1:])
            os.makedirs(folder, mode=0o700, exist_ok=True)
            for key, value in (obj.get("data") or {}).items():
                data = base64.b64decode(value) if kind == "secrets" else value.encode()
                fd = os.open(os.path.join(folder, key), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
        return None

    def start(self, cluster, pod):
        md = pod["metadata"]
        ns, name, uid = md["namespace"], md["name"], md["uid"]
        what = "%s: %s/%s (Job %s)" % (cluster.name, ns, name, job_of(pod))
        containers = pod["spec"].get("containers") or []
        if len(containers) != 1 or script_of(containers[0]) is None:
            self.finish_status(cluster, pod, 128, "the pod is not a meshfleet Job's `sh -c SCRIPT`", None)
            return
        container = containers[0]
        script = script_of(container)
        want = WANT_RE.search(script)
        release = want.group(1) if want else release_of_image(container.get("image", ""))
        folder = os.path.join(self.work, "%s-%s-%s" % (cluster.name, ns, name))
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder, mode=0o700)
        bin_dir, mount, scratch = (os.path.join(folder, f) for f in ("bin", "mount", "tmp"))
        for f in (bin_dir, mount, scratch):
            os.makedirs(f, mode=0o700)
        try:
            missing = self.volumes(cluster, pod, container, mount, scratch)
        except ValueError as e:
            shutil.rmtree(folder, ignore_errors=True)
            self.finish_status(cluster, pod, 128, str(e), None)
            return
        if missing:
            shutil.rmtree(folder, ignore_errors=True)
            self.wait_for(uid, "%s waits for its volume's %s" % (what, missing))
            return
        account = pod["spec"].get("serviceAccountName") or "default"
        try:
            token = cluster.service_account_token(ns, account, seconds=3600)
        except ApiError as e:
            shutil.rmtree(folder, ignore_errors=True)
            self.wait_for(uid, "%s: no token for ServiceAccount %s/%s yet: %s" % (what, ns, account, e))
            return
        self.waiting.pop(uid, None)
        kcfg = os.path.join(folder, "kubeconfig")
        fd = os.open(kcfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token_kubeconfig(cluster, token))
        cli = (self.releases.get(release) or {}).get("cli")
        if cli:
            os.symlink(cli, os.path.join(bin_dir, "linkerd"))
        os.symlink(self.kubectl, os.path.join(bin_dir, "kubectl"))
        env = {}
        for e in container.get("env") or []:
            if "value" in e:
                env[e["name"]] = map_scratch(e["value"], scratch)
        env.update({"PATH": bin_dir, "TMPDIR": scratch, "MESHFLEET_MOUNT": mount, "KUBECONFIG": kcfg})
        log_path = os.path.join(self.dir, "logs", "%s-%s-%s.log" % (cluster.name, ns, name))
        logf = os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        logf.write(("==== %s jobs kubelet: start %s as %s/%s with linkerd %s\n" % (
            now(), what, ns, account, release if cli else "(none: %s not in the environment)" % release)).encode())
        logf.flush()
        popen = subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.DEVNULL, stdout=logf,
                                 stderr=subprocess.STDOUT, env=env, cwd=scratch, close_fds=True,
                                 start_new_session=True)
        logf.close()
        self.runs[uid] = Run((cluster, ns, name, uid), pod, popen, folder, log_path, release)
        self.log("jobs: started %s with linkerd %s" % (what, release))

    def collect(self):
        for uid, run in list(self.runs.items()):
            code = run.popen.poll()
            if code is None:
                continue
            cluster, ns, name, _ = run.key
            if run.took is None:
                run.took = time.time() - run.started
                with open(run.log_path, "ab") as fh:
                    fh.write(("==== %s jobs kubelet: exited %d after %.1fs\n" % (now(), code, run.took)).encode())
                shutil.rmtree(run.folder, ignore_errors=True)
                record = {"cluster": cluster.name, "namespace": ns, "job": job_of(run.pod), "pod": name,
                          "uid": uid, "release": run.release, "exitCode": code,
                          "startedAt": run.started_at, "seconds": round(run.took, 1)}
                with open(os.path.join(self.dir, "kubelet", "job-runs.jsonl"), "a") as fh:
                    fh.write(json.dumps(record) + "\n")
                self.log("jobs: %s: %s/%s exited %d after %.1fs" % (cluster.name, ns, name, code, run.took))
            try:
                self.finish_status(cluster, run.pod, code, None, run)
            except (ApiError, OSError) as e:
                # The API server is away (a stopped cluster): write the status later.
                self.wait_for(uid, "%s: status of %s/%s not written yet: %s" % (cluster.name, ns, name, e))
                continue
            del self.runs[uid]

    def finish_status(self, cluster, pod, code, message, run):
        """The pod's status as a kubelet writes it when its only container terminated."""
        md = pod["metadata"]
        container = (pod["spec"].get("containers") or [{}])[0]
        ended = now()
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                      "startedAt": run.started_at if run else ended, "finishedAt": ended}
        if message:
            terminated["message"] = message
            self.log("jobs: %s: %s/%s failed: %s" % (cluster.name, md["namespace"], md["name"], message))
        status = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": ended},
                {"type": "Initialized", "status": "True", "lastTransitionTime": ended},
                {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": ended},
                {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": ended},
            ],
            "containerStatuses": [{
                "name": container.get("name", ""), "image": container.get("image", ""), "imageID": "",
                "ready": False, "started": False, "restartCount": 0,
                "state": {"terminated": terminated}}],
        }
        try:
            cluster.merge_patch("v1", "pods", md["namespace"], md["name"], {"status": status}, sub="status")
        except ApiError as e:
            if e.status != 404:
                raise
        self.done.add(md["uid"])

    def kill(self, run, why):
        if run.popen.poll() is None:
            try:
                os.killpg(run.popen.pid, signal.SIGTERM)
                run.popen.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(run.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                run.popen.wait()
        shutil.rmtree(run.folder, ignore_errors=True)
        with open(run.log_path, "ab") as fh:
            fh.write(("==== %s jobs kubelet: killed (%s)\n" % (now(), why)).encode())
        self.log("jobs: %s: %s/%s killed (%s)" % (run.key[0].name, run.key[1], run.key[2], why))

    def stop_all(self):
        for run in self.runs.values():
            self.kill(run, "environment stopping")
        self.runs.clear()
