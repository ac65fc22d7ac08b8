"""GET /info from the Docker Engine API over its local UNIX socket with the standard library.

doctor only needs `docker info`; importing the docker SDK (requests + urllib3) costs more than
all of doctor's checks together (bench/doctor.py), so the common case - dockerd on the local
socket - is read here, and anything else (DOCKER_HOST=tcp/ssh, TLS) goes through the SDK.
"""
import http.client
import json
import os
import socket

DEFAULT_SOCKET = "/var/run/docker.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def local_socket():
    """The UNIX socket path this environment points Docker at, or None when it is not a local one."""
    host = os.environ.get("DOCKER_HOST", "")
    if os.environ.get("DOCKER_TLS_VERIFY") or os.environ.get("DOCKER_CONTEXT"):
        return None
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return None


def info(path, timeout=5.0):
    """-> the Engine's /info as a dict; raises OSError / ValueError on failure."""
    conn = _UnixConnection(path, timeout)
    try:
        conn.request("GET", "/info", headers={"Host": "docker"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            message = body.decode("utf-8", "replace").strip()
            try:
                message = json.loads(message).get("message", message)
            except ValueError:
                pass
            raise OSError("Docker Engine /info: HTTP {}: {}".format(resp.status, message))
        return json.loads(body.decode("utf-8"))
    finally:
        conn.close()
