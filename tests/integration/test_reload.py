"""Configuration reload (SIGHUP) through the real hookbridge binary against librdkafka's mock
cluster: a good file takes effect at once (secrets, topics, log level, the endpoint set) on the
same listener and kept-alive connections; a bad file is refused with file:line and the reason
while the old configuration stays in force; a changed restart-only option is named and keeps
its running value; and no event accepted around a reload is lost."""
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import hbtest  # noqa: E402
from test_admin import Metrics, parse_metrics  # noqa: E402

TOKEN_A = "reload-token-aaaaaaaaaaaa"
TOKEN_B = "reload-token-bbbbbbbbbbbb"
PATH = hbtest.DEFAULT_WEBHOOK_PATH


def event(tag, n=0):
    return json.dumps({"event_type": "stack.reload.test", "uid": "stack-reload", "git": "g",
                       "environment": "e", "tag": tag, "n": n}).encode()


def scrape(bridge):
    status, _, body = bridge.get("/metrics", admin=True)
    assert status == 200, body
    return Metrics(parse_metrics(body.decode()))


class ReloadTestBase(unittest.TestCase):
    """One mock cluster per class; each test starts its own bridge from config(**groups)."""

    @classmethod
    def setUpClass(cls):
        cls.kafka = hbtest.MockCluster(brokers=1)

    @classmethod
    def tearDownClass(cls):
        cls.kafka.close()

    def setUp(self):
        self.spool = hbtest.make_tmpdir("reload-spool")
        self.addCleanup(hbtest.remove_tmpdir, self.spool)

    def config(self, **groups):
        groups.setdefault("auth", {"tokens": [TOKEN_A]})
        groups.setdefault("log", {"level": "info"})
        return hbtest.make_config(self.kafka, self.spool, **groups)

    def start(self, text):
        bridge = hbtest.Bridge(text, spool_dir=self.spool)
        try:
            bridge.wait_log(lambda l: l.get("component") == "admin" and l.get("msg") ==
                            "listening", 10, what="the admin listener")
        except BaseException:
            bridge.close()
            raise
        self.addCleanup(bridge.close)
        return bridge

    def post(self, bridge, token, tag, **kw):
        return bridge.post(f"{PATH}/{token}", event(tag), **kw)


class GoodReloadTest(ReloadTestBase):
    def test_a_new_token_topic_and_log_level_apply_at_once(self):
        b = self.start(self.config(routing={"topic_prefix": "old."}))
        m0 = scrape(b)
        self.assertEqual(m0.get("hookbridge_reloads_total", result="ok"), 0)
        self.assertEqual(m0.get("hookbridge_config_last_reload_successful"), 1)
        started_at = m0.get("hookbridge_config_last_reload_success_timestamp_seconds")
        self.assertAlmostEqual(started_at, time.time(), delta=60)
        conn = b.connection()
        status, _, data = self.post(b, TOKEN_A, "before", conn=conn)
        self.assertEqual(status, 202, data)
        local = conn.sock.getsockname()
        self.assertEqual(b.find_logs(level="debug"), [], "info level: no debug lines yet")

        line = hbtest.reload(b, self.config(auth={"tokens": [TOKEN_B]},
                                            routing={"topic_prefix": "new."},
                                            log={"level": "debug"}))
        self.assertEqual(line["msg"], "config reloaded", line)
        self.assertEqual(line["file"], str(b.config_path))
        self.assertEqual(set(line["changed"].split(",")),
                         {"log.level", "routing.topic_prefix", "auth.tokens"})
        since = len(b.logs)

        status, headers, data = self.post(b, TOKEN_A, "old-token")
        self.assertEqual(status, 401, data)
        self.assertEqual(json.loads(data)["error"], "invalid_token")
        status, headers, data = self.post(b, TOKEN_B, "after")
        self.assertEqual(status, 202, data)
        # The connection opened before the reload is still the same one, and still served.
        status, _, data = self.post(b, TOKEN_B, "kept-alive", conn=conn)
        self.assertEqual(status, 202, data)
        self.assertIsNotNone(conn.sock)
        self.assertEqual(conn.sock.getsockname(), local)
        conn.close()

        old = {m["value"]["data"]["tag"] for m in hbtest.consume(self.kafka, "old.stack",
                                                                  idle_ms=1000)}
        new = {m["value"]["data"]["tag"] for m in hbtest.consume(self.kafka, "new.stack",
                                                                  count=2)}
        self.assertEqual(old, {"before"})
        self.assertEqual(new, {"after", "kept-alive"})
        # log.level = debug took effect: the requests after the reload are logged at debug.
        self.assertTrue([l for l in b.logs[since:] if l.get("level") == "debug" and
                         l.get("msg") == "request received"])
        m = scrape(b)
        self.assertEqual(m.get("hookbridge_reloads_total", result="ok"), 1)
        self.assertEqual(m.get("hookbridge_reloads_total", result="error"), 0)
        self.assertEqual(m.get("hookbridge_config_last_reload_successful"), 1)
        self.assertGreaterEqual(m.get("hookbridge_config_last_reload_success_timestamp_seconds"),
                                started_at)
        for secret in (TOKEN_A, TOKEN_B):
            self.assertNotIn(secret, "\n".join(b._raw))
        self.assertEqual(b.stop(), 0)

    def test_e_the_endpoint_set_is_replaced(self):
        b = self.start(self.config())
        self.assertEqual(self.post(b, TOKEN_A, "implicit")[0], 202)
        eps = [{"name": "prod", "path": "/hooks/prod", "auth": {"tokens": [TOKEN_B]}},
               {"name": "ci", "path": "/hooks/ci", "auth": {"tokens": []}}]
        line = hbtest.reload(b, self.config(endpoints=eps))
        self.assertEqual(line["msg"], "config reloaded", line)
        self.assertIn("endpoints", line["changed"].split(","))
        reloaded = {l["endpoint"]: l for l in b.find_logs(component="endpoint", msg="reloaded")}
        self.assertEqual(set(reloaded), {"prod", "ci"})
        self.assertEqual(reloaded["ci"]["access_control"], "off")
        status, _, _ = self.post(b, TOKEN_A, "gone")  # the implicit path is no more
        self.assertEqual(status, 404)
        self.assertEqual(b.post(f"/hooks/prod/{TOKEN_B}", event("prod"))[0], 202)
        self.assertEqual(b.post("/hooks/ci", event("ci"))[0], 202)
        m = scrape(b)
        count = lambda ep, st: m.get("hookbridge_http_requests_total", endpoint=ep, status=st)
        self.assertEqual(count("webhook", "202"), 1)  # kept across the reload
        self.assertEqual(count("prod", "202"), 1)
        self.assertEqual(count("ci", "202"), 1)
        self.assertEqual(b.stop(), 0)


class BadReloadTest(ReloadTestBase):
    def check_refused(self, b, text, want_line, want_reason, errors):
        line = hbtest.reload(b, text)
        self.assertEqual(line["msg"], "config reload refused; keeping the running config", line)
        self.assertEqual(line["level"], "error")
        self.assertIn(f"{b.config_path}:{want_line}: ", line["reason"])
        self.assertIn(want_reason, line["reason"])
        # The old configuration stays in force.
        status, _, data = self.post(b, TOKEN_A, "still")
        self.assertEqual(status, 202, data)
        self.assertEqual(self.post(b, TOKEN_B, "new")[0], 401)
        m = scrape(b)
        self.assertEqual(m.get("hookbridge_reloads_total", result="error"), errors)
        self.assertEqual(m.get("hookbridge_reloads_total", result="ok"), 0)
        self.assertEqual(m.get("hookbridge_config_last_reload_successful"), 0)

    def test_b_syntax_error_and_bad_cidr_are_refused(self):
        b = self.start(self.config())
        good = self.config(auth={"tokens": [TOKEN_B]})
        # A syntax error on line 3 of an otherwise good file.
        broken = good.splitlines()
        broken.insert(2, "oops = ;")
        self.check_refused(b, "\n".join(broken) + "\n", 3, "syntax error", 1)
        # A bad CIDR: found by auth.c, with its line.
        bad = self.config(auth={"tokens": [TOKEN_B], "allow_from": ["10.0.0.0/33"]})
        cidr_line = next(i for i, l in enumerate(bad.splitlines(), 1) if "10.0.0.0/33" in l)
        self.check_refused(b, bad, cidr_line, "auth.allow_from[0]", 2)
        # A good file afterwards applies.
        line = hbtest.reload(b, good)
        self.assertEqual(line["msg"], "config reloaded", line)
        self.assertEqual(self.post(b, TOKEN_B, "fixed")[0], 202)
        self.assertEqual(scrape(b).get("hookbridge_config_last_reload_successful"), 1)
        self.assertEqual(b.stop(), 0)


class RestartOnlyTest(ReloadTestBase):
    def test_c_restart_only_changes_are_named_and_kept(self):
        b = self.start(self.config(spool={"max_bytes": 2 * 1024 * 1024}))
        self.assertEqual(scrape(b).get("hookbridge_spool_max_bytes"), 2 * 1024 * 1024)
        since = len(b.logs)
        line = hbtest.reload(b, self.config(spool={"max_bytes": 4 * 1024 * 1024},
                                            kafka={"linger.ms": 17},
                                            auth={"tokens": [TOKEN_B]}))
        self.assertEqual(line["msg"], "config reloaded", line)
        warned = [l for l in b.logs[since:]
                  if l.get("msg") == "changed in the file, needs a restart; keeping the "
                                     "running value"]
        self.assertEqual(sorted(l["option"] for l in warned), ["kafka.linger.ms",
                                                               "spool.max_bytes"])
        self.assertTrue(all(l["level"] == "warn" for l in warned))
        # The running value stays; the reloadable part of the same file applies.
        self.assertEqual(scrape(b).get("hookbridge_spool_max_bytes"), 2 * 1024 * 1024)
        self.assertEqual(self.post(b, TOKEN_B, "b")[0], 202)
        # Reloading the same file again: the restart-only difference is reported again (the
        # running value still differs), nothing reloadable changed.
        since = len(b.logs)
        line = hbtest.reload(b)
        self.assertEqual(line["changed"], "")
        self.assertEqual(len([l for l in b.logs[since:] if l.get("option") == "spool.max_bytes"]),
                         1)
        self.assertEqual(b.stop(), 0)


class InFlightTest(ReloadTestBase):
    def test_d_events_in_flight_during_reloads_are_not_lost(self):
        # Two alternating files: the endpoint is renamed and its source changes, so each
        # reload frees the endpoint set that requests in flight came through.
        eps = [{"name": "renamed", "path": PATH}]
        files = [self.config(envelope={"source": "/one"}, log={"level": "debug"}),
                 self.config(envelope={"source": "/two"}, endpoints=eps, log={"level": "debug"})]
        b = self.start(files[0])
        self.kafka.rtt(1, 50)  # acks take a while: requests are in flight when HUP lands
        self.addCleanup(self.kafka.rtt, 1, 0)
        accepted, statuses, lock, stop = [], [], threading.Lock(), threading.Event()
        counter = iter(range(1_000_000))

        def worker():
            conn = b.connection(timeout=30)
            while not stop.is_set():
                with lock:
                    n = next(counter)
                status, _, _ = b.post(f"{PATH}/{TOKEN_A}", event("burst", n), conn=conn,
                                      timeout=30)
                with lock:
                    statuses.append(status)
                    if status == 202:
                        accepted.append(n)
            conn.close()

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            hbtest.wait_until(lambda: len(accepted) >= 10, 30, "the burst to start")
            for i in range(6):
                before = len(accepted)
                line = hbtest.reload(b, files[(i + 1) % 2])
                self.assertEqual(line["msg"], "config reloaded", line)
                hbtest.wait_until(lambda: len(accepted) > before + 3, 30, "events after a reload")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        self.assertEqual(set(statuses), {202})
        msgs = hbtest.consume(self.kafka, "cloud66.stack", idle_ms=2000, timeout_ms=60000)
        landed = {m["value"]["data"]["n"] for m in msgs if m["value"]["data"]["tag"] == "burst"}
        self.assertEqual(sorted(set(accepted) - landed), [], "accepted events missing")
        sources = {m["value"]["source"].split("/stacks/")[0] for m in msgs}
        self.assertEqual(sources, {"/one", "/two"})
        # Some requests were received before a reload and answered after it.
        received, straddled = {}, 0
        for i, l in enumerate(b.logs):
            if l.get("msg") == "request received":
                received[l["request_id"]] = i
            elif l.get("msg") == "request accepted" and l["request_id"] in received:
                straddled += any(l2.get("msg") == "config reloaded"
                                 for l2 in b.logs[received[l["request_id"]]:i])
        self.assertGreater(straddled, 0, "no request was in flight across a reload")
        m = scrape(b)
        self.assertEqual(m.get("hookbridge_reloads_total", result="ok"), 6)
        self.assertEqual(m.total("hookbridge_http_requests_total", status="202"), len(accepted))
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
