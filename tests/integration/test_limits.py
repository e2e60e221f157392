"""Connection-level limits and TLS of the webhook listener, through the real hookbridge binary
against librdkafka's mock cluster: too many header fields get 431 and the connection still
serves; too many header bytes get libevent's own 400 and a close; a client trickling its
request is cut at http.request_timeout_ms while others are served and idle keep-alive time is
not counted, nor is the time a pipelined request waits for our answer to the one before, but a
request whose start came with the one before is timed; at http.max_connections a new client
waits until a connection closes; the listener speaks TLS with a certificate made here, refuses
plain HTTP without harm to the next client, serves a certificate renewed under the same file
names to new connections after a SIGHUP, and --check-config names a key that does not fit its
certificate. Every refused request stays out
of Kafka and the spool, and the metrics count what happened."""
import hashlib
import http.client
import json
import os
import pathlib
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import hbtest  # noqa: E402
from test_admin import Metrics, parse_metrics  # noqa: E402

TOPIC = "cloud66.stack"


def body_for(tag):
    return json.dumps({"event_type": "stack.created", "uid": "stack-limits", "tag": tag}).encode()


def metrics(bridge):
    if bridge.admin_port is None:  # bound right after the webhook listener
        bridge.wait_log(lambda l: l.get("component") == "admin" and l.get("msg") == "listening",
                        10, what="the admin listener")
    status, _, data = bridge.get("/metrics", admin=True)
    assert status == 200, status
    return Metrics(parse_metrics(data.decode()))


def raw_connect(bridge):
    return socket.create_connection((bridge.host, bridge.port), timeout=10)


def read_until_eof(sock, timeout=10):
    """Everything the server sends until it closes; raises TimeoutError if it does not."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except socket.timeout:
            raise TimeoutError(f"no close within {timeout} s; got {data[:200]!r}") from None
        if not chunk:
            return data
        data += chunk


def raw_post(tag, extra=b""):
    body = body_for(tag)
    return (b"POST " + hbtest.DEFAULT_WEBHOOK_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
            b"\r\n" + extra + b"\r\n" + body)


class LimitsBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kafka = hbtest.MockCluster(brokers=1, topics=[TOPIC + ":1"])

    @classmethod
    def tearDownClass(cls):
        cls.kafka.close()

    def check_outcome(self, bridge, landed, refused):
        """Each tag in landed reached Kafka once, none in refused did; after a clean stop the
        spool holds nothing."""
        msgs = hbtest.consume(self.kafka, TOPIC, idle_ms=1500, timeout_ms=20000)
        tags = [m["value"]["data"].get("tag") for m in msgs]
        for tag in landed:
            self.assertEqual(tags.count(tag), 1, f"{tag} should land once")
        for tag in refused:
            self.assertNotIn(tag, tags, f"refused request {tag} reached Kafka")
        self.assertEqual(bridge.stop(), 0)
        inspect = subprocess.run([os.environ["HB_BIN"], "spool", "inspect", "-v",
                                  str(bridge.spool_dir)], capture_output=True, text=True,
                                 timeout=30)
        self.assertEqual(inspect.returncode, 0, inspect.stdout + inspect.stderr)
        self.assertRegex(inspect.stdout, r"summary segments=\d+ records=0 ")

    def tag(self, name):
        return f"{self.id()}-{name}-{time.monotonic_ns()}"


class HeaderLimitsTest(LimitsBase):
    def test_too_many_headers_get_431_and_the_connection_still_serves(self):
        with hbtest.Bridge(bootstrap=self.kafka, http={"max_headers": 10}) as bridge:
            conn = bridge.connection()
            # http.client sends Host, Accept-Encoding and Content-Length; post() adds
            # Content-Type: 4 fields, plus the X- ones.
            at_limit, over = self.tag("at-limit"), self.tag("over")
            six = {f"X-H{i}": str(i) for i in range(6)}
            status, _, data = bridge.post(body=body_for(at_limit), headers=six, conn=conn)
            self.assertEqual(status, 202, data)
            seven = {f"X-H{i}": str(i) for i in range(7)}
            status, headers, data = bridge.post(body=body_for(over), headers=seven, conn=conn)
            self.assertEqual(status, 431, data)
            self.assertEqual(headers.get("content-type"), "application/json")
            answer = json.loads(data)
            self.assertEqual(answer["error"], "too_many_headers")
            self.assertIn("11 header fields", answer["detail"])
            self.assertIn("limit is 10", answer["detail"])
            # The same connection answers the next request.
            after = self.tag("after")
            status, _, data = bridge.post(body=body_for(after), conn=conn)
            self.assertEqual(status, 202, data)
            conn.close()
            m = metrics(bridge)
            self.assertEqual(m.get("hookbridge_http_requests_total", endpoint="other",
                                   status="431"), 1)
            self.check_outcome(bridge, landed=[at_limit, after], refused=[over])

    def test_too_many_header_bytes_get_libevents_400_and_a_close(self):
        with hbtest.Bridge(bootstrap=self.kafka, http={"max_header_bytes": 1024}) as bridge:
            big = self.tag("big")
            sock = raw_connect(bridge)
            sock.sendall(raw_post(big, b"X-Pad: " + b"a" * 2000 + b"\r\n"))
            answer = read_until_eof(sock)
            sock.close()
            # libevent answers by itself, as http.h and docs/http.md say: 400, its HTML page,
            # Connection: close, and the connection is closed.
            head, _, page = answer.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 400 Bad Request"), answer[:200])
            self.assertIn(b"Connection: close", head)
            self.assertIn(b"Content-Type: text/html", head)
            self.assertIn(b"<HTML>", page)
            ok = self.tag("ok")
            status, _, data = bridge.post(body=body_for(ok))
            self.assertEqual(status, 202, data)
            self.check_outcome(bridge, landed=[ok], refused=[big])


class Trickler(threading.Thread):
    """Sends a request one byte per `every` seconds (never finishing its headers) until the
    server closes the connection; .sent_first and .closed_at are monotonic times."""

    def __init__(self, bridge, every=0.2):
        super().__init__(daemon=True)
        self.sock = raw_connect(bridge)
        self.addr = "%s:%d" % self.sock.getsockname()[:2]
        self.every = every
        self.sent_first = self.closed_at = None
        self.stop = threading.Event()

    def run(self):
        data = b"POST /webhooks/cloud66 HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 1000
        try:
            for i in range(len(data)):
                if self.stop.is_set():
                    return
                self.sock.sendall(data[i:i + 1])
                if self.sent_first is None:
                    self.sent_first = time.monotonic()
                # Paced by the server's answer: readable means closed (it never answers).
                readable, _, _ = select.select([self.sock], [], [], self.every)
                if readable and not self.sock.recv(1):
                    break
        except OSError:
            pass
        self.closed_at = time.monotonic()

    def close(self):
        self.stop.set()
        self.join(timeout=10)
        self.sock.close()


class DeadlineTest(LimitsBase):
    def test_trickling_client_is_cut_others_are_served(self):
        http_cfg = {"request_timeout_ms": 1000, "idle_timeout_ms": 5000}
        with hbtest.Bridge(bootstrap=self.kafka, http=http_cfg) as bridge:
            keep, late = bridge.connection(), raw_connect(bridge)
            first = self.tag("keepalive-1")
            status, _, data = bridge.post(body=body_for(first), conn=keep)
            self.assertEqual(status, 202, data)
            keep_sock = keep.sock
            slow = Trickler(bridge)
            slow.start()
            try:
                hbtest.wait_until(lambda: slow.sent_first, 5, "the first trickled byte")
                meanwhile = self.tag("meanwhile")
                status, _, data = bridge.post(body=body_for(meanwhile))
                self.assertEqual(status, 202, data)
                self.assertIsNone(slow.closed_at, "the trickler was cut before the deadline")
                hbtest.wait_until(lambda: slow.closed_at, 5, "the trickler to be cut")
                took = slow.closed_at - slow.sent_first
                self.assertGreaterEqual(took, 0.9)
                self.assertLess(took, 2.5)
                line = bridge.wait_log(lambda l: l.get("msg") == "request deadline exceeded", 5)
                self.assertEqual(line["level"], "warn")
                self.assertEqual(line["peer"], slow.addr)
                self.assertEqual(line["timeout_ms"], 1000)
            finally:
                slow.close()
            # The kept-alive connection has now been idle for longer than the deadline (the
            # trickler's whole life): it is not cut, the same socket is answered.
            second = self.tag("keepalive-2")
            status, _, data = bridge.post(body=body_for(second), conn=keep)
            self.assertEqual(status, 202, data)
            self.assertIs(keep.sock, keep_sock, "the kept-alive connection was replaced")
            keep.close()
            # So has the connection that never sent a byte: a late request is served whole.
            late_tag = self.tag("late")
            late.sendall(raw_post(late_tag, b"Connection: close\r\n"))
            answer = read_until_eof(late)
            late.close()
            self.assertTrue(answer.startswith(b"HTTP/1.1 202"), answer[:200])
            m = metrics(bridge)
            self.assertEqual(m.get("hookbridge_http_request_deadline_exceeded_total"), 1)
            self.check_outcome(bridge, landed=[first, meanwhile, second, late_tag], refused=[])

    def test_request_sent_with_the_one_before_is_timed(self):
        # A whole request and the start of the next in one write, then silence: the second is
        # cut by the request deadline once the first is answered, not by the idle timeout.
        http_cfg = {"request_timeout_ms": 1000, "idle_timeout_ms": 30000}
        with hbtest.Bridge(bootstrap=self.kafka, http=http_cfg) as bridge:
            first = self.tag("first")
            sock = raw_connect(bridge)
            started = time.monotonic()
            sock.sendall(raw_post(first) + b"POST " + hbtest.DEFAULT_WEBHOOK_PATH.encode() +
                         b" HTTP/1.1\r\nHost: x\r\nX-Half: ")
            answer = read_until_eof(sock, timeout=20)
            took = time.monotonic() - started
            sock.close()
            self.assertTrue(answer.startswith(b"HTTP/1.1 202"), answer[:200])
            self.assertEqual(answer.count(b"HTTP/1.1 "), 1, answer[:400])
            self.assertGreaterEqual(took, 0.9)
            self.assertLess(took, 15)  # the idle timeout would take 30 s
            line = bridge.wait_log(lambda l: l.get("msg") == "request deadline exceeded", 5)
            self.assertEqual(line["during"], "request")
            m = metrics(bridge)
            self.assertEqual(m.get("hookbridge_http_request_deadline_exceeded_total"), 1)
            self.check_outcome(bridge, landed=[first], refused=[])


class MaxConnectionsTest(LimitsBase):
    def test_third_client_waits_until_one_closes(self):
        with hbtest.Bridge(bootstrap=self.kafka, http={"max_connections": 2}) as bridge:
            a, b = raw_connect(bridge), raw_connect(bridge)
            hbtest.wait_until(lambda: metrics(bridge).get("hookbridge_http_connections_open")
                              == 2, 5, "two open connections")
            line = bridge.wait_log(lambda l: l.get("msg") == "connection limit reached", 5)
            self.assertEqual(line["level"], "warn")
            self.assertEqual(line["max_connections"], 2)
            # The kernel completes the third handshake (backlog), but nobody reads it.
            third = self.tag("third")
            c = raw_connect(bridge)
            c.sendall(raw_post(third, b"Connection: close\r\n"))
            readable, _, _ = select.select([c], [], [], 1.0)
            self.assertEqual(readable, [], "the third client was served while two were open")
            m = metrics(bridge)
            self.assertEqual(m.get("hookbridge_http_connections_open"), 2)
            self.assertEqual(m.get("hookbridge_http_connections_max"), 2)
            self.assertEqual(m.get("hookbridge_http_connection_limit_reached_total"), 1)
            a.close()
            answer = read_until_eof(c)
            self.assertTrue(answer.startswith(b"HTTP/1.1 202"), answer[:200])
            bridge.wait_log(lambda l: l.get("msg") == "accepting connections again", 5)
            b.close()
            c.close()
            hbtest.wait_until(lambda: metrics(bridge).get("hookbridge_http_connections_open")
                              == 0, 5, "every connection closed")
            # c took the freed slot, which reached the cap again.
            self.assertEqual(metrics(bridge).get(
                "hookbridge_http_connection_limit_reached_total"), 2)
            self.check_outcome(bridge, landed=[third], refused=[])


class TlsTest(LimitsBase):
    @classmethod
    def setUpClass(cls):
        if not hbtest.have_tool("openssl"):
            raise unittest.SkipTest("the openssl command is not installed (scripts/install-deps "
                                    "installs it): cannot make a test certificate")
        cls.tmp = hbtest.make_tmpdir("tls")
        cls.cert, cls.key, cls.other = (str(cls.tmp / n) for n in ("cert.pem", "key.pem",
                                                                   "other.pem"))
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        subprocess.run(["openssl", "req", "-x509", *ec, "-nodes", "-keyout", cls.key, "-out",
                        cls.cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True,
                       timeout=60)
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", cls.other], check=True,
                       capture_output=True, timeout=60)
        # The renewal: another certificate for the same name, with another key.
        cls.cert2, cls.key2 = str(cls.tmp / "cert2.pem"), str(cls.tmp / "key2.pem")
        subprocess.run(["openssl", "req", "-x509", *ec, "-nodes", "-keyout", cls.key2, "-out",
                        cls.cert2, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True,
                       timeout=60)
        cls.ctx = ssl.create_default_context(cafile=cls.cert)
        cls.ctx2 = ssl.create_default_context(cafile=cls.cert2)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        hbtest.remove_tmpdir(cls.tmp)

    def tls_bridge(self):
        return hbtest.Bridge(bootstrap=self.kafka, http={"tls_cert_file": self.cert,
                                                          "tls_key_file": self.key})

    def test_seed_over_https_lands(self):
        seed = (pathlib.Path(os.environ["HB_FIXTURES"]) / "seeds" /
                "stack.deploy.started.json").read_bytes()
        with self.tls_bridge() as bridge:
            self.assertEqual(bridge.find_logs(msg="listening", component="http")[0]["tls"], "on")
            status, _, data = bridge.post(body=seed, tls_context=self.ctx)
            self.assertEqual(status, 202, data)
            self.assertEqual(json.loads(data)["id"], hashlib.sha256(seed).hexdigest())
            # An answer followed by a close (urllib's habit) arrives whole too.
            tag = self.tag("close")
            status, _, data = bridge.post(body=body_for(tag), headers={"Connection": "close"},
                                          tls_context=self.ctx)
            self.assertEqual(status, 202, data)
            msgs = hbtest.consume(self.kafka, TOPIC, idle_ms=1500, timeout_ms=20000)
            ids = [m["value"]["id"] for m in msgs]
            self.assertEqual(ids.count(hashlib.sha256(seed).hexdigest()), 1)
            self.check_outcome(bridge, landed=[tag], refused=[])

    def test_plain_http_is_refused_and_the_next_https_client_served(self):
        with self.tls_bridge() as bridge:
            plain = self.tag("plain")
            sock = raw_connect(bridge)
            local = "%s:%d" % sock.getsockname()[:2]
            sock.sendall(raw_post(plain))
            answer = read_until_eof(sock)
            sock.close()
            self.assertNotIn(b"HTTP/1.1 2", answer)
            line = bridge.wait_log(lambda l: l.get("msg") == "TLS handshake failed", 5)
            self.assertEqual(line["level"], "info")
            self.assertEqual(line["peer"], local)
            self.assertTrue(line["reason"])
            after = self.tag("after")
            status, _, data = bridge.post(body=body_for(after), tls_context=self.ctx)
            self.assertEqual(status, 202, data)
            m = metrics(bridge)
            self.assertEqual(m.get("hookbridge_http_tls_handshake_failures_total"), 1)
            self.check_outcome(bridge, landed=[after], refused=[plain])

    def test_reload_serves_a_renewed_certificate_to_new_connections(self):
        live_cert, live_key = self.tmp / "live-cert.pem", self.tmp / "live-key.pem"
        shutil.copyfile(self.cert, live_cert)
        shutil.copyfile(self.key, live_key)
        with hbtest.Bridge(bootstrap=self.kafka, http={"tls_cert_file": str(live_cert),
                                                       "tls_key_file": str(live_key)}) as bridge:
            kept = bridge.connection(tls_context=self.ctx)
            before = self.tag("before")
            status, _, data = bridge.post(body=body_for(before), conn=kept)
            self.assertEqual(status, 202, data)
            kept_sock = kept.sock
            # Renewed in place: the same file names, a new certificate and key.
            shutil.copyfile(self.key2, live_key)
            shutil.copyfile(self.cert2, live_cert)
            since = len(bridge.logs)
            line = hbtest.reload(bridge)
            self.assertEqual(line["msg"], "config reloaded", line)
            new = bridge.wait_log(lambda l: l.get("msg") ==
                                  "a new TLS certificate for new connections", 5, since=since)
            self.assertEqual(new["level"], "info")

            def sha256_of(pem_path):
                der = ssl.PEM_cert_to_DER_cert(pathlib.Path(pem_path).read_text())
                return hashlib.sha256(der).hexdigest()
            self.assertEqual(new["cert_sha256"], sha256_of(self.cert2))
            self.assertEqual(new["previous_sha256"], sha256_of(self.cert))
            self.assertEqual([l for l in bridge.logs[since:] if l.get("option", "").startswith(
                "http.tls_")], [], "the TLS files were reported as needing a restart")
            # A new connection gets the new certificate (ctx2 trusts only that one) ...
            after = self.tag("after")
            status, _, data = bridge.post(body=body_for(after), tls_context=self.ctx2)
            self.assertEqual(status, 202, data)
            with self.assertRaises(ssl.SSLError):
                bridge.post(body=body_for(self.tag("old")), tls_context=self.ctx)
            # ... and the kept-alive connection goes on with the old one.
            kept_again = self.tag("kept")
            status, _, data = bridge.post(body=body_for(kept_again), conn=kept)
            self.assertEqual(status, 202, data)
            self.assertIs(kept.sock, kept_sock, "the kept-alive connection was replaced")
            kept.close()
            self.check_outcome(bridge, landed=[before, after, kept_again], refused=[])

    def check_config(self, cert, key):
        text = hbtest.make_config(self.kafka, self.tmp / "spool",
                                  http={"tls_cert_file": cert, "tls_key_file": key})
        path = self.tmp / "check.conf"
        path.write_text(text)
        return subprocess.run([os.environ["HB_BIN"], "--check-config", "--config", str(path)],
                              capture_output=True, text=True, timeout=30)

    def test_check_config_names_the_bad_file(self):
        r = self.check_config(self.cert, self.key)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.check_config(self.cert, self.other)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"http.tls_key_file '{self.other}' does not match the certificate",
                      r.stderr)
        self.assertIn("key values mismatch", r.stderr)
        r = self.check_config(self.cert, "")
        self.assertEqual(r.returncode, 2)
        self.assertIn("http.tls_cert_file is set but http.tls_key_file is not", r.stderr)
        missing = str(self.tmp / "missing.pem")
        r = self.check_config(missing, self.key)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"http.tls_cert_file '{missing}': cannot read: No such file", r.stderr)
        r = self.check_config(self.key, self.key)  # a key where the certificate belongs
        self.assertEqual(r.returncode, 2)
        self.assertIn("not a usable PEM certificate", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
