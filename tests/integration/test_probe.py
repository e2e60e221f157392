"""`hookbridge healthcheck URL`, the image's HEALTHCHECK, through the real binary: 0 for the
running daemon's /healthz, 1 with the reason for any other answer, a closed port, a server that
never answers (bounded by --timeout-ms) or one that hangs up; 2 for a URL it cannot request."""
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import hbtest  # noqa: E402


def healthcheck(*args, timeout=15):
    proc = subprocess.run([hbtest.env_path("HB_BIN"), "healthcheck", *args],
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


class Listener:
    """A TCP listener on a kernel port that accepts and then does `behaviour` with each client:
    "silent" reads and never answers, "hangup" reads and closes, a bytes value is sent back."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.clients = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.clients.append(conn)
            conn.recv(4096)
            if self.behaviour == "hangup":
                conn.close()
            elif isinstance(self.behaviour, bytes):
                conn.sendall(self.behaviour)
                conn.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        except OSError:
            pass
        self.sock.close()
        for conn in self.clients:
            conn.close()
        self.thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HealthcheckTest(unittest.TestCase):
    def test_the_daemons_healthz_is_healthy_and_other_paths_are_not(self):
        with hbtest.MockCluster(brokers=1) as kafka, hbtest.Bridge(bootstrap=kafka) as bridge:
            hbtest.wait_until(lambda: bridge.admin_port, 10, "the admin listener")
            url = f"http://127.0.0.1:{bridge.admin_port}/healthz"
            self.assertEqual(healthcheck(url), (0, f"{url}: 200\n", ""))
            # Any http:// form a HEALTHCHECK might be written with: a name, a query.
            code, out, _ = healthcheck(f"http://localhost:{bridge.admin_port}/healthz?x=1")
            self.assertEqual(code, 0, out)
            code, out, err = healthcheck(f"http://127.0.0.1:{bridge.admin_port}/nope")
            self.assertEqual((code, out), (1, ""))
            self.assertIn("unhealthy: HTTP 404", err)

    def test_no_server_is_unhealthy_at_once(self):
        url = f"http://127.0.0.1:{closed_port()}/healthz"
        started = time.monotonic()
        code, out, err = healthcheck(url)
        self.assertEqual((code, out), (1, ""))
        self.assertIn(f"{url}: no answer: cannot resolve or connect", err)
        self.assertLess(time.monotonic() - started, 1.5, "a refused connect must not wait")

    def test_a_server_that_never_answers_is_cut_at_the_timeout(self):
        with Listener("silent") as srv:
            started = time.monotonic()
            code, _, err = healthcheck("--timeout-ms", "300", f"http://127.0.0.1:{srv.port}/")
            elapsed = time.monotonic() - started
        self.assertEqual(code, 1)
        self.assertIn("no answer within 300 ms", err)
        self.assertGreaterEqual(elapsed, 0.3)
        self.assertLess(elapsed, 2.0)

    def test_a_server_that_hangs_up_or_speaks_no_http_is_unhealthy(self):
        with Listener("hangup") as srv:
            code, _, err = healthcheck(f"http://127.0.0.1:{srv.port}/healthz")
        self.assertEqual(code, 1, err)
        self.assertIn("no answer", err)
        with Listener(b"SSH-2.0-OpenSSH_9.2\r\n") as srv:
            code, _, err = healthcheck(f"http://127.0.0.1:{srv.port}/healthz")
        self.assertEqual(code, 1, err)
        with Listener(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n") as srv:
            code, _, err = healthcheck(f"http://127.0.0.1:{srv.port}/healthz")
        self.assertEqual(code, 1, err)
        self.assertIn("unhealthy: HTTP 503", err)

    def test_bad_usage_is_2(self):
        for args in ([], ["ftp://127.0.0.1/"], ["http:///healthz"], ["http://127.0.0.1:99999/"],
                     ["--timeout-ms", "0", "http://127.0.0.1/"], ["a", "b"]):
            code, out, err = healthcheck(*args)
            self.assertEqual((code, out), (2, ""), (args, err))
            self.assertTrue(err, args)


if __name__ == "__main__":
    unittest.main(verbosity=2)
