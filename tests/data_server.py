"""Shared by the data tests: every mirror offline by default, and a local HTTP
server on 127.0.0.1 that serves archives built by the test (no test reaches the
internet)."""
import http.server
import socket
import threading

import pytest

from scratch import data


def closed_port_url():
    with socket.socket() as s:  # bind, note the port, close: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Every mirror points at a closed port unless a test says otherwise."""
    closed = closed_port_url()
    monkeypatch.delenv("SCRATCH_DATA_MIRROR", raising=False)
    monkeypatch.setattr(data, "MIRRORS", {name: [closed] for name in data.MIRRORS})
    monkeypatch.setattr(data, "CHECKSUMS", dict(data.CHECKSUMS))
    monkeypatch.setattr(data, "TIMEOUT", 5)
    return closed


def serving(monkeypatch, dataset, prefix):
    """A generator for a fixture: serves ``files`` (URL path -> bytes) under
    ``/prefix/``, points ``dataset``'s mirror there, yields (files, requests)."""
    files, requests = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setitem(data.MIRRORS, dataset, [f"{url}/{prefix}/"])
    yield files, requests
    httpd.shutdown()
    httpd.server_close()
