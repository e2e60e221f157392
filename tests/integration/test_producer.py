"""The producer's wake-up machinery through the real binary against librdkafka's mock cluster.

Both tests assert on the mechanism, never on a duration (the machine is shared and noisy):
- librdkafka writes the main queue's wake-up only when the queue goes from empty to non-empty,
  so whatever rd_kafka_new queued before the wake-up fd was set (its debug logs) must be served
  once by hand, or no delivery report is ever served again;
- librdkafka (2.0.2, and 2.8.0 still) asks for a new topic's metadata at once only for a topic
  handle the application created; a topic first named in rd_kafka_producev() waited for the 1 s
  topic scan (the ~1 s latency outliers of the first events of each topic).
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import hbtest  # noqa: E402

FAMILIES = ["application", "stack", "backup"]


def body(family, n):
    return json.dumps({"event_type": f"{family}.test.event", "timestamp": 1757011079 + n,
                       "n": n}).encode()


def metric(bridge, name):
    status, _, text = bridge.get("/metrics", admin=True)
    assert status == 200, status
    for line in text.decode("utf-8").splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ", 1)[1])
    return None


def leader_queries(bridge):
    """librdkafka's leader-query lines (debug=metadata), one per metadata request it makes at
    once when the application creates a topic handle: "Requesting metadata for N/N topics:
    leader query", or, when the event comes before the first broker connection (a loaded
    machine), "Skipping metadata refresh of N topic(s): leader query: no usable brokers" (the
    topic is then asked for as soon as the broker connects). librdkafka 2.8 also skips a leader
    query whose topics a request in flight already covers ("...: leader query: already being
    requested"): the handle was created while the first connection's metadata request, which
    names every known topic, was on its way. All three are rd_kafka_topic_leader_query's, which
    a new application handle calls at once; a topic first named in rd_kafka_producev() waits for
    the topic scan and logs none of them before it."""
    return [entry for entry in bridge.find_logs(component="librdkafka")
            if ("Requesting metadata for" in entry.get("msg", "")
                and entry["msg"].endswith("leader query"))
            or ("Skipping metadata refresh" in entry.get("msg", "")
                and (entry["msg"].endswith("leader query: no usable brokers")
                     or entry["msg"].endswith("leader query: already being requested")))]


class ProducerWakeupTest(unittest.TestCase):
    def test_queue_filled_before_the_wakeup_fd_is_served(self):
        # kafka.debug makes rd_kafka_new queue log lines on the main queue before the loop
        # watches it: without the first serve, no librdkafka line (and no delivery report)
        # would ever be served, and the event would be spooled at the ack timeout.
        with hbtest.MockCluster(brokers=1) as kafka, \
                hbtest.Bridge(bootstrap=kafka, kafka={"debug": "broker"}) as bridge:
            bridge.wait_log(lambda l: l.get("component") == "librdkafka", 15,
                            what="a librdkafka log line served from the main queue")
            status, _, answer = bridge.post(body=body("stack", 1), timeout=30)
            self.assertEqual(status, 202, answer)
            # Published on the live path (acked by Kafka), not spooled after a timeout.
            self.assertEqual(metric(bridge, "hookbridge_event_ack_seconds_count"), 1)
            self.assertEqual(bridge.find_logs(msg="kafka did not acknowledge in time: "
                                                  "events spooled"), [])

    def test_first_event_of_a_topic_asks_for_its_metadata_at_once(self):
        with hbtest.MockCluster(brokers=1) as kafka, \
                hbtest.Bridge(bootstrap=kafka, kafka={"debug": "metadata"}) as bridge:
            conn = bridge.connection(timeout=30)
            try:
                for n, family in enumerate(FAMILIES):
                    before = len(leader_queries(bridge))
                    status, _, answer = bridge.post(body=body(family, n), conn=conn)
                    self.assertEqual(status, 202, answer)
                    # The metadata request went out when the topic was first seen (a "leader
                    # query" from the app thread), not at librdkafka's next topic scan. Its log
                    # line was queued before the delivery report; the deadline only covers our
                    # log reader.
                    hbtest.wait_until(
                        lambda: len(leader_queries(bridge)) > before, 10,
                        f"an immediate metadata request for cloud66.{family}")
                # Seen topics are not asked again for every record.
                before = len(leader_queries(bridge))
                for n in range(3, 13):
                    status, _, _ = bridge.post(body=body("stack", n), conn=conn)
                    self.assertEqual(status, 202)
                self.assertEqual(len(leader_queries(bridge)), before)
            finally:
                conn.close()
            msgs = hbtest.consume(kafka, [f"cloud66.{f}" for f in FAMILIES], count=13)
            self.assertEqual(sorted(m["value"]["data"]["n"] for m in msgs), list(range(13)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
