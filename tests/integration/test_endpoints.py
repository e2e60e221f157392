"""Several webhook endpoints and the request id, through the real hookbridge binary against
librdkafka's mock cluster: each endpoint takes only its own credentials, publishes with its own
source, binding and topics, inherits what it does not set, and is counted under its own name;
every request to an endpoint gets an X-Request-Id that is also the record's hb_request_id
header (on the live path and through the spool) and is named in the request's log lines."""
import json
import os
import pathlib
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import hbtest  # noqa: E402
from test_admin import Metrics, parse_metrics  # noqa: E402

TOKEN_TOP = "top-token-0123456789"
TOKEN_PROD = "prod-token-0123456789"
TOKEN_STG = "stg-token-0123456789"
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
TOPICS = ["prod.stack:1", "prod-backups:1", "staging.stack:1", "cloud66.stack:1"]

ENDPOINTS = [
    {"name": "prod", "path": "/webhooks/prod",
     "auth": {"tokens": [TOKEN_PROD]},
     "envelope": {"source": "/cloud66/prod"},
     "routing": {"topic_prefix": "prod.", "topics": {"backup": "prod-backups"}}},
    {"name": "staging", "path": "/webhooks/staging",
     "auth": {"tokens": [TOKEN_STG]},
     "envelope": {"source": "/cloud66/staging", "mode": "binary"},
     "routing": {"topic_prefix": "staging."}},
    # Sets only its path: the top level's token, source and topics are its own.
    {"name": "legacy", "path": "/webhooks/cloud66"},
]


def stack_event(tag, event_type="stack.created"):
    # A flattened stack, so the source gets "/stacks/<uid>".
    return json.dumps({"event_type": event_type, "uid": f"stack-{tag}", "git": "g",
                       "environment": "e", "tag": tag}).encode()


def scrape(bridge):
    status, _, body = bridge.get("/metrics", admin=True)
    assert status == 200, body
    return Metrics(parse_metrics(body.decode()))


def by_tag(msgs):
    out = {}
    for m in msgs:
        v = m["value"]
        data = v.get("data", v)  # structured: the envelope; binary: the data alone
        out[data["tag"]] = m
    return out


class EndpointsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kafka = hbtest.MockCluster(brokers=1, topics=TOPICS)
        try:
            cls.bridge = hbtest.Bridge(bootstrap=cls.kafka, auth={"tokens": [TOKEN_TOP]},
                                       endpoints=ENDPOINTS)
        except BaseException:
            cls.kafka.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            assert cls.bridge.stop() == 0
        finally:
            cls.bridge.close()
            cls.kafka.close()

    def post(self, path, tag, **kw):
        return self.bridge.post(path, kw.pop("body", None) or stack_event(tag), **kw)

    def test_1_each_endpoint_takes_only_its_own_token_and_uses_its_own_settings(self):
        b = self.bridge
        accepted = {
            "p1": self.post(f"/webhooks/prod/{TOKEN_PROD}", "p1"),
            "p2": self.post(f"/webhooks/prod?token={TOKEN_PROD}", "p2"),
            "pb": self.post(f"/webhooks/prod/{TOKEN_PROD}", "pb",
                            body=json.dumps({"event_type": "backup.done", "tag": "pb"}).encode()),
            "s1": self.post(f"/webhooks/staging/{TOKEN_STG}", "s1"),
            "l1": self.post(f"/webhooks/cloud66/{TOKEN_TOP}", "l1"),
        }
        for tag, (status, headers, data) in accepted.items():
            self.assertEqual(status, 202, f"{tag}: {data}")
            self.assertRegex(headers.get("x-request-id", ""), REQUEST_ID)
        denied = [
            (f"/webhooks/prod/{TOKEN_STG}", "invalid_token"),
            (f"/webhooks/prod/{TOKEN_TOP}", "invalid_token"),
            ("/webhooks/prod", "missing_token"),
            (f"/webhooks/staging/{TOKEN_PROD}", "invalid_token"),
            (f"/webhooks/cloud66/{TOKEN_PROD}", "invalid_token"),
        ]
        for path, error in denied:
            status, headers, data = self.post(path, "denied")
            self.assertEqual(status, 401, f"{path}: {data}")
            self.assertEqual(json.loads(data)["error"], error, path)
            self.assertRegex(headers.get("x-request-id", ""), REQUEST_ID)
        # Only the listed paths serve webhooks.
        status, headers, data = self.post("/webhooks/other", "x")
        self.assertEqual(status, 404, data)
        self.assertNotIn("x-request-id", headers)
        status, _, data = self.post(f"/webhooks/staging/{TOKEN_STG}/x", "x")
        self.assertEqual(status, 404, data)
        self.assertNotIn(TOKEN_STG, data.decode())

        prod = by_tag(hbtest.consume(self.kafka, ["prod.stack", "prod-backups"], count=3))
        self.assertEqual(prod["p1"]["topic"], "prod.stack")
        self.assertEqual(prod["p2"]["topic"], "prod.stack")
        self.assertEqual(prod["pb"]["topic"], "prod-backups")
        self.assertEqual(prod["p1"]["value"]["source"], "/cloud66/prod/stacks/stack-p1")
        self.assertEqual(prod["pb"]["value"]["source"], "/cloud66/prod")
        stg = by_tag(hbtest.consume(self.kafka, "staging.stack", count=1))
        h = stg["s1"]["headers"]  # binary mode: the attributes are headers
        self.assertEqual(h["ce_source"], "/cloud66/staging/stacks/stack-s1")
        self.assertEqual(h["content-type"], "application/json")
        legacy = by_tag(hbtest.consume(self.kafka, "cloud66.stack", count=1))
        self.assertEqual(legacy["l1"]["value"]["source"], "/cloud66/stacks/stack-l1")
        # Nothing denied was published.
        everything = hbtest.consume(self.kafka, [t.split(":")[0] for t in TOPICS], idle_ms=1000)
        self.assertNotIn("denied", by_tag(everything))
        self.assertEqual(len(everything), 5)

        m = scrape(b)
        count = lambda ep, st: m.get("hookbridge_http_requests_total", endpoint=ep, status=st)
        self.assertEqual(count("prod", "202"), 3)
        self.assertEqual(count("prod", "401"), 3)
        self.assertEqual(count("staging", "202"), 1)
        self.assertEqual(count("staging", "401"), 1)
        self.assertEqual(count("legacy", "202"), 1)
        self.assertEqual(count("legacy", "401"), 1)
        self.assertEqual(count("other", "404"), 2)
        self.assertEqual(m.total("hookbridge_http_requests_total", endpoint="webhook"), 0)

        # The start names every endpoint, and each denial names its endpoint.
        serving = {l["endpoint"]: l for l in b.find_logs(component="endpoint", msg="serving")}
        self.assertEqual(set(serving), {"prod", "staging", "legacy"})
        self.assertEqual(serving["staging"]["mode"], "binary")
        self.assertEqual(serving["legacy"]["source"], "/cloud66")
        denials = b.find_logs(msg="request denied by access control")
        self.assertEqual(sorted(l["endpoint"] for l in denials),
                         ["legacy", "prod", "prod", "prod", "staging"])
        for secret in (TOKEN_TOP, TOKEN_PROD, TOKEN_STG):
            self.assertNotIn(secret, "\n".join(b._raw))

    def test_2_request_id_is_in_the_answer_the_record_and_the_logs(self):
        b = self.bridge
        ids = {}
        for tag in ("r1", "r2"):
            status, headers, data = self.post(f"/webhooks/prod/{TOKEN_PROD}", tag)
            self.assertEqual(status, 202, data)
            ids[tag] = headers["x-request-id"]
            self.assertRegex(ids[tag], REQUEST_ID)
        self.assertNotEqual(ids["r1"], ids["r2"])
        # Errors carry one too, and it is in the refusal's log line.
        status, headers, data = self.post(f"/webhooks/prod/{TOKEN_PROD}", "bad",
                                          headers={"Content-Type": "text/plain"})
        self.assertEqual(status, 415, data)
        bad_id = headers["x-request-id"]
        self.assertNotIn(bad_id, ids.values())
        status, headers, _ = b.post(f"/webhooks/prod/{TOKEN_PROD}", method="GET")
        self.assertEqual(status, 405)
        self.assertRegex(headers.get("x-request-id", ""), REQUEST_ID)

        msgs = by_tag(hbtest.consume(self.kafka, "prod.stack", idle_ms=1000))
        for tag, rid in ids.items():
            self.assertEqual(msgs[tag]["headers"].get("hb_request_id"), rid, tag)
            lines = [l for l in b.logs if l.get("request_id") == rid]
            self.assertEqual({l["msg"] for l in lines}, {"request received", "request accepted"},
                             lines)
            self.assertTrue(all(l["endpoint"] == "prod" for l in lines))
        refused = b.find_logs(request_id=bad_id)
        self.assertEqual([l["msg"] for l in refused], ["request received", "request refused"])
        self.assertEqual(refused[-1]["error"], "unsupported_media_type")
        # A binary-mode record carries it as well, next to the ce_ headers.
        status, headers, _ = self.post(f"/webhooks/staging/{TOKEN_STG}", "r3")
        self.assertEqual(status, 202)
        msgs = by_tag(hbtest.consume(self.kafka, "staging.stack", idle_ms=1000))
        self.assertEqual(msgs["r3"]["headers"]["hb_request_id"], headers["x-request-id"])
        # The consumer contract documents the header, with the id's shape.
        asyncapi = (pathlib.Path(os.environ["HB_SOURCE_DIR"]) / "schema" /
                    "asyncapi.yaml").read_text()
        self.assertIn("hb_request_id:", asyncapi)
        self.assertIn('pattern: "^[0-9a-f]{32}$"', asyncapi)


class CheckConfigTest(unittest.TestCase):
    """--check-config builds every endpoint: an entry's access control and routing are checked,
    and the error names the line and the endpoint."""

    def check(self, text):
        tmp = hbtest.make_tmpdir("check")
        self.addCleanup(hbtest.remove_tmpdir, tmp)
        path = tmp / "hookbridge.conf"
        path.write_text(text)
        return subprocess.run([hbtest.env_path("HB_BIN"), "--check-config", "--config",
                               str(path)], capture_output=True, text=True, timeout=30)

    def test_each_endpoint_is_checked(self):
        good = ('endpoints = (\n  { name = "a"; path = "/a"; },\n'
                '  { name = "b"; path = "/b";\n'
                '    auth = { allow_from = ( "10.0.0.0/8" ); }; }\n);\n')
        r = self.check(good)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.check(good.replace("10.0.0.0/8", "10.0.0.0/33"))
        self.assertEqual(r.returncode, 2)
        self.assertIn(":4: auth.allow_from[0]", r.stderr)
        self.assertIn("(in endpoint 'b')", r.stderr)
        r = self.check('endpoints = (\n  { name = "a"; path = "/a";\n'
                       '    routing = { rules = ( { match = "x.*"; family = "no good"; } ); };'
                       ' }\n);\n')
        self.assertEqual(r.returncode, 2)
        self.assertIn(":3: routing.rules", r.stderr)
        r = self.check('endpoints = (\n  { name = "a"; path = "/a";\n'
                       '    spool = { dir = "/x"; }; }\n);\n')
        self.assertEqual(r.returncode, 2)
        self.assertIn(":3: endpoint 'a': spool.dir cannot be set per endpoint", r.stderr)


class SpooledRequestIdTest(unittest.TestCase):
    def test_request_id_survives_the_spool(self):
        with hbtest.MockCluster(brokers=1, topics=["cloud66.stack:1"]) as kafka, \
                hbtest.Bridge(bootstrap=kafka, producer={"ack_timeout_ms": 300},
                              kafka={"message.timeout.ms": 2000}) as bridge:
            status, _, data = bridge.post(body=stack_event("warm"))
            self.assertEqual(status, 202, data)
            kafka.down()
            status, headers, data = bridge.post(body=stack_event("spooled"), timeout=30)
            self.assertEqual(status, 202, data)
            rid = headers["x-request-id"]
            self.assertEqual(scrape(bridge).total("hookbridge_events_total", outcome="spooled"),
                             1)
            since = len(bridge.logs)
            kafka.up()
            bridge.wait_log(lambda l: l.get("msg") == "spool drained", 60, since=since)
            msgs = by_tag(hbtest.consume(kafka, "cloud66.stack", idle_ms=1500))
            self.assertEqual(msgs["spooled"]["headers"]["hb_request_id"], rid)
            self.assertEqual(bridge.stop(), 0)

    def test_dispatch_log_lines_about_one_event_name_its_request(self):
        # A live delivery that fails (the event is then spooled), and an event the spool has no
        # room for: each log line names the request, as the HTTP lines do.
        with hbtest.MockCluster(brokers=1, topics=["cloud66.stack:1"]) as kafka, \
                hbtest.Bridge(bootstrap=kafka, producer={"ack_timeout_ms": 20000},
                              spool={"max_bytes": 1048576, "min_free_bytes": 0},
                              kafka={"message.timeout.ms": 1000}) as bridge:
            status, _, data = bridge.post(body=stack_event("warm"))
            self.assertEqual(status, 202, data)
            kafka.rtt("all", 5000)  # slower than message.timeout.ms: the delivery fails
            status, headers, data = bridge.post(body=stack_event("failed"), timeout=30)
            self.assertEqual(status, 202, data)
            # The daemon logs before it answers, but our log reader may not have read the line
            # yet when the answer arrives: wait for it, then check there is only the one.
            bridge.wait_log(lambda l: l.get("msg") == "delivery failed: event spooled", 10)
            failed = bridge.find_logs(msg="delivery failed: event spooled")
            self.assertEqual([l.get("request_id") for l in failed], [headers["x-request-id"]])
            # Kafka counts as down now: events go to the spool, which holds one of these.
            big = json.dumps({"event_type": "stack.big", "uid": "s", "pad": "q" * 700000})
            answers = [bridge.post(body=big.encode(), timeout=30) for _ in range(2)]
            self.assertEqual([a[0] for a in answers], [202, 503], answers[1][2])
            bridge.wait_log(lambda l: l.get("msg") == "cannot spool event", 10)
            refused = bridge.find_logs(msg="cannot spool event")
            self.assertEqual([l.get("request_id") for l in refused],
                             [answers[1][1]["x-request-id"]])
            self.assertEqual(bridge.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
