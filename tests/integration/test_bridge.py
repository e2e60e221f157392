"""The webhook path through the real hookbridge binary against librdkafka's mock cluster:
every seed payload lands once on its family's topic with the golden envelope, unknown families
get their own topic, and every bad input gets its status and JSON error without costing the next
request its answer or putting anything on Kafka."""
import hashlib
import json
import os
import pathlib
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import hbtest  # noqa: E402

TOPICS = ["cloud66.application", "cloud66.stack", "cloud66.backup"]
GOLDEN = pathlib.Path(os.environ.get("HB_GOLDEN", "tests/golden"))


def family_topic(event_type):
    first = event_type.split(".")[0]
    family = {"managed_backup": "backup"}.get(first, first)
    return "cloud66." + family


def stack_uid(payload):
    stack = payload.get("stack")
    if isinstance(stack, dict):
        return stack.get("uid")
    if isinstance(stack, str):
        return stack
    return payload.get("uid")


class BridgeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kafka = hbtest.MockCluster(brokers=3)
        cls.bridge = hbtest.Bridge(bootstrap=cls.kafka)

    @classmethod
    def tearDownClass(cls):
        code = cls.bridge.stop()
        cls.bridge.close()
        cls.kafka.close()
        assert code == 0, f"hookbridge exited {code} on SIGTERM"

    def post_json(self, body=b"", **kw):
        status, headers, data = self.bridge.post(body=body, **kw)
        self.assertEqual(headers.get("content-type"), "application/json", data)
        return status, headers, json.loads(data)

    def all_messages(self, topics=None):
        return hbtest.consume(self.kafka, topics or TOPICS, idle_ms=1500, timeout_ms=20000)

    def test_1_every_seed_lands_once_with_the_golden_envelope(self):
        seeds = hbtest.seed_payloads()
        self.assertEqual(len(seeds), 17, "the seed pages hold 17 payloads")
        ids = {}
        for event_type, body in seeds:
            status, _, answer = self.post_json(body)
            self.assertEqual(status, 202, f"{event_type}: {answer}")
            self.assertEqual(answer["id"], hashlib.sha256(body).hexdigest())
            ids[answer["id"]] = (event_type, body)
        msgs = self.all_messages()
        self.assertEqual(len(msgs), 17, [m["topic"] for m in msgs])
        seen = set()
        for m in msgs:
            env = m["value"]
            self.assertIn(env["id"], ids)
            self.assertNotIn(env["id"], seen, "delivered twice")
            seen.add(env["id"])
            event_type, body = ids[env["id"]]
            payload = json.loads(body)
            self.assertEqual(m["topic"], family_topic(event_type))
            self.assertEqual(m["key"], stack_uid(payload))
            self.assertEqual(m["headers"].get("content-type"),
                             "application/cloudevents+json; charset=UTF-8")
            golden = json.loads((GOLDEN / f"{event_type}.json").read_text())
            # receivedat is the only field that depends on when the test ran.
            self.assertRegex(env.pop("receivedat"), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            golden.pop("receivedat")
            self.assertEqual(env, golden, event_type)

    def test_2_unknown_family_gets_its_own_topic(self):
        body = json.dumps({"event_type": "server.created", "timestamp": 1757011079,
                           "uid": "server-123", "name": "web1"}).encode()
        status, _, answer = self.post_json(body)
        self.assertEqual(status, 202, answer)
        msgs = hbtest.consume(self.kafka, "cloud66.server", count=1, timeout_ms=15000)
        env = msgs[0]["value"]
        self.assertEqual(env["type"], "com.cloud66.server.created")
        self.assertEqual(env["family"], "server")
        self.assertEqual(env["subject"], "server-123")
        self.assertEqual(msgs[0]["key"], "server-123")
        self.assertNotIn("stack", env["data"])

    def test_3_bad_inputs_get_status_and_json_error(self):
        before = len(self.all_messages())
        big = b'{"event_type":"stack.created","pad":"' + b"x" * (1048576 + 10) + b'"}'
        cases = [
            ("invalid JSON", dict(body=b'{"event_type": '), 400, "invalid_json"),
            ("trailing garbage", dict(body=b'{"event_type":"a.b"} x'), 400, "invalid_json"),
            ("array", dict(body=b'[1,2]'), 400, "not_an_object"),
            ("empty", dict(body=b'', headers={"Content-Type": "application/json"}), 400,
             "empty_body"),
            ("invalid UTF-8", dict(body=b'{"event_type":"a.b","x":"\xff"}'), 400, None),
            ("NUL byte", dict(body=b'{"event_type":"a.b"}\x00'), 400, None),
            ("unknown path", dict(body=b'{}', path="/nope"), 404, "not_found"),
            ("GET on the webhook path", dict(method="GET"), 405, "method_not_allowed"),
            ("PUT", dict(body=b'{}', method="PUT"), 405, "method_not_allowed"),
            ("text/plain", dict(body=b'{"event_type":"a.b"}',
                                headers={"Content-Type": "text/plain"}), 415,
             "unsupported_media_type"),
            ("no content type", dict(body=b'{"event_type":"a.b"}',
                                     headers={"Content-Type": ""}), 415, None),
            ("too large", dict(body=big), 413, "body_too_large"),
            ("no event_type", dict(body=b'{"timestamp":1}'), 422, "missing_event_type"),
            ("numeric event_type", dict(body=b'{"event_type":5}'), 422, "missing_event_type"),
        ]
        conn = self.bridge.connection()
        for name, kw, want, code in cases:
            with self.subTest(name):
                status, headers, answer = self.post_json(**kw)
                self.assertEqual(status, want, f"{name}: {answer}")
                self.assertIsInstance(answer.get("detail"), str)
                self.assertTrue(answer["detail"])
                if code:
                    self.assertEqual(answer["error"], code)
                if want == 405:
                    self.assertIn("allow", headers)
                # The daemon still answers, on a kept-alive connection too.
                status, _, _ = self.bridge.post(path="/healthz", method="GET", conn=conn)
                self.assertEqual(status, 200)
        conn.close()
        self.assertEqual(len(self.all_messages()), before, "a bad input reached Kafka")

    def test_3b_client_bytes_quoted_in_errors_stay_utf8(self):
        import socket
        # A raw 0xff in the Content-Type is quoted back as '?', so the JSON answer (and the log
        # line) stay valid UTF-8. In the path it is a malformed request line (RFC 9112: the
        # target is visible ASCII): 400, and the answer quotes none of it.
        cases = [
            (b"POST /x\xff\xfe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: 2\r\n\r\n{}", 400, "visible ASCII"),
            (b"POST /webhooks/cloud66 HTTP/1.1\r\nHost: x\r\nContent-Type: text/\xff\r\n"
             b"Content-Length: 2\r\n\r\n{}", 415, "text/?"),
        ]
        for raw, want, shown in cases:
            with self.subTest(want):
                s = socket.create_connection((self.bridge.host, self.bridge.port), timeout=5)
                try:
                    s.sendall(raw)
                    reply = b""
                    while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        reply += chunk
                finally:
                    s.close()
                head, _, body = reply.partition(b"\r\n\r\n")
                self.assertIn(f" {want} ".encode(), head.split(b"\r\n")[0])
                answer = json.loads(body.decode("utf-8"))  # raises on invalid UTF-8
                self.assertIn(shown, answer["detail"])
        # The log line quotes the same safe text (a raw byte would arrive here as U+FFFD).
        def quoted():
            found = [e["detail"] for e in self.bridge.find_logs(msg="request refused")
                     if "visible ASCII" in e.get("detail", "") or "text/?" in e.get("detail", "")]
            return found if len(found) == 2 else None
        logged = hbtest.wait_until(quoted, 10, "both refusals logged")
        self.assertFalse(any("\ufffd" in d for d in logged), logged)

    def test_4_chunked_body_over_the_limit_is_413(self):
        conn = self.bridge.connection()
        chunks = (b'{"event_type":"a.b","pad":"' + b"y" * 65536 for _ in range(20))
        conn.request("POST", self.bridge.path, body=chunks,
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        self.assertEqual(resp.status, 413, data)
        self.assertEqual(json.loads(data)["error"], "body_too_large")

    def test_4b_event_too_large_for_kafka_is_413_not_spooled(self):
        # Under the body limit (1 MiB) but over librdkafka's message.max.bytes (1,000,000).
        body = json.dumps({"event_type": "stack.huge", "uid": "s-huge",
                           "pad": "z" * 999700}).encode()
        status, _, answer = self.post_json(body)
        self.assertEqual(status, 413, answer)
        self.assertEqual(answer["error"], "event_too_large")
        self.assertEqual(self.bridge.get("/healthz")[0], 200)

    def test_4c_slow_client_does_not_hold_up_others(self):
        import socket
        # A client that sent half its headers and a client that sent half its body both stall;
        # everyone else is still answered at once.
        half_headers = socket.create_connection((self.bridge.host, self.bridge.port))
        half_headers.sendall(b"POST /webhooks/cloud66 HTTP/1.1\r\nHost: x\r\nContent-")
        half_body = socket.create_connection((self.bridge.host, self.bridge.port))
        half_body.sendall(b"POST /webhooks/cloud66 HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ev")
        try:
            for i in range(5):
                body = json.dumps({"event_type": "application.slow.test", "n": i}).encode()
                status, _, answer = self.post_json(body, timeout=5)
                self.assertEqual(status, 202, answer)
        finally:
            half_headers.close()
            half_body.close()

    def test_5_keep_alive_serves_many_requests_on_one_connection(self):
        conn = self.bridge.connection()
        for i in range(20):
            # One uid, so one key and one partition: Kafka orders events per key.
            body = json.dumps({"event_type": "application.keepalive.test", "uid": "ka-1",
                               "n": i}).encode()
            status, headers, data = self.bridge.post(body=body, conn=conn)
            self.assertEqual(status, 202, data)
        conn.close()
        msgs = hbtest.consume(self.kafka, "cloud66.application", timeout_ms=20000, idle_ms=1500)
        ns = [m["value"]["data"]["n"] for m in msgs
              if m["value"]["type"] == "com.cloud66.application.keepalive.test"]
        self.assertEqual(ns, list(range(20)), "one connection's events, once each, in order")

    def test_6_sighup_reloads_without_killing_the_daemon(self):
        # Reloading itself is tested in test_reload.py.
        since = len(self.bridge.logs)
        os.kill(self.bridge.pid, signal.SIGHUP)
        self.bridge.wait_log(lambda l: l.get("msg") == "config reloaded", 10, since=since)
        self.assertEqual(self.bridge.get("/healthz")[0], 200)

    def test_7_healthz(self):
        status, _, data = self.bridge.get("/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(data)["status"], "ok")


class BinaryModeTest(unittest.TestCase):
    def test_binary_mode_puts_attributes_in_headers(self):
        with hbtest.MockCluster(brokers=1) as kafka, \
                hbtest.Bridge(bootstrap=kafka, envelope={"mode": "binary"}) as bridge:
            body = (pathlib.Path(os.environ["HB_FIXTURES"]) / "seeds" /
                    "stack.deploy.started.json").read_bytes()
            status, _, data = bridge.post(body=body)
            self.assertEqual(status, 202, data)
            m = hbtest.consume(kafka, "cloud66.stack", count=1)[0]
            h = m["headers"]
            self.assertEqual(h["ce_specversion"], "1.0")
            self.assertEqual(h["ce_id"], hashlib.sha256(body).hexdigest())
            self.assertEqual(h["ce_type"], "com.cloud66.stack.deploy.started")
            self.assertEqual(h["ce_family"], "stack")
            self.assertEqual(h["ce_source"], "/cloud66/stacks/stack-550e8400-e29b-41d4-a716")
            self.assertEqual(h["content-type"], "application/json")
            self.assertEqual(m["value"]["event_type"], "stack.deploy.started")
            self.assertEqual(m["value"]["stack"]["uid"], "stack-550e8400-e29b-41d4-a716")
            self.assertEqual(bridge.stop(), 0)


class ConfigCheckTest(unittest.TestCase):
    def run_check(self, text):
        import subprocess
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(text)
        try:
            return subprocess.run([os.environ["HB_BIN"], "--check-config", "--config", f.name],
                                  capture_output=True, text=True, timeout=30)
        finally:
            os.unlink(f.name)

    def test_sample_config_passes(self):
        import subprocess
        sample = pathlib.Path(os.environ["HB_SOURCE_DIR"]) / "conf" / "hookbridge.conf"
        r = subprocess.run([os.environ["HB_BIN"], "--check-config", "--config", str(sample)],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_bad_kafka_property_names_the_line(self):
        r = self.run_check('kafka = {\n  bootstrap_servers = "x:1";\n  no_such_thing = 1;\n};\n')
        self.assertEqual(r.returncode, 2)
        self.assertIn(":3: kafka.no.such.thing", r.stderr)

    def test_bad_routing_rule_names_the_line(self):
        r = self.run_check('routing = {\n rules = (\n  { match = "a.*"; family = "bad family"; }\n );\n};\n')
        self.assertEqual(r.returncode, 2)
        self.assertIn(":3: routing.rules", r.stderr)

    def test_unknown_option(self):
        r = self.run_check('spool = { dirr = "/tmp"; };\n')
        self.assertEqual(r.returncode, 2)
        self.assertIn(":1: unknown option 'spool.dirr'", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
