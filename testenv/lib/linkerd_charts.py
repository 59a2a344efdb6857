"""The Linkerd Helm charts of a release, taken out of that release's real `linkerd` CLI.

The CLI embeds the charts it installs (the published Helm charts of the same release).
Nothing else on these machines has them: the module proxy refuses linkerd2, and GitHub
and helm.linkerd.io cannot be reached. So `charts(cli)` reads the embedded files back
out of the executable, in one of the two forms Linkerd has used:

* Go `embed.FS` (recent edges, e.g. edge-26.8.3): a sorted array of
  {name string, data string, hash [16]byte} entries with full paths such as
  `linkerd-control-plane/templates/destination.yaml`;
* vfsgen (2.18 = edge-25.4.4): a map literal whose keys (`/linkerd-viz/values.yaml`)
  and values (pointers to {name string, modTime time.Time, content []byte, ...}, the
  content gzip-compressed or raw) the compiler lays out as two parallel static arrays.

Both are read with the ELF program headers only (the binaries are stripped). The
result is checked: every chart has a Chart.yaml whose name is the folder's, and every
file found was parsed from a table entry (no guessing by content).

`package_repo(cli, version, out)` writes a Helm repository (index.yaml and one .tgz per
chart, the `partials` library chart vendored into each chart's charts/ folder, as in
the published charts) for `python3 -m http.server`-style static serving.
"""

import bisect
import gzip
import hashlib
import io
import os
import re
import struct
import tarfile

import zlib

import yaml

CHARTS = ["linkerd-crds", "linkerd-control-plane", "linkerd-viz", "linkerd-multicluster"]


class Elf:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] != 2:
            raise ValueError("%s is not a 64-bit ELF executable" % path)
        phoff = struct.unpack_from("<Q", d, 0x20)[0]
        phentsize, phnum = struct.unpack_from("<HH", d, 0x36)
        self.segs = []
        for i in range(phnum):
            p_type, _, off, vaddr, _, filesz, _, _ = struct.unpack_from("<IIQQQQQQ", d, phoff + i * phentsize)
            if p_type == 1:  # PT_LOAD
                self.segs.append((vaddr, off, filesz))

    def va(self, off):
        for vaddr, foff, size in self.segs:
            if foff <= off < foff + size:
                return vaddr + off - foff
        return None

    def off(self, va):
        for vaddr, foff, size in self.segs:
            if vaddr <= va < vaddr + size:
                return foff + va - vaddr
        return None

    def read(self, va, n):
        o = self.off(va)
        if o is None or o + n > len(self.data):
            return None
        return self.data[o:o + n]

    def string(self, o):
        """The Go string header at file offset o, decoded, or None."""
        ptr, n = struct.unpack_from("<QQ", self.data, o)
        if n == 0 or n > 512:
            return None
        b = self.read(ptr, n)
        if b is None:
            return None
        try:
            s = b.decode()
        except UnicodeDecodeError:
            return None
        return s if s.isprintable() else None

    def headers_of(self, text):
        """File offsets of Go string headers (ptr, len) that point at `text`."""
        raw = text.encode()
        found = []
        for m in re.finditer(re.escape(raw), self.data):
            va = self.va(m.start())
            if va is None:
                continue
            pat = struct.pack("<QQ", va, len(raw))
            found += [h.start() for h in re.finditer(re.escape(pat), self.data) if h.start() % 8 == 0]
        return found


def _embed_files(elf):
    """{path: bytes} from Go embed.FS tables that hold linkerd charts."""
    files = {}
    for chart in CHARTS + ["partials"]:
        for h in elf.headers_of(chart + "/Chart.yaml"):
            def entry(o):
                name = elf.string(o)
                # The hash is 16 random bytes (zero for directories), never a string
                # header: that tells a table from a []string of paths next to it.
                if name is None or "/" not in name or elf.string(o + 32) is not None:
                    return None
                ptr, n = struct.unpack_from("<QQ", elf.data, o + 16)
                body = elf.read(ptr, n) if n else b""
                return None if body is None else (name, body)
            start = h
            while entry(start - 48):
                start -= 48
            o = start
            while True:
                e = entry(o)
                if e is None:
                    break
                if not e[0].endswith("/"):
                    files[e[0]] = e[1]
                o += 48
    return files


def _vfsgen_files(elf):
    """{path: bytes} from the vfsgen file systems that hold linkerd charts.

    vfsgen's map literal is built by code, one entry after the other: for a file, an
    instruction takes the address of its gzip-compressed content, then one takes the
    address of its key (`/linkerd-viz/values.yaml`, length in the `mov edi, imm32` that
    follows). Pairing each key with the compressed stream referenced just before it
    (and after the previous key) recovers the tree; directories have no content.
    """
    d = elf.data
    streams = {}
    for m in re.finditer(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff", d):
        dec = zlib.decompressobj(31)
        try:
            body = dec.decompress(d[m.start():m.start() + (8 << 20)])
        except zlib.error:
            continue
        if dec.eof:
            streams[elf.va(m.start())] = body
    starts = sorted(streams)
    code_va, code_off, code_size = elf.segs[0]
    events, last = [], None
    lea = rb"[\x48\x4c]\x8d[\x05\x0d\x15\x1d\x25\x2d\x35\x3d]"  # lea r64, [rip+disp32]
    for m in re.finditer(lea, d[code_off:code_off + code_size]):
        o = code_off + m.start()
        target = elf.va(o + 7) + struct.unpack_from("<i", d, o + 3)[0]
        i = bisect.bisect_right(starts, target) - 1
        # Large contents are copied from a few bytes into the stream.
        if i >= 0 and target - starts[i] < 16:
            events.append((o, None, starts[i]))
            continue
        t = elf.off(target)
        if t is None:
            last = (o, target)
            continue
        # A small file vfsgen kept uncompressed: its content's address, then its length
        # in a `mov r32, imm32`.
        # Or copied from a static array, its length the size in the array type that the
        # allocation just before names (lea type; call runtime.newobject; lea content).
        imm = _imm32(d, o + 7)
        prev, last = last, (o, target)
        if d[o + 7] != 0xBF:
            if imm is None and prev is not None and o - prev[0] < 40:
                imm = struct.unpack_from("<Q", d, elf.off(prev[1]) or 0)[0]
            if imm is not None and 0 < imm < 4096:
                events.append((o, False, d[t:t + imm]))
            continue
        head = d[t:t + 24]
        if head.startswith(tuple(b"/" + c.encode() for c in CHARTS + ["partials"])):
            n = struct.unpack_from("<I", d, o + 8)[0]
            events.append((o, d[t:t + n].decode(), None))
    # The entry's name field (its base name) is also an address and a length; never
    # take it for the content.
    raw_skip = tuple({k.rsplit("/", 1)[-1].encode() for _, k, _ in events if isinstance(k, str)})
    files, pending, raw = {}, None, None
    for o, key, stream in events:
        if key is None:
            pending = (o, streams[stream])
            continue
        if key is False:
            raw = raw if stream.startswith(raw_skip) else (o, stream)
            continue
        if key not in files:
            if pending is not None and o - pending[0] < 600:
                files[key] = pending[1]
            elif raw is not None and o - raw[0] < 600:
                files[key] = raw[1]
        pending = raw = None
    keys = {key for _, key, _ in events if isinstance(key, str)}
    dirs = {k.rsplit("/", 1)[0] for k in keys}
    out = {}
    for key in keys - dirs:
        body = files.get(key, b"")
        try:
            body.decode()
        except UnicodeDecodeError:
            body = b""  # an empty file: what was found next to it is not text
        out[key.lstrip("/")] = body
    return out


def _imm32(d, o):
    """The immediate of a `mov r32, imm32` at o (b8+r or 41 b8+r), else None."""
    if 0xB8 <= d[o] <= 0xBF:
        return struct.unpack_from("<I", d, o + 1)[0]
    if d[o] == 0x41 and 0xB8 <= d[o + 1] <= 0xBF:
        return struct.unpack_from("<I", d, o + 2)[0]
    return None


def charts(cli):
    """{chart: {relative path: bytes}} of the charts the CLI embeds."""
    elf = Elf(cli)
    files = _embed_files(elf) or _vfsgen_files(elf)
    out = {}
    for path, body in files.items():
        chart, _, rel = path.partition("/")
        out.setdefault(chart, {})[rel] = body
    for chart in CHARTS + ["partials"]:
        meta = yaml.safe_load(out.get(chart, {}).get("Chart.yaml", b"") or "{}") or {}
        if meta.get("name") != chart:
            raise ValueError("%s: no embedded chart %s" % (cli, chart))
    return out


def package_repo(cli, release, version, out_dir):
    """Write <chart>-<version>.tgz for the charts of `cli` into out_dir; return the
    index entries.

    Done the way Linkerd's release build publishes them: Chart.yaml gets the chart
    `version` and `appVersion: <release>` (e.g. edge-25.4.4), every `linkerdVersionValue`
    placeholder in values.yaml becomes the release (the image tags), and the `partials`
    library chart is vendored into charts/partials of every chart that depends on it.
    """
    found = charts(cli)
    os.makedirs(out_dir, exist_ok=True)
    entries = {}
    for chart in CHARTS:
        files = dict(found[chart])
        meta = yaml.safe_load(files["Chart.yaml"])
        meta["version"] = version
        meta["appVersion"] = release
        files["Chart.yaml"] = yaml.safe_dump(meta, sort_keys=False).encode()
        files["values.yaml"] = files["values.yaml"].replace(b"linkerdVersionValue", release.encode())
        deps = meta.get("dependencies") or (yaml.safe_load(files.get("requirements.yaml", b"")) or {}).get("dependencies") or []
        if any(dep.get("name") == "partials" for dep in deps):
            for rel, body in found["partials"].items():
                files["charts/partials/" + rel] = body
        buf = io.BytesIO()
        # Fixed mtimes and order: the same CLI always gives the same tarball (digest).
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for rel in sorted(files):
                info = tarfile.TarInfo("%s/%s" % (chart, rel))
                info.size = len(files[rel])
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(files[rel]))
        name = "%s-%s.tgz" % (chart, version)
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(buf.getvalue())
        entry = dict(meta)
        entry["urls"] = [name]  # relative to the repository's URL
        entry["digest"] = hashlib.sha256(buf.getvalue()).hexdigest()
        entries.setdefault(chart, []).append(entry)
    return entries


def write_repo(releases, out_dir):
    """A Helm repository in out_dir for {release: cli} (release like edge-25.4.4, chart
    version 2025.4.4): the tarballs and index.yaml."""
    index = {"apiVersion": "v1", "entries": {}}
    for release, cli in sorted(releases.items()):
        version = release.split("-", 1)[1]
        version = "20" + version if not version.startswith("20") else version
        for chart, items in package_repo(cli, release, version, out_dir).items():
            index["entries"].setdefault(chart, []).extend(items)
    with open(os.path.join(out_dir, "index.yaml"), "w") as f:
        yaml.safe_dump(index, f, sort_keys=True)
