"""Every binary runs on the librdkafka the build found (CMake passes its version as
HB_RDKAFKA_VERSION), and that one is new enough for Kafka 4's SCRAM (2.6.1): an RPATH that
went missing, or a system librdkafka that shadows the prefix's, would load 2.0.2 here."""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import hbtest  # noqa: E402

SCRAM_MIN = (2, 6, 1)


def version_tuple(text):
    return tuple(int(x) for x in re.match(r"(\d+)\.(\d+)\.(\d+)", text).groups())


class LibrdkafkaVersionTest(unittest.TestCase):
    def setUp(self):
        self.want = hbtest.env_path("HB_RDKAFKA_VERSION")

    def test_the_build_found_a_librdkafka_that_logs_in_to_kafka_4(self):
        if os.environ.get("HB_RDKAFKA_ALLOW_OLD") == "ON":
            self.skipTest("configured with -DHB_RDKAFKA_ALLOW_OLD=ON")
        self.assertGreaterEqual(version_tuple(self.want), SCRAM_MIN, self.want)

    def test_the_daemon_runs_on_it(self):
        with hbtest.MockCluster(brokers=1) as kafka, hbtest.Bridge(bootstrap=kafka) as bridge:
            bridge.wait_log(lambda l: l.get("component") == "admin" and l.get("msg") == "listening",
                            10, what="the admin listener")
            status, _, text = bridge.get("/metrics", admin=True)
            self.assertEqual(status, 200)
            found = re.search(r'^hookbridge_build_info\{.*librdkafka="([^"]*)".*\} 1$',
                              text.decode(), re.M)
            self.assertIsNotNone(found, "no hookbridge_build_info sample")
            self.assertEqual(found.group(1), self.want)
            self.assertEqual(bridge.stop(), 0)

    def test_the_consumer_runs_on_it(self):
        # librdkafka's first debug line: "librdkafka v2.8.0 (0x20800ff) rdkafka#consumer-1 initialized".
        with hbtest.MockCluster(brokers=1) as kafka:
            r = subprocess.run([hbtest.env_path("HB_CONSUME"), "-b", kafka.bootstrap, "-t", "none",
                                "--idle-ms", "1", "--timeout-ms", "1", "-X", "debug=generic"],
                               capture_output=True, text=True, timeout=60)
            found = re.search(r"librdkafka v(\S+) \(0x[0-9a-f]+\) \S+ initialized", r.stderr)
            self.assertIsNotNone(found, r.stderr[-2000:])
            self.assertEqual(found.group(1), self.want)


if __name__ == "__main__":
    unittest.main(verbosity=2)
