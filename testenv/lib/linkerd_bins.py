"""The real Linkerd CLI and controller binaries used by the tests.

The Go module proxy refuses github.com/linkerd/linkerd2, and release downloads and
container images cannot be reached, so the binaries come from the folder beside this
repository, ../shared/linkerd/<release>/{linkerd.xz,controller.xz,SHA256SUMS}: build
checks every SHA-256 sum and unpacks them into testenv/bin/linkerd/<release>/ (ignored
by git), skipping releases already unpacked from the same sums.

A release folder may also hold its data plane (edge-26.8.3 does): `proxy.xz`,
`proxy-identity.xz`, `proxy-init.xz` and `policy-controller.xz`. Whatever of those its
SHA256SUMS lists is unpacked and checked the same way; `releases()` names them when present
(the data plane of `testenv/run mesh --data-plane`, dataplane.py).

A user with their own builds points MESHFLEET_LINKERD_DIR at a folder laid out as
<release>/linkerd and <release>/controller (unpacked, executable; the data-plane files
beside them when wanted); nothing is copied.
"""

import fcntl
import hashlib
import lzma
import os
import shutil
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(HERE)
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared", "linkerd"))
UNPACKED = os.path.join(HERE, "bin", "linkerd")
ENV_VAR = "MESHFLEET_LINKERD_DIR"
BINARIES = ("linkerd", "controller")
# Unpacked when the release's SHA256SUMS lists them: the proxy image's three programs and
# the policy container of the controller image.
DATA_PLANE = ("proxy", "proxy-identity", "proxy-init", "policy-controller")


class LinkerdMissing(Exception):
    pass


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sums(path):
    out = {}
    with open(path) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 2:
                out[parts[1].lstrip("*")] = parts[0]
    return out


def _shared_releases():
    if not os.path.isdir(SHARED):
        return []
    return sorted(r for r in os.listdir(SHARED)
                  if os.path.isfile(os.path.join(SHARED, r, "SHA256SUMS")))


def install(log):
    """Unpack every release of ../shared/linkerd into testenv/bin/linkerd (verified).

    Returns the folder the binaries are used from. With MESHFLEET_LINKERD_DIR set,
    that folder is checked and used as it is.
    """
    own = os.environ.get(ENV_VAR)
    if own:
        releases(own)  # raises when it holds no usable release
        return own
    rels = _shared_releases()
    if not rels:
        raise LinkerdMissing(
            "no Linkerd binaries: neither %s (set it to a folder of <release>/linkerd and "
            "<release>/controller) nor %s (the project's shared folder with "
            "<release>/linkerd.xz, controller.xz and SHA256SUMS) exists" % (ENV_VAR, SHARED))
    os.makedirs(UNPACKED, exist_ok=True)
    # Environments start in parallel: one unpacks, the others wait and find it done.
    with open(os.path.join(UNPACKED, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for rel in rels:
            _unpack(rel, log)
    return UNPACKED


def _unpack(rel, log):
    """Unpack one release into UNPACKED/<rel> unless its SHA256SUMS stamp is already there."""
    src = os.path.join(SHARED, rel)
    dst = os.path.join(UNPACKED, rel)
    with open(os.path.join(src, "SHA256SUMS")) as fh:
        stamp_text = fh.read()
    sums = _sums(os.path.join(src, "SHA256SUMS"))
    stamp = os.path.join(dst, ".sha256sums")
    wanted = list(BINARIES) + [b for b in DATA_PLANE if b in sums]
    if all(os.access(os.path.join(dst, b), os.X_OK) for b in wanted):
        try:
            if open(stamp).read() == stamp_text:
                return
        except OSError:
            pass
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=UNPACKED)
    try:
        for b in wanted:
            if b not in sums:
                raise LinkerdMissing("%s/SHA256SUMS has no entry for %s" % (src, b))
            out = os.path.join(tmp, b)
            with lzma.open(os.path.join(src, b + ".xz")) as fin, open(out, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            got = _sha256(out)
            if got != sums[b]:
                raise LinkerdMissing("%s/%s.xz unpacks to SHA-256 %s, SHA256SUMS says %s"
                                     % (src, b, got, sums[b]))
            os.chmod(out, 0o755)
        with open(os.path.join(tmp, ".sha256sums"), "w") as fh:
            fh.write(stamp_text)
        shutil.rmtree(dst, ignore_errors=True)
        os.replace(tmp, dst)
        log("unpacked Linkerd %s (SHA-256 verified) into %s" % (rel, dst))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def releases(root=None):
    """{release: {"cli": path, "controller": path}} of the binaries in use, plus the data
    plane's {"proxy", "proxy-identity", "proxy-init", "policy-controller": path} of a release
    that has all four."""
    root = root or os.environ.get(ENV_VAR) or UNPACKED
    found = {}
    if os.path.isdir(root):
        for rel in sorted(os.listdir(root)):
            paths = {b: os.path.join(root, rel, b) for b in BINARIES}
            if all(os.access(p, os.X_OK) for p in paths.values()):
                found[rel] = {"cli": paths["linkerd"], "controller": paths["controller"]}
                plane = {b: os.path.join(root, rel, b) for b in DATA_PLANE}
                if all(os.access(p, os.X_OK) for p in plane.values()):
                    found[rel].update(plane)
    if not found:
        raise LinkerdMissing(
            "no Linkerd binaries in %s: run `testenv/run build` (it unpacks %s), or set %s to a "
            "folder of <release>/linkerd and <release>/controller" % (root, SHARED, ENV_VAR))
    return found


def release_for_chart(version):
    """The release whose charts have this chart version: 2025.4.4 -> edge-25.4.4."""
    year, rest = version.split(".", 1)
    return "edge-%s.%s" % (year[2:], rest)
