#!/usr/bin/env python3
"""A proxy in front of the S3 gateway that cuts bucket listings short.

    s3_cut_proxy.py LISTEN_PORT_FILE UPSTREAM_HOST:PORT MODE_FILE

Requests are passed to the gateway unchanged (signature version 2 signs the
path, not the host, so path-style requests stay valid). While MODE_FILE
says "cut", every bucket listing (a GET of /BUCKET?...) answers with the
gateway's first page marked truncated and its last half of keys dropped
(one key at least),
and every listing that goes on after a marker fails with 500: a listing
that cannot be finished. Any other mode passes everything. The port it
listens on is written to LISTEN_PORT_FILE once it is ready.
"""
import http.client
import http.server
import os
import re
import sys
import urllib.parse

PORT_FILE, UPSTREAM, MODE_FILE = sys.argv[1], sys.argv[2], sys.argv[3]


def mode():
    try:
        with open(MODE_FILE) as f:
            return f.read().strip()
    except OSError:
        return "pass"


def cut(body):
    keys = re.findall(rb"<Contents>.*?</Contents>", body, re.S)
    # At least one key: an empty page marked truncated reaches no callback
    # of libs3 2.0, so it would look like the end (README, "Limits").
    keep = keys[: max(1, len(keys) // 2)]
    head = body.split(b"<Contents>", 1)[0] if keys else body
    head = head.replace(b"<IsTruncated>false</IsTruncated>", b"<IsTruncated>true</IsTruncated>")
    tail = b"</ListBucketResult>"
    return head + b"".join(keep) + tail


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def relay(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        is_list = self.command == "GET" and url.path.strip("/").count("/") == 0 and url.path.strip("/") != ""
        if mode() == "cut" and is_list and "marker=" in url.query:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        conn = http.client.HTTPConnection(UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if mode() == "cut" and is_list and resp.status == 200:
            data = cut(data)
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        # A HEAD answer says the object's length and has no body.
        length = resp.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = relay


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
