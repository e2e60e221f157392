"""Zero loss through the real binary against librdkafka's mock cluster: an outage during a stream
of requests, kill -9 while draining, a full spool, injected request errors and SIGTERM with
events in flight. Every event answered 2xx must reach Kafka, in order for each key."""
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import hbtest  # noqa: E402

TOPIC = "cloud66.stack"
KEYS = [f"stack-{i}" for i in range(5)]


def event(n, key):
    # A flat stack payload: the key is the stack uid.
    return json.dumps({"event_type": "stack.test.event", "timestamp": 1757011079 + n,
                       "uid": key, "git": "git@example.com:x.git", "environment": "test",
                       "n": n}).encode()


def check_delivered(test, msgs, accepted):
    """Every accepted (n, key) is on the topic; per key, first occurrences are in order."""
    firsts = {}
    seen = set()
    for m in msgs:
        data = m["value"]["data"]
        n, key = data["n"], data["stack"]["uid"]
        test.assertEqual(m["key"], key)
        if n in seen:
            continue  # a duplicate (allowed after an outage, and counted by the daemon)
        seen.add(n)
        firsts.setdefault(key, []).append(n)
    missing = sorted(set(accepted) - seen)
    test.assertEqual(missing, [], f"{len(missing)} accepted events never reached Kafka")
    for key, ns in firsts.items():
        test.assertEqual(ns, sorted(ns), f"events of key {key} out of order")


def wait_drained(bridge, since=0, timeout=60):
    """Waits for the daemon to report that every spooled record reached Kafka."""
    bridge.wait_log(lambda l: l.get("msg") == "spool drained", timeout, since=since,
                    what="the spool to drain")


def all_messages(kafka):
    return hbtest.consume(kafka, TOPIC, idle_ms=2000, timeout_ms=60000)


class OutageTest(unittest.TestCase):
    def post_stream(self, bridge, ns, accepted, statuses, workers=4):
        lock = threading.Lock()

        def one(n):
            status, _, body = bridge.post(body=event(n, KEYS[n % len(KEYS)]), timeout=30)
            with lock:
                statuses.append(status)
                if status == 202:
                    accepted.append(n)
            return status
        # Events of one key must be submitted in order for order to mean anything: send each
        # key's events from one worker.
        by_key = {k: [n for n in ns if KEYS[n % len(KEYS)] == k] for k in KEYS}
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(KEYS)) as ex:
            list(ex.map(lambda k: [one(n) for n in by_key[k]], KEYS))

    def test_brokers_down_mid_stream_nothing_lost(self):
        with hbtest.MockCluster(brokers=3) as kafka, \
                hbtest.Bridge(bootstrap=kafka, producer={"ack_timeout_ms": 500},
                              kafka={"message.timeout.ms": 3000}) as bridge:
            accepted, statuses = [], []
            self.post_stream(bridge, range(0, 100), accepted, statuses)
            kafka.down("all")
            self.post_stream(bridge, range(100, 250), accepted, statuses)
            bridge.wait_log(lambda l: l.get("msg") == "kafka is not accepting events", 10)
            self.assertEqual(statuses.count(202), 250, f"non-202 answers: "
                             f"{[s for s in statuses if s != 202]}")
            since = len(bridge.logs)
            kafka.up("all")
            wait_drained(bridge, since)
            check_delivered(self, all_messages(kafka), accepted)
            self.assertEqual(bridge.stop(), 0)

    def test_kill9_while_draining_then_restart(self):
        with hbtest.MockCluster(brokers=3) as kafka, \
                hbtest.Bridge(bootstrap=kafka, producer={"ack_timeout_ms": 300},
                              spool={"drain_max_inflight": 20},
                              kafka={"message.timeout.ms": 3000}) as bridge:
            accepted, statuses = [], []
            kafka.down("all")
            self.post_stream(bridge, range(0, 300), accepted, statuses)
            self.assertEqual(len(accepted), 300)
            since = len(bridge.logs)
            kafka.up("all")
            # Draining again: Kafka marked up (if librdkafka had said all brokers were down)
            # or the parked topic's probe went through.
            bridge.wait_log(lambda l: l.get("msg") in ("kafka is accepting events",
                                                       "topic flows again"), 30, since=since)
            bridge.kill9()
            since = len(bridge.logs)
            bridge.start()  # same config, same spool directory
            wait_drained(bridge, since)
            check_delivered(self, all_messages(kafka), accepted)
            self.assertEqual(bridge.stop(), 0)

    def test_full_spool_is_503_with_retry_after(self):
        with hbtest.MockCluster(brokers=1) as kafka, \
                hbtest.Bridge(bootstrap=kafka, producer={"ack_timeout_ms": 200},
                              spool={"max_bytes": 1048576, "min_free_bytes": 0}) as bridge:
            kafka.down("all")
            pad = "p" * 400000
            answers = []
            for n in range(4):
                body = json.dumps({"event_type": "stack.big", "uid": "s", "n": n,
                                   "pad": pad}).encode()
                answers.append(bridge.post(body=body, timeout=30))
            codes = [a[0] for a in answers]
            self.assertEqual(codes[:2], [202, 202], codes)
            self.assertIn(503, codes)
            status, headers, body = next(a for a in answers if a[0] == 503)
            self.assertEqual(json.loads(body)["error"], "spool_full")
            self.assertIn("retry-after", headers)
            # The harness reads the daemon's log on its own thread: wait for the line, it may
            # trail the 503 that the client already has.
            bridge.wait_log(lambda e: e.get("level") == "error",
                            what="a full spool logged at error")
            # The daemon still answers; the spooled events still arrive once Kafka is back.
            self.assertEqual(bridge.get("/healthz")[0], 200)
            since = len(bridge.logs)
            kafka.up("all")
            wait_drained(bridge, since)
            msgs = all_messages(kafka)
            accepted = [n for n, a in enumerate(answers) if a[0] == 202]
            self.assertEqual({m["value"]["data"]["n"] for m in msgs}, set(accepted))
            self.assertEqual(bridge.stop(), 0)

    def test_failed_delivery_with_a_full_spool_answers_once(self):
        # Regression: a live delivery that failed while the spool had no room was freed twice.
        with hbtest.MockCluster(brokers=1) as kafka, \
                hbtest.Bridge(bootstrap=kafka, producer={"ack_timeout_ms": 20000},
                              spool={"max_bytes": 1048576, "min_free_bytes": 0},
                              kafka={"message.timeout.ms": 1500}) as bridge:
            self.assertEqual(bridge.post(body=event(0, KEYS[0]))[0], 202)
            kafka.rtt("all", 5000)
            pad = "q" * 700000
            results = []

            def big(n):
                body = json.dumps({"event_type": "stack.big", "uid": "s", "n": n,
                                   "pad": pad}).encode()
                results.append(bridge.post(body=body, timeout=30)[0])
            threads = [threading.Thread(target=big, args=(n,)) for n in (1, 2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            self.assertEqual(sorted(results), [202, 503], results)
            self.assertEqual(bridge.get("/healthz")[0], 200)
            self.assertEqual(bridge.stop(), 0)

    def test_fatal_producer_error_recreates_the_producer_and_loses_nothing(self):
        # OUT_OF_ORDER_SEQUENCE_NUMBER (45) on a Produce is fatal for an idempotent producer.
        with hbtest.MockCluster(brokers=1) as kafka, \
                hbtest.Bridge(bootstrap=kafka, producer={"ack_timeout_ms": 2000}) as bridge:
            self.assertEqual(bridge.post(body=event(0, KEYS[0]))[0], 202)
            kafka.errors(0, 1, 45)
            statuses = [bridge.post(body=event(n, KEYS[0]), timeout=30)[0] for n in range(1, 8)]
            self.assertEqual(statuses, [202] * 7)
            bridge.wait_log(lambda l: l.get("msg") == "fatal producer error", 15)
            bridge.wait_log(lambda l: l.get("msg", "").startswith("recreating the producer"), 15)
            msgs = hbtest.consume(kafka, TOPIC, count=8, timeout_ms=60000)
            msgs += all_messages(kafka)[len(msgs):]
            check_delivered(self, msgs, list(range(8)))
            self.assertEqual(bridge.stop(), 0)

    def test_injected_produce_errors_are_retried(self):
        # One Produce request in flight per broker: REQUEST_TIMED_OUT means "possibly
        # persisted", and when a later batch of the same partition succeeds librdkafka counts
        # the timed-out one as persisted too (a real broker would have refused the later batch
        # with OUT_OF_ORDER_SEQUENCE_NUMBER). librdkafka's mock cluster checks sequence numbers
        # only for transactional producers (2.0.2 and 2.8.0 alike: rd_kafka_mock_validate_records
        # returns early without a TransactionalId), so with several requests in flight it acks a record it dropped: a
        # mock artifact seen under load, not a loss a real broker allows.
        with hbtest.MockCluster(brokers=3) as kafka, \
                hbtest.Bridge(bootstrap=kafka,
                              kafka={"max.in.flight.requests.per.connection": 1}) as bridge:
            # Warm up so the topic and producer id exist, then fail the next Produce requests
            # with NOT_ENOUGH_REPLICAS (19) and REQUEST_TIMED_OUT (7), both retriable.
            self.assertEqual(bridge.post(body=event(0, KEYS[0]))[0], 202)
            kafka.errors(0, 4, 19)
            kafka.errors(0, 2, 7)
            accepted, statuses = [0], []
            self.post_stream(bridge, range(1, 60), accepted, statuses)
            self.assertEqual(statuses.count(202), 59)
            msgs = hbtest.consume(kafka, TOPIC, count=60, timeout_ms=60000)
            check_delivered(self, msgs, accepted)
            self.assertEqual(bridge.stop(), 0)

    def test_sigterm_spools_in_flight_events_and_exits_0(self):
        with hbtest.MockCluster(brokers=1) as kafka:
            with hbtest.Bridge(bootstrap=kafka, producer={"ack_timeout_ms": 20000,
                                                          "shutdown_timeout_ms": 500}) as bridge:
                self.assertEqual(bridge.post(body=event(0, KEYS[0]))[0], 202)
                kafka.down("all")
                results = []
                threads = [threading.Thread(target=lambda n=n: results.append(
                    bridge.post(body=event(n, KEYS[0]), timeout=30)[0])) for n in range(1, 6)]
                for t in threads:
                    t.start()
                # Wait until the five are inside the daemon, then stop it.
                hbtest.wait_until(lambda: len(bridge.find_logs(msg="request received")) >= 6, 10,
                                  "the five requests to arrive")
                code = bridge.stop(signal.SIGTERM, timeout=30)
                for t in threads:
                    t.join(30)
                self.assertEqual(code, 0)
                self.assertEqual(sorted(results), [202] * 5, results)
                spool_dir = bridge.spool_dir
                kafka.up("all")
                bridge.start()
                msgs = hbtest.consume(kafka, TOPIC, count=6, timeout_ms=60000)
                self.assertEqual({m["value"]["data"]["n"] for m in msgs}, set(range(6)))
                self.assertTrue(spool_dir.exists())
                self.assertEqual(bridge.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
