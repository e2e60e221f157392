"""End to end against a real Apache Kafka broker (KRaft, from Maven Central via
scripts/kafka-local): every seed payload lands once with the documented envelope (checked
against schema/envelope.schema.json and the AsyncAPI channels), the broker is killed and
restarted mid-stream with nothing lost, kill -9 of the bridge while it drains, a missing topic
with auto-creation off gives a clear error while the events are kept, and (issue 11) a new
family's missing topic holds back no other topic, its events arrive in order once it is
created, and a record the broker refuses for good lands in cloud66.deadletter; (issue 14) the
spool of a replica that is gone is emptied into Kafka by `hookbridge spool drain`."""
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import hbtest  # noqa: E402
import schema_check  # noqa: E402

SRC = pathlib.Path(os.environ.get("HB_SOURCE_DIR", pathlib.Path(__file__).parents[2]))
KAFKA_LOCAL = SRC / "scripts" / "kafka-local"
GOLDEN = pathlib.Path(os.environ.get("HB_GOLDEN", SRC / "tests" / "golden"))


class LocalKafka:
    """One broker of scripts/kafka-local with its own state directory."""

    def __init__(self, *opts):
        self.state = tempfile.mkdtemp(prefix="hb-kafka-")
        self.env = dict(os.environ, HB_KAFKA_STATE=self.state + "/state")
        self.bootstrap = self.run("start", *opts).splitlines()[-1].strip()

    def run(self, *args, timeout=180):
        r = subprocess.run([str(KAFKA_LOCAL), *args], env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"kafka-local {' '.join(args)} failed ({r.returncode}):\n"
                               f"{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
        return r.stdout

    def close(self):
        try:
            self.run("stop")
        finally:
            shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def hookbridge(*args, timeout=180):
    return subprocess.run([hbtest.env_path("HB_BIN"), *args], capture_output=True, text=True,
                          timeout=timeout)


def event(n, key):
    return json.dumps({"event_type": "stack.e2e.event", "timestamp": 1757011079 + n, "uid": key,
                       "git": "git@example.com:x.git", "environment": "e2e", "n": n}).encode()


def wait_drained(bridge, since, timeout=120):
    bridge.wait_log(lambda l: l.get("msg") == "spool drained", timeout, since=since,
                    what="the spool to drain")


def check_in_order(test, msgs, accepted):
    firsts, seen = {}, set()
    for m in msgs:
        d = m["value"]["data"]
        if d["n"] in seen:
            continue
        seen.add(d["n"])
        firsts.setdefault(m["key"], []).append(d["n"])
    test.assertEqual(sorted(set(accepted) - seen), [], "accepted events missing from Kafka")
    for key, ns in firsts.items():
        test.assertEqual(ns, sorted(ns), f"key {key} out of order")


@unittest.skipUnless(shutil.which("java"), "java is not installed (scripts/install-deps)")
class RealKafkaTest(unittest.TestCase):
    def test_seeds_land_once_with_the_documented_envelope(self):
        with LocalKafka() as kafka, hbtest.Bridge(bootstrap=kafka.bootstrap) as bridge:
            seeds = hbtest.seed_payloads()
            for event_type, body in seeds:
                status, _, data = bridge.post(body=body, timeout=30)
                self.assertEqual(status, 202, f"{event_type}: {data}")
            topics = ["cloud66.application", "cloud66.stack", "cloud66.backup"]
            msgs = hbtest.consume(kafka.bootstrap, topics, count=len(seeds), timeout_ms=60000)
            msgs += hbtest.consume(kafka.bootstrap, topics, idle_ms=2000)[len(msgs):]
            self.assertEqual(len(msgs), len(seeds), "each seed exactly once")
            by_id = {hashlib.sha256(b).hexdigest(): t for t, b in seeds}
            for m in msgs:
                env = m["value"]
                self.assertEqual(schema_check.validate_envelope(env), [], env["type"])
                event_type = by_id.pop(env["id"])
                golden = json.loads((GOLDEN / f"{event_type}.json").read_text())
                env.pop("receivedat"), golden.pop("receivedat")
                self.assertEqual(env, golden)
                self.assertEqual(m["topic"], "cloud66." + golden["family"])
                self.assertEqual(m["headers"]["content-type"],
                                 "application/cloudevents+json; charset=UTF-8")
            self.assertEqual(by_id, {})
            # The AsyncAPI document names every topic the records landed on, and the header
            # they carry.
            asyncapi = (SRC / "schema" / "asyncapi.yaml").read_text()
            for topic in {m["topic"] for m in msgs}:
                self.assertIn(f"address: {topic}\n", asyncapi)
            for name in msgs[0]["headers"]:
                self.assertIn(f"{name}:", asyncapi)
            self.assertEqual(bridge.stop(), 0)

    def test_broker_killed_mid_stream_then_bridge_killed_while_draining(self):
        keys = [f"stack-{i}" for i in range(4)]
        with LocalKafka() as kafka, \
                hbtest.Bridge(bootstrap=kafka.bootstrap, producer={"ack_timeout_ms": 1000},
                              kafka={"message.timeout.ms": 5000}) as bridge:
            accepted = []
            for n in range(0, 60):
                status, _, data = bridge.post(body=event(n, keys[n % 4]), timeout=30)
                self.assertEqual(status, 202, data)
                accepted.append(n)
            kafka.run("kill")
            for n in range(60, 160):
                status, _, data = bridge.post(body=event(n, keys[n % 4]), timeout=30)
                self.assertEqual(status, 202, data)
                accepted.append(n)
            since = len(bridge.logs)
            kafka.run("resume")
            bridge.wait_log(lambda l: l.get("msg") in ("kafka is accepting events",
                                                       "topic flows again"), 120,
                            since=since)
            bridge.kill9()  # while draining (or just after): the restart must finish the job
            since = len(bridge.logs)
            bridge.start()
            if bridge.find_logs(msg="opened", component="spool")[-1].get("records", 0) > 0:
                wait_drained(bridge, since)
            msgs = hbtest.consume(kafka.bootstrap, "cloud66.stack", idle_ms=3000,
                                  timeout_ms=90000)
            check_in_order(self, msgs, accepted)
            self.assertEqual(bridge.stop(), 0)

    def test_missing_topic_with_auto_create_off_keeps_the_events(self):
        with LocalKafka("--no-auto-create") as kafka, \
                hbtest.Bridge(bootstrap=kafka.bootstrap, producer={"ack_timeout_ms": 1000},
                              kafka={"topic.metadata.propagation.max.ms": 1000,
                                     "message.timeout.ms": 3000}) as bridge:
            for n in range(5):
                status, _, data = bridge.post(body=event(n, "stack-x"), timeout=30)
                self.assertEqual(status, 202, data)
            # A clear error naming the topic and the reason.
            line = bridge.wait_log(lambda l: l.get("topic") == "cloud66.stack"
                                   and l.get("level") in ("warn", "error")
                                   and "UNKNOWN_TOPIC" in str(l.get("error", "")), 60)
            since = len(bridge.logs)
            kafka.run("create-topic", "cloud66.stack")
            wait_drained(bridge, since)
            msgs = hbtest.consume(kafka.bootstrap, "cloud66.stack", idle_ms=2000)
            self.assertEqual({m["value"]["data"]["n"] for m in msgs}, set(range(5)))
            self.assertEqual(bridge.stop(), 0)

    def test_missing_topic_parks_alone_and_a_refused_record_is_dead_lettered(self):
        healthy = ["cloud66.application", "cloud66.stack", "cloud66.backup"]
        with LocalKafka("--no-auto-create") as kafka, \
                hbtest.Bridge(bootstrap=kafka.bootstrap, producer={"ack_timeout_ms": 1000}) \
                as bridge:
            kafka.run("create-topic", *healthy, "cloud66.deadletter")
            kafka.run("create-topic", "--config", "max.message.bytes=2000", "cloud66.small")
            seeds = hbtest.seed_payloads()
            # server.stopped: a family whose topic (cloud66.server) does not exist, among the
            # seeds, before and after them.
            server = []

            def post_server(n):
                body = json.dumps({"event_type": "server.stopped", "uid": "srv-1",
                                   "timestamp": 1757011079 + n, "n": n}).encode()
                status, _, data = bridge.post(body=body, timeout=30)
                self.assertEqual(status, 202, data)
                server.append(n)
            post_server(0)
            t0 = time.monotonic()
            for i, (event_type, body) in enumerate(seeds):
                status, _, data = bridge.post(body=body, timeout=30)
                self.assertEqual(status, 202, f"{event_type}: {data}")
                if i % 5 == 0:
                    post_server(len(server))
            msgs = hbtest.consume(kafka.bootstrap, healthy, count=len(seeds), timeout_ms=15000)
            took = time.monotonic() - t0
            print(f"\nother topics: {len(seeds)} seeds delivered within {took:.1f} s of the "
                  "first post while cloud66.server is missing", file=sys.stderr)
            self.assertEqual(len(msgs), len(seeds))
            status, _, body = bridge.get("/readyz", admin=True)
            self.assertEqual(status, 200, body)
            ready = json.loads(body)
            self.assertEqual(ready["kafka"], "up")
            self.assertIn("cloud66.server", [p["topic"] for p in ready["parked"]])
            # The topic is created: the parked events arrive, in order.
            since = len(bridge.logs)
            kafka.run("create-topic", "cloud66.server")
            bridge.wait_log(lambda l: l.get("msg") == "topic flows again"
                            and l.get("topic") == "cloud66.server", 60, since=since)
            got = hbtest.consume(kafka.bootstrap, "cloud66.server", count=len(server),
                                 timeout_ms=30000)
            got += hbtest.consume(kafka.bootstrap, "cloud66.server", idle_ms=2000)[len(got):]
            check_in_order(self, got, server)
            # A record the broker refuses for good (larger than the topic's max.message.bytes)
            # lands in the dead-letter topic, with the headers that say why.
            big = json.dumps({"event_type": "small.event", "uid": "s", "n": 9,
                              "pad": "x" * 5000}).encode()
            status, _, data = bridge.post(body=big, timeout=30)
            self.assertEqual(status, 202, data)
            dead = hbtest.consume(kafka.bootstrap, "cloud66.deadletter", count=1,
                                  timeout_ms=30000)
            h = dead[0]["headers"]
            self.assertEqual(h["hb_dlq_topic"], "cloud66.small")
            self.assertEqual(h["hb_dlq_error"], "MSG_SIZE_TOO_LARGE")
            self.assertGreaterEqual(int(h["hb_dlq_attempts"]), 1)
            self.assertIn("hb_dlq_first_attempt_ms", h)
            self.assertEqual(dead[0]["value"]["data"]["n"], 9)
            self.assertEqual(hbtest.consume(kafka.bootstrap, "cloud66.small", idle_ms=1500), [])
            self.assertEqual(bridge.stop(), 0)


    def test_orphaned_spool_is_emptied_by_spool_drain(self):
        # A replica scaled down (or dead) with events in its spool: nobody will start a daemon
        # on that volume again, so `hookbridge spool drain` publishes it and says when it is
        # empty. The events are spooled by a bridge that reaches no broker at all.
        keys = ["stack-a", "stack-b", "stack-c"]
        nowhere = "127.0.0.1:1"
        with LocalKafka() as kafka, \
                hbtest.Bridge(bootstrap=nowhere, producer={"ack_timeout_ms": 500}) as bridge:
            accepted = []
            for n in range(60):
                status, _, data = bridge.post(body=event(n, keys[n % 3]), timeout=30)
                self.assertEqual(status, 202, data)
                accepted.append(n)
            seeds = hbtest.seed_payloads()
            for event_type, body in seeds:
                status, _, data = bridge.post(body=body, timeout=30)
                self.assertEqual(status, 202, f"{event_type}: {data}")
            spool = str(bridge.spool_dir)
            conf = bridge.tmpdir / "drain.conf"
            conf.write_text(hbtest.make_config(kafka.bootstrap, spool))
            # While a daemon holds the spool, the drain refuses and publishes nothing.
            r = hookbridge("spool", "drain", "--config", str(conf), "--timeout-s", "30", spool)
            self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("lock", (r.stdout + r.stderr).lower())
            self.assertEqual(bridge.stop(), 0)
            self.assertEqual(hbtest.consume(kafka.bootstrap, "cloud66.stack", idle_ms=1500,
                                            timeout_ms=20000), [])
            r = hookbridge("spool", "drain", "--config", str(conf), "--timeout-s", "120", spool)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-3000:])
            msgs = hbtest.consume(kafka.bootstrap, "cloud66.stack", idle_ms=3000,
                                  timeout_ms=90000)
            mine = [m for m in msgs if "n" in m["value"]["data"]]
            self.assertEqual(len(mine), len(accepted), "each spooled event exactly once")
            check_in_order(self, mine, accepted)
            topics = ["cloud66.application", "cloud66.stack", "cloud66.backup"]
            got = hbtest.consume(kafka.bootstrap, topics, idle_ms=3000, timeout_ms=60000)
            ids = sorted(m["value"]["id"] for m in got if "n" not in m["value"]["data"])
            self.assertEqual(ids, sorted(hashlib.sha256(b).hexdigest() for _, b in seeds))
            # Empty now: a second run publishes nothing and exits 0 at once.
            r = hookbridge("spool", "drain", "--config", str(conf), "--timeout-s", "30", spool)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-3000:])
            again = hbtest.consume(kafka.bootstrap, "cloud66.stack", idle_ms=2000)
            self.assertEqual(len(again), len(msgs))


if __name__ == "__main__":
    unittest.main(verbosity=2)
