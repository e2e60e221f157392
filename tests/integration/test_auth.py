"""Access control through the real hookbridge binary against librdkafka's mock cluster: each
mode (token in path and query, HTTP Basic, source allowlist with X-Forwarded-For from trusted
proxies only, Standard Webhooks and GitHub signatures) lets the right request through and
turns the wrong one away with 401/403 and the JSON error, the daemon keeps answering, no
secret reaches the log, and nothing denied reaches Kafka or the spool."""
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import hbtest  # noqa: E402

TOKEN = "integ-token-5a7c1e9f3b"
OLD_TOKEN = "integ-token-old-000000"
BASIC = "cloud66:s3cret pass"
SW_KEY = b"integration test key, 32 bytes!!"
SW_SECRET = "whsec_" + base64.b64encode(SW_KEY).decode()
GH_SECRET = "gh integ secret"
SECRETS = [TOKEN, OLD_TOKEN, "s3cret pass", SW_SECRET, base64.b64encode(SW_KEY).decode(),
           GH_SECRET]
TOPIC = "cloud66.stack"


def body_for(tag):
    return json.dumps({"event_type": "stack.created", "uid": "stack-auth", "tag": tag}).encode()


def sw_headers(body, key=SW_KEY, ts=None, msg_id="msg_integ_1"):
    ts = str(int(time.time()) if ts is None else ts)
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": ts,
            "webhook-signature": "v1," + base64.b64encode(mac).decode()}


def gh_headers(body, secret=GH_SECRET):
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": "sha256=" + mac}


def basic(userpass):
    return {"Authorization": "Basic " + base64.b64encode(userpass.encode()).decode()}


class AuthModesTest(unittest.TestCase):
    """One bridge per mode; in each, the allowed requests land and the denied ones do not."""

    @classmethod
    def setUpClass(cls):
        cls.kafka = hbtest.MockCluster(brokers=1, topics=[TOPIC + ":1"])

    @classmethod
    def tearDownClass(cls):
        cls.kafka.close()

    def run_mode(self, auth, allowed, denied, path_of=None):
        """allowed: [(name, post kwargs)]; denied: [(name, post kwargs, status, error)].
        Each request carries a unique tag; checks every allowed tag lands once, no denied
        tag lands, and the spool holds nothing."""
        with hbtest.Bridge(bootstrap=self.kafka, auth=auth) as bridge:
            want_tags = set()
            conn = bridge.connection()
            for name, kw in allowed:
                with self.subTest(allowed=name):
                    tag = f"{id(self)}-{name}-{time.monotonic_ns()}"
                    kw = dict(kw)
                    body = kw.pop("body_fn", body_for)(tag)
                    headers = kw.pop("headers_fn", lambda b: {})(body)
                    headers.update(kw.pop("headers", {}))
                    status, _, data = bridge.post(body=body, headers=headers, **kw)
                    self.assertEqual(status, 202, f"{name}: {data}")
                    want_tags.add(tag)
            for name, kw, want_status, want_error in denied:
                with self.subTest(denied=name):
                    tag = f"denied-{name}-{time.monotonic_ns()}"
                    kw = dict(kw)
                    body = body_for(tag)
                    headers = kw.pop("headers_fn", lambda b: {})(body)
                    headers.update(kw.pop("headers", {}))
                    status, hdrs, data = bridge.post(body=body, headers=headers, **kw)
                    self.assertEqual(status, want_status, f"{name}: {data}")
                    self.assertEqual(hdrs.get("content-type"), "application/json")
                    answer = json.loads(data)
                    self.assertEqual(answer["error"], want_error, name)
                    self.assertTrue(answer["detail"])
                    for secret in SECRETS:
                        self.assertNotIn(secret, answer["detail"])
                    if want_error in ("missing_credentials", "invalid_credentials"):
                        self.assertIn("Basic", hdrs.get("www-authenticate", ""))
                    # The daemon still answers, on a kept-alive connection too.
                    status, _, _ = bridge.post(path="/healthz", method="GET", conn=conn)
                    self.assertEqual(status, 200)
            conn.close()
            msgs = hbtest.consume(self.kafka, TOPIC, idle_ms=1500, timeout_ms=20000)
            tags = [m["value"]["data"].get("tag") for m in msgs]
            self.assertFalse([t for t in tags if t and t.startswith("denied-")],
                             "a denied request reached Kafka")
            for tag in want_tags:
                self.assertEqual(tags.count(tag), 1, f"{tag} should land once")
            self.assertEqual(bridge.stop(), 0)
            inspect = subprocess.run([os.environ["HB_BIN"], "spool", "inspect", "-v",
                                      str(bridge.spool_dir)], capture_output=True, text=True,
                                     timeout=30)
            self.assertEqual(inspect.returncode, 0, inspect.stdout + inspect.stderr)
            self.assertRegex(inspect.stdout, r"summary segments=\d+ records=0 ")
            self.assertNotIn(" record seq=", inspect.stdout)
            denials = [l for l in bridge.logs if l.get("msg") == "request denied by access control"]
            # Counted and logged are the access-control denials, not the 404 or 405.
            self.assertEqual(len(denials), len([d for d in denied if d[2] in (401, 403)]))
            log_text = "\n".join(bridge._raw)
            for secret in SECRETS:
                self.assertNotIn(secret, log_text, "a secret reached the log")

    def test_token_in_path_and_query_with_rotation(self):
        path = hbtest.DEFAULT_WEBHOOK_PATH
        self.run_mode(
            {"tokens": [TOKEN, OLD_TOKEN]},
            allowed=[("path", dict(path=f"{path}/{TOKEN}")),
                     ("old token", dict(path=f"{path}/{OLD_TOKEN}")),
                     ("query", dict(path=f"{path}?token={TOKEN}"))],
            denied=[("no token", dict(path=path), 401, "missing_token"),
                    ("wrong path token", dict(path=f"{path}/{TOKEN}x"), 401, "invalid_token"),
                    ("wrong query token", dict(path=f"{path}?token=nope"), 401, "invalid_token"),
                    ("deeper path", dict(path=f"{path}/{TOKEN}/x"), 404, "not_found"),
                    ("GET with token", dict(path=f"{path}/{TOKEN}", method="GET"), 405,
                     "method_not_allowed")])

    def test_basic(self):
        self.run_mode(
            {"basic_users": [BASIC]},
            allowed=[("basic", dict(headers=basic(BASIC)))],
            denied=[("none", dict(), 401, "missing_credentials"),
                    ("wrong password", dict(headers=basic("cloud66:nope")), 401,
                     "invalid_credentials"),
                    ("bearer", dict(headers={"Authorization": "Bearer x"}), 401,
                     "missing_credentials")])

    def test_allowlist_and_forwarded_for(self):
        # The test client is 127.0.0.1: allowed directly; a forged X-Forwarded-For from an
        # untrusted peer is ignored. With 127.0.0.1 as a trusted proxy, X-Forwarded-For
        # decides.
        self.run_mode(
            {"allow_from": ["127.0.0.0/8", "2001:db8::/32"]},
            allowed=[("loopback", dict()),
                     ("forged XFF ignored", dict(headers={"X-Forwarded-For": "192.0.2.1"}))],
            denied=[])
        self.run_mode(
            {"allow_from": ["192.0.2.0/24", "2001:db8::/32"], "trusted_proxies": ["127.0.0.1"]},
            allowed=[("via proxy", dict(headers={"X-Forwarded-For": "192.0.2.9"})),
                     ("v6 via proxy", dict(headers={"X-Forwarded-For": "9.9.9.9, 2001:db8::5"}))],
            denied=[("proxy only", dict(), 403, "forbidden_source"),
                    ("client spoofs left", dict(headers={"X-Forwarded-For": "192.0.2.9, 198.51.100.1"}),
                     403, "forbidden_source"),
                    ("garbage", dict(headers={"X-Forwarded-For": "nonsense"}), 403,
                     "forbidden_source")])

    def test_standard_webhooks(self):
        now = int(time.time())
        self.run_mode(
            {"standard_webhooks_secrets": ["whsec_" + base64.b64encode(b"old key").decode(),
                                           SW_SECRET]},
            allowed=[("signed", dict(headers_fn=sw_headers))],
            denied=[("unsigned", dict(), 401, "missing_signature"),
                    ("other key", dict(headers_fn=lambda b: sw_headers(b, key=b"other")), 401,
                     "invalid_signature"),
                    ("stale", dict(headers_fn=lambda b: sw_headers(b, ts=now - 3600)), 401,
                     "stale_signature"),
                    ("body changed", dict(headers_fn=lambda b: sw_headers(b + b" ")), 401,
                     "invalid_signature")])

    def test_github(self):
        self.run_mode(
            {"github_secrets": [GH_SECRET]},
            allowed=[("signed", dict(headers_fn=gh_headers))],
            denied=[("unsigned", dict(), 401, "missing_signature"),
                    ("wrong secret", dict(headers_fn=lambda b: gh_headers(b, "x")), 401,
                     "invalid_signature"),
                    ("sha1 form", dict(headers={"X-Hub-Signature-256": "sha1=00"}), 401,
                     "invalid_signature")])

    def test_modes_combine(self):
        path = hbtest.DEFAULT_WEBHOOK_PATH
        both = lambda b: {**basic(BASIC)}  # noqa: E731
        self.run_mode(
            {"tokens": [TOKEN], "basic_users": [BASIC], "allow_from": ["127.0.0.1/32"]},
            allowed=[("all three", dict(path=f"{path}/{TOKEN}", headers_fn=both))],
            denied=[("token only", dict(path=f"{path}/{TOKEN}"), 401, "missing_credentials"),
                    ("basic only", dict(headers_fn=both), 401, "missing_token")])

    def test_auth_runs_before_content_checks(self):
        # A stranger gets 401, not 415 or 400, whatever it sends.
        with hbtest.Bridge(bootstrap=self.kafka, auth={"tokens": [TOKEN]}) as bridge:
            status, _, data = bridge.post(body=b"not json",
                                          headers={"Content-Type": "text/plain"})
            self.assertEqual(status, 401, data)
            self.assertEqual(bridge.stop(), 0)


class AuthConfigTest(unittest.TestCase):
    def check(self, text):
        path = hbtest.make_tmpdir("authconf") / "c.conf"
        try:
            path.write_text(text)
            return subprocess.run([os.environ["HB_BIN"], "--check-config", "--config", str(path)],
                                  capture_output=True, text=True, timeout=30)
        finally:
            hbtest.remove_tmpdir(path.parent)

    def test_bad_entries_name_the_line_without_the_secret(self):
        r = self.check('auth = {\n  allow_from = ( "10.0.0.0/8",\n    "10.0.0.0/40" );\n};\n')
        self.assertEqual(r.returncode, 2)
        self.assertIn(":3: auth.allow_from[1]", r.stderr)
        r = self.check('auth = {\n  standard_webhooks_secrets = ( "whsec_%%%%secretish" );\n};\n')
        self.assertEqual(r.returncode, 2)
        self.assertIn(":2: auth.standard_webhooks_secrets[0]", r.stderr)
        self.assertNotIn("secretish", r.stderr)
        r = self.check('auth = {\n  tokens = ( "shorttok" );\n};\n')
        self.assertEqual(r.returncode, 2)
        self.assertIn(":2: auth.tokens[0]", r.stderr)
        self.assertNotIn("shorttok", r.stderr)
        self.assertTrue(re.search(r"auth.tokens\[0\].*16", r.stderr), r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
