"""The admin listener through the real hookbridge binary against librdkafka's mock cluster:
/healthz, /readyz and /metrics answer on their own port (and not on the webhook port), and the
metrics move as they should through a burst of webhooks, a Kafka outage that sends events to the
spool, the drain once Kafka is back, and a spool that is full."""
import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import hbtest  # noqa: E402

TOPICS = ["cloud66.application:1", "cloud66.stack:1", "cloud66.backup:1"]
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels)): value} from Prometheus text format; checks every sample's
    metric has HELP and TYPE lines before it."""
    samples, typed, helped = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split(" ", 3)[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            typed[name] = kind
            continue
        if not line:
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError(f"not a sample line: {line!r}")
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        family = name
        if family not in typed:
            family = re.sub(r"_(bucket|sum|count)$", "", name)
        if family not in typed or family not in helped:
            raise AssertionError(f"{name} has no HELP/TYPE line before it")
        key = (name, frozenset(LABEL.findall(labels)))
        if key in samples:
            raise AssertionError(f"duplicate sample {line!r}")
        samples[key] = float(value)
    return samples


class Metrics:
    def __init__(self, samples):
        self.samples = samples

    def get(self, name, **labels):
        """The value of one sample (0 when absent: counters start at zero unseen)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name, **labels):
        """Sum over the samples of name whose labels include the given ones."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def has(self, name):
        return any(n == name for n, _ in self.samples)


def event(i, family="stack"):
    return json.dumps({"event_type": f"{family}.admin.test", "uid": f"admin-{family}",
                       "n": i}).encode()


def start(cluster, **overrides):
    bridge = hbtest.Bridge(bootstrap=cluster, **overrides)
    try:
        # The admin listener is bound right after the webhook listener.
        bridge.wait_log(lambda l: l.get("component") == "admin" and l.get("msg") == "listening",
                        10, what="the admin listener")
    except BaseException:
        bridge.close()
        raise
    return bridge


class AdminTestBase(unittest.TestCase):
    def scrape(self, bridge=None):
        bridge = bridge or self.bridge
        status, headers, body = bridge.get("/metrics", admin=True)
        self.assertEqual(status, 200, body)
        self.assertTrue(headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
                        headers)
        return Metrics(parse_metrics(body.decode("utf-8")))

    def readyz(self, bridge=None):
        status, _, body = (bridge or self.bridge).get("/readyz", admin=True)
        return status, json.loads(body)

    def wait_metrics(self, predicate, timeout, what, bridge=None):
        """Scrapes until predicate(metrics) holds; returns those metrics."""
        return hbtest.wait_until(lambda: (lambda m: m if predicate(m) else None)(
            self.scrape(bridge)), timeout, what)


class AdminTest(AdminTestBase):
    @classmethod
    def setUpClass(cls):
        cls.kafka = hbtest.MockCluster(brokers=3, topics=TOPICS)
        try:
            cls.bridge = start(cls.kafka, kafka={"statistics.interval.ms": 200})
        except BaseException:
            cls.kafka.close()
            raise

    @classmethod
    def tearDownClass(cls):
        code = cls.bridge.stop()
        cls.bridge.close()
        cls.kafka.close()
        assert code == 0, f"hookbridge exited {code} on SIGTERM"

    def test_1_admin_port_is_its_own(self):
        self.assertNotEqual(self.bridge.admin_port, self.bridge.port)
        status, _, body = self.bridge.get("/healthz", admin=True)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"status": "ok"})
        for path in ("/metrics", "/readyz"):
            status, _, body = self.bridge.get(path)
            self.assertEqual(status, 404, f"{path} served on the webhook port: {body!r}")
            self.assertEqual(json.loads(body)["error"], "not_found")
        # And webhooks are not taken on the admin port.
        status, _, body = self.bridge.post(self.bridge.path, event(0), admin=True)
        self.assertEqual(status, 404, body)
        status, headers, body = self.bridge.post("/metrics", b"{}", method="POST", admin=True)
        self.assertEqual(status, 405, body)
        self.assertEqual(json.loads(body)["error"], "method_not_allowed")
        self.assertIn("GET", headers.get("allow", ""))

    def test_2_readyz_with_brokers_up(self):
        status, body = self.readyz()
        self.assertEqual(status, 200, body)
        self.assertEqual(body["ready"], True)
        self.assertEqual(body["kafka"], "up")
        self.assertEqual(body["spool"], "ok")
        self.assertIsInstance(body["reason"], str)

    def test_3_burst_moves_the_counters(self):
        n = 25
        # Warm the producer up (metadata), so every event of the burst goes the live path.
        status, _, body = self.bridge.post(body=event(-1))
        self.assertEqual(status, 202, body)
        before = self.scrape()
        conn = self.bridge.connection()
        for i in range(n):
            status, _, body = self.bridge.post(body=event(i), conn=conn)
            self.assertEqual(status, 202, body)
        conn.close()
        after = self.scrape()

        def rose(name, **labels):
            return after.get(name, **labels) - before.get(name, **labels)

        self.assertEqual(rose("hookbridge_http_requests_total", endpoint="webhook",
                              status="202"), n)
        self.assertEqual(rose("hookbridge_events_total", topic="cloud66.stack",
                              outcome="published"), n)
        self.assertEqual(rose("hookbridge_events_total", topic="cloud66.stack",
                              outcome="spooled"), 0)
        self.assertEqual(rose("hookbridge_event_ack_seconds_count"), n)
        self.assertEqual(rose("hookbridge_event_ack_seconds_bucket", le="+Inf"), n)
        self.assertGreater(after.get("hookbridge_event_ack_seconds_sum"), 0)
        buckets = sorted(((float(dict(ls)["le"]), v) for (name, ls), v in after.samples.items()
                          if name == "hookbridge_event_ack_seconds_bucket"))
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets),
                         "histogram buckets are cumulative")
        self.assertEqual(after.get("hookbridge_kafka_up"), 1)
        self.assertEqual(after.get("hookbridge_spool_records"), 0)
        build = [(dict(ls), v) for (name, ls), v in after.samples.items()
                 if name == "hookbridge_build_info"]
        self.assertEqual(len(build), 1, build)
        self.assertRegex(build[0][0].get("version", ""), r"^\d+\.\d+\.\d+")
        self.assertEqual(build[0][1], 1)
        for name in ("hookbridge_kafka_queue_depth", "hookbridge_spool_bytes",
                     "hookbridge_spool_oldest_age_seconds", "hookbridge_spool_drained_total",
                     "hookbridge_spool_quarantined_total", "hookbridge_spool_duplicates_total",
                     "hookbridge_spool_syncs_total", "hookbridge_kafka_inflight",
                     "hookbridge_reloads_total"):
            self.assertTrue(after.has(name), name)
        # Refused requests are counted by status too.
        status, _, _ = self.bridge.post(body=b"[1]")
        self.assertEqual(status, 400)
        self.assertEqual(self.scrape().get("hookbridge_http_requests_total", endpoint="webhook",
                                           status="400") -
                         after.get("hookbridge_http_requests_total", endpoint="webhook",
                                   status="400"), 1)

    def test_4_broker_states_from_librdkafka_statistics(self):
        m = self.wait_metrics(
            lambda m: m.total("hookbridge_kafka_broker_state", state="UP") >= 1, 15,
            "a broker in state UP")
        brokers = {dict(ls)["broker"] for (name, ls), _ in m.samples.items()
                   if name == "hookbridge_kafka_broker_state"}
        self.assertTrue(brokers)
        self.assertFalse(any("internal" in b for b in brokers), brokers)


class OutageTest(AdminTestBase):
    def test_outage_spools_then_drains(self):
        m_events = 8
        with hbtest.MockCluster(brokers=3, topics=TOPICS) as kafka, \
                start(kafka, producer={"ack_timeout_ms": 300}) as bridge:
            self.bridge = bridge
            status, _, body = bridge.post(body=event(-1, "application"))
            self.assertEqual(status, 202, body)
            # Up and empty before the outage (the warm-up may itself have gone via the spool).
            self.wait_metrics(lambda m: m.get("hookbridge_kafka_up") == 1 and
                              m.get("hookbridge_spool_records") == 0, 20, "a warm producer")
            before = self.scrape()
            kafka.down("all")
            for i in range(m_events):
                status, _, body = bridge.post(body=event(i, "application"))
                self.assertEqual(status, 202, f"event {i} during the outage: {body!r}")
            during = self.scrape()
            self.assertEqual(during.get("hookbridge_events_total", topic="cloud66.application",
                                        outcome="spooled") -
                             before.get("hookbridge_events_total", topic="cloud66.application",
                                        outcome="spooled"), m_events)
            self.assertGreater(during.get("hookbridge_spool_records"), 0)
            self.assertGreater(during.get("hookbridge_spool_bytes"), 0)
            self.assertGreater(during.get("hookbridge_spool_syncs_total"),
                               before.get("hookbridge_spool_syncs_total"))
            # Down once librdkafka says every broker is (an ack timeout alone only parks the
            # event's topic: it could be that topic alone).
            self.wait_metrics(lambda m: m.get("hookbridge_kafka_up") == 0, 15, "kafka down")
            status, ready = self.readyz()
            self.assertEqual(status, 200, ready)
            self.assertEqual((ready["ready"], ready["kafka"], ready["spool"]),
                             (True, "down", "ok"))

            kafka.up("all")
            drained = before.get("hookbridge_spool_drained_total") + m_events
            after = self.wait_metrics(
                lambda m: m.get("hookbridge_spool_records") == 0 and
                m.get("hookbridge_spool_drained_total") >= drained, 60, "the spool to drain")
            self.assertEqual(after.get("hookbridge_spool_drained_total"), drained)
            self.assertEqual(after.get("hookbridge_spool_oldest_age_seconds"), 0)
            self.assertEqual(after.get("hookbridge_kafka_up"), 1)
            self.assertEqual(self.readyz()[1]["kafka"], "up")
            self.assertEqual(bridge.stop(), 0)

    def test_full_spool_is_not_ready(self):
        pad = "x" * (700 * 1024)
        with hbtest.MockCluster(brokers=1, topics=["cloud66.stack:1"]) as kafka, \
                start(kafka, producer={"ack_timeout_ms": 300},
                      spool={"max_bytes": 1048576}) as bridge:
            self.bridge = bridge
            kafka.down("all")
            big = json.dumps({"event_type": "stack.admin.big", "pad": pad}).encode()
            status, _, body = bridge.post(body=big)
            self.assertEqual(status, 202, body)
            status, _, body = bridge.post(body=big.replace(b"big", b"bag"))
            self.assertEqual(status, 503, body)
            self.assertEqual(json.loads(body)["error"], "spool_full")
            status, ready = self.readyz()
            self.assertEqual(status, 503, ready)
            self.assertEqual((ready["ready"], ready["kafka"], ready["spool"]),
                             (False, "down", "full"))
            m = self.scrape()
            self.assertEqual(m.get("hookbridge_events_total", topic="cloud66.stack",
                                   outcome="rejected"), 1)
            self.assertEqual(m.get("hookbridge_http_requests_total", endpoint="webhook",
                                   status="503"), 1)
            # Liveness is not readiness.
            self.assertEqual(bridge.get("/healthz", admin=True)[0], 200)
            kafka.up("all")
            self.assertEqual(bridge.stop(), 0)


class AdminOffTest(unittest.TestCase):
    def test_empty_listen_turns_it_off(self):
        with hbtest.MockCluster(brokers=1) as kafka, \
                hbtest.Bridge(bootstrap=kafka, admin={"listen": ""}) as bridge:
            bridge.wait_log(lambda l: l.get("component") == "admin", 10, what="the admin line")
            self.assertIsNone(bridge.admin_port)
            self.assertEqual(bridge.get("/healthz")[0], 200)
            self.assertEqual(bridge.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
