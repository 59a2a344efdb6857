"""The network between the test clusters, as seen by the controllers the kubelet runs.

A fleet's `apiServer` is the address other clusters dial, never loopback (validation
refuses it), while the test API servers listen on 127.0.0.1 only and have certificates
for 127.0.0.1, localhost and kubernetes.default.svc. The tests therefore give their
fleets `apiServer: https://kubernetes.default.svc:<port>` (or any name), and the
controllers reach it through this CONNECT proxy, set as their HTTPS_PROXY: every host
maps to 127.0.0.1 on the same port, the way a cluster network's DNS and routes would
carry the connection. TLS is end to end (the proxy only moves bytes), so the credentials'
CA and server name are checked for real. Go never proxies loopback addresses, so a
controller's own kubeconfig (127.0.0.1) is dialled directly.
"""

import select
import socket
import socketserver
import threading


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        conn = self.request
        conn.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 16384:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        if len(parts) < 2 or parts[0] != "CONNECT" or ":" not in parts[1]:
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        host, _, port = parts[1].rpartition(":")
        try:
            upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
        except (OSError, ValueError):
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            self.server.log("network: %s:%s is not reachable" % (host, port))
            return
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        conn.settimeout(None)
        rest = head.split(b"\r\n\r\n", 1)[1]
        if rest:
            upstream.sendall(rest)
        pair = {conn: upstream, upstream: conn}
        try:
            while True:
                readable, _, _ = select.select(list(pair), [], [], 3600)
                if not readable:
                    return
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    pair[s].sendall(data)
        except OSError:
            return
        finally:
            upstream.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def start(log):
    """Start the proxy on a free 127.0.0.1 port; returns its URL for HTTPS_PROXY."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.log = log
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return "http://127.0.0.1:%d" % server.server_address[1]
