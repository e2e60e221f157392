"""End to end against a real Kafka that speaks TLS and SASL (scripts/kafka-local start
--sasl-ssl: its own CA, SCRAM-SHA-512 and PLAIN users), as managed Kafkas do: the bridge logs in
through the `kafka` passthrough with security.protocol=SASL_SSL and SCRAM-SHA-512, and every
event lands; with a wrong password it says so in its log and in /readyz, keeps the events in
the spool, and drains them once restarted with the right one. Kafka 4 refuses SCRAM logins from
librdkafka before 2.6.1, so this passes only on the librdkafka scripts/install-deps provides."""
import hashlib
import json
import os
import re
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import hbtest  # noqa: E402
from test_e2e import LocalKafka, check_in_order, event, wait_drained  # noqa: E402


def read_properties(text):
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#") and "=" in line)


def kafka_settings(client):
    """The client settings as the bridge's `kafka` group takes them."""
    return {name: client[name] for name in ("bootstrap.servers", "security.protocol",
                                            "sasl.mechanism", "sasl.username", "sasl.password",
                                            "ssl.ca.location")}


def admin_get(bridge, path):
    bridge.wait_log(lambda l: l.get("component") == "admin" and l.get("msg") == "listening",
                    10, what="the admin listener")
    status, _, body = bridge.get(path, admin=True)
    return status, body.decode()


@unittest.skipUnless(shutil.which("java"), "java is not installed (scripts/install-deps)")
class SaslSslKafkaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kafka = LocalKafka("--sasl-ssl")
        cls.scram = read_properties(cls.kafka.run("client-config"))
        cls.plain = read_properties(cls.kafka.run("client-config", "--mechanism", "PLAIN"))

    @classmethod
    def tearDownClass(cls):
        cls.kafka.close()

    def consume(self, client, topic, **kw):
        """Reads topic back over SASL_SSL, logged in as the bridge was."""
        extra = [f"{k}={v}" for k, v in client.items() if k != "bootstrap.servers"]
        return hbtest.consume(client["bootstrap.servers"], topic, extra=extra, **kw)

    def test_scram_sha_512_login_publishes_every_event(self):
        self.assertEqual(self.scram["security.protocol"], "SASL_SSL")
        self.assertEqual(self.scram["sasl.mechanism"], "SCRAM-SHA-512")
        self.assertNotEqual(self.scram["bootstrap.servers"], self.kafka.bootstrap)
        bodies = [event(n, f"stack-{n % 3}") for n in range(20)]
        with hbtest.Bridge(bootstrap=self.scram["bootstrap.servers"],
                           routing={"topic_prefix": "scram."},
                           kafka=kafka_settings(self.scram)) as bridge:
            for body in bodies:
                status, _, data = bridge.post(body=body, timeout=30)
                self.assertEqual(status, 202, data)
            msgs = self.consume(self.scram, "scram.stack", count=len(bodies), timeout_ms=60000)
            msgs += self.consume(self.scram, "scram.stack", idle_ms=1500)[len(msgs):]
            self.assertEqual(sorted(m["value"]["id"] for m in msgs),
                             sorted(hashlib.sha256(b).hexdigest() for b in bodies))
            # Published live, on a librdkafka that can log in to Kafka 4 with SCRAM.
            self.assertEqual(bridge.find_logs(msg="kafka refused the login"), [])
            status, ready = admin_get(bridge, "/readyz")
            self.assertEqual((status, json.loads(ready)["kafka"]), (200, "up"), ready)
            _, metrics = admin_get(bridge, "/metrics")
            version = re.search(r'librdkafka="(\d+)\.(\d+)\.(\d+)', metrics).groups()
            self.assertGreaterEqual(tuple(map(int, version)), (2, 6, 1))
            self.assertEqual(bridge.stop(), 0)

    def test_plain_login_publishes_too(self):
        self.assertEqual(self.plain["sasl.mechanism"], "PLAIN")
        with hbtest.Bridge(bootstrap=self.plain["bootstrap.servers"],
                           routing={"topic_prefix": "plain."},
                           kafka=kafka_settings(self.plain)) as bridge:
            status, _, data = bridge.post(body=event(1, "stack-p"), timeout=30)
            self.assertEqual(status, 202, data)
            msgs = self.consume(self.plain, "plain.stack", count=1, timeout_ms=60000)
            self.assertEqual(msgs[0]["value"]["data"]["n"], 1)
            self.assertEqual(bridge.stop(), 0)

    def test_wrong_password_is_reported_and_the_events_wait_in_the_spool(self):
        wrong = dict(kafka_settings(self.scram), **{"sasl.password": "not-the-password"})
        keys = [f"stack-{i}" for i in range(3)]
        with hbtest.Bridge(bootstrap=self.scram["bootstrap.servers"],
                           routing={"topic_prefix": "wrongpw."},
                           producer={"ack_timeout_ms": 1000}, kafka=wrong) as bridge:
            accepted = []
            for n in range(12):
                status, _, data = bridge.post(body=event(n, keys[n % 3]), timeout=30)
                self.assertEqual(status, 202, data)
                accepted.append(n)
            # The log names the cause and what to check.
            line = bridge.wait_log(lambda l: l.get("msg") == "kafka refused the login", 60)
            self.assertEqual(line["level"], "error")
            self.assertEqual(line["error"], "_AUTHENTICATION")
            self.assertIn("SCRAM-SHA-512", line["reason"])
            self.assertIn("invalid credentials", line["reason"])
            self.assertIn("kafka.sasl_password", line["hint"])
            # So does /readyz: Kafka is down for that reason, the spool keeps the events safe
            # (still ready: the webhooks are accepted).
            status, body = admin_get(bridge, "/readyz")
            ready = json.loads(body)
            self.assertEqual(status, 200, body)
            self.assertEqual((ready["ready"], ready["kafka"], ready["spool"]),
                             (True, "down", "ok"), body)
            self.assertTrue(ready["kafka_error"].startswith("_AUTHENTICATION: "), body)
            self.assertIn("invalid credentials", ready["kafka_error"])
            self.assertNotIn("not-the-password", body)
            hbtest.wait_until(lambda: bridge.find_logs(msg="kafka did not acknowledge in time: "
                                                           "events spooled"), 30,
                              "the events to be spooled")
            _, metrics = admin_get(bridge, "/metrics")
            self.assertRegex(metrics, r"(?m)^hookbridge_spool_records 12$")
            self.assertRegex(metrics, r"(?m)^hookbridge_kafka_up 0$")
            # Nothing reached Kafka.
            self.assertEqual(self.consume(self.scram, "wrongpw.stack", idle_ms=500,
                                          timeout_ms=5000), [])
            self.assertEqual(bridge.stop(), 0)

            # The operator fixes the password and restarts: the spool drains, nothing lost.
            fixed = hbtest.make_config(self.scram["bootstrap.servers"], bridge.spool_dir,
                                       routing={"topic_prefix": "wrongpw."},
                                       kafka=kafka_settings(self.scram))
            bridge.config_path.write_text(fixed)
            since = len(bridge.logs)
            bridge.start()
            wait_drained(bridge, since)
            status, body = admin_get(bridge, "/readyz")
            self.assertNotIn("kafka_error", json.loads(body), body)
            msgs = self.consume(self.scram, "wrongpw.stack", idle_ms=2000, timeout_ms=60000)
            check_in_order(self, msgs, accepted)
            self.assertEqual(len(msgs), len(accepted), "each event exactly once")
            self.assertEqual(bridge.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
