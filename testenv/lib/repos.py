"""The environment's loopback git server and Helm repository (`testenv/run gitops`).

One HTTP server on 127.0.0.1:
* `/git/<name>.git/...`: git's smart HTTP protocol, served by the real `git http-backend`
  (CGI) over the bare repositories in GIT_ROOT, so Flux's source-controller clones and
  fetches them as it would from any git host (read-only: pushes are refused);
* `/charts/...`: the files of CHARTS_DIR (index.yaml and chart tarballs), a static Helm
  repository.

Run as `python3 repos.py --git-root DIR --charts DIR --port PORT`; logs requests to stdout.
"""

import argparse
import http.server
import os
import shutil
import subprocess
import sys
import urllib.parse


class Handler(http.server.BaseHTTPRequestHandler):
    git_root = None
    charts = None

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def do_HEAD(self):
        self.route()

    def route(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/git/"):
            return self.git(url)
        if url.path.startswith("/charts/"):
            return self.static(url.path[len("/charts/"):])
        self.send_error(404)

    def static(self, rel):
        path = os.path.realpath(os.path.join(self.charts, rel))
        if not path.startswith(os.path.realpath(self.charts) + os.sep) or not os.path.isfile(path):
            return self.send_error(404)
        with open(path, "rb") as fh:
            body = fh.read()
        self.send_response(200)
        ctype = "application/x-yaml" if path.endswith(".yaml") else "application/gzip"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def git(self, url):
        if "git-receive-pack" in url.path or "service=git-receive-pack" in url.query:
            return self.send_error(403, "read-only")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.git_root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": url.path[len("/git"):],
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": self.git_root,
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        r = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        out = r.stdout
        head, sep, rest = out.partition(b"\r\n\r\n")
        if not sep:
            head, sep, rest = out.partition(b"\n\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            elif k:
                headers.append((k.strip(), v.strip()))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)
        if r.returncode != 0 and r.stderr:
            sys.stdout.write(r.stderr.decode("utf-8", "replace"))

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--git-root", required=True)
    ap.add_argument("--charts", required=True)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    if not shutil.which("git"):
        sys.exit("git is not installed")
    Handler.git_root = os.path.abspath(args.git_root)
    Handler.charts = os.path.abspath(args.charts)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main()
