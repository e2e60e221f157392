"""Several HTTP loops (http.workers = 2) through the real hookbridge binary against librdkafka's
mock cluster: both loops serve (the kernel spreads connections over the loops' SO_REUSEPORT
listeners, and each "request received" line names its loop), every 2xx is in Kafka once, the
events one kept-alive connection posts keep their order in Kafka, http.max_connections is a total
over the loops (a connection over it waits on whichever loop took it, and is served when a slot
frees on another), and a second daemon on the same port is refused ("address in use") although
the first one's listeners carry SO_REUSEPORT."""
import json
import os
import select
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import hbtest  # noqa: E402
from test_limits import metrics, raw_connect, raw_post_body, read_until_eof  # noqa: E402

TOPIC = "cloud66.stack"


def body_for(uid, n):
    return json.dumps({"event_type": "stack.workers.test", "uid": uid, "n": n}).encode()


class WorkersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Several partitions: one key's events must stay on one partition, in order.
        cls.kafka = hbtest.MockCluster(brokers=1, topics=[TOPIC + ":4"])

    @classmethod
    def tearDownClass(cls):
        cls.kafka.close()

    def test_both_loops_serve_and_each_connection_keeps_its_order(self):
        conns, per_conn = 16, 15
        with hbtest.Bridge(bootstrap=self.kafka, http={"workers": 2}) as bridge:
            line = bridge.wait_log(lambda l: l.get("component") == "http" and
                                   l.get("msg") == "listening", 5)
            self.assertEqual(line["loops"], 2)
            run = f"w{os.getpid()}-{id(self)}"
            answers = {}  # uid -> [status of event n]
            errors = []
            lock = threading.Lock()

            def poster(c):
                uid = f"{run}-c{c}"
                got = []
                try:
                    conn = bridge.connection(timeout=30)  # one kept-alive connection
                    for n in range(per_conn):
                        status, _, data = bridge.post(body=body_for(uid, n), conn=conn,
                                                      headers={"Content-Type":
                                                               "application/json"})
                        got.append(status)
                    conn.close()
                except Exception as exc:  # noqa: BLE001 (reported below)
                    with lock:
                        errors.append(f"{uid}: {exc!r}")
                with lock:
                    answers[uid] = got

            threads = [threading.Thread(target=poster, args=(c,)) for c in range(conns)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            self.assertEqual(errors, [])
            self.assertEqual(sorted(len(v) for v in answers.values()), [per_conn] * conns)
            self.assertEqual({s for v in answers.values() for s in v}, {202})
            # Both loops took requests: the kernel hashed the connections over both listeners
            # (all 16 on one loop: 2^-15).
            loops = {l.get("loop") for l in bridge.logs if l.get("msg") == "request received"}
            self.assertEqual(loops, {0, 1}, "requests were not served by both loops")
            self.assertEqual(bridge.stop(timeout=30), 0)
        msgs = hbtest.consume(self.kafka, TOPIC, idle_ms=2000, timeout_ms=30000)
        seen = {}
        for m in msgs:
            data = m["value"]["data"]
            if str(data.get("uid", "")).startswith(run):
                seen.setdefault(data["uid"], []).append(data["n"])
                self.assertEqual(m["key"], data["uid"])
        # Every 2xx once, and in the order its connection posted it (one key: one partition).
        self.assertEqual(sorted(seen), sorted(answers))
        for uid, ns in seen.items():
            self.assertEqual(ns, list(range(per_conn)), f"{uid}: events lost, doubled or "
                             "reordered")

    def test_max_connections_is_a_total_over_the_loops(self):
        cap, extra = 3, 8
        with hbtest.Bridge(bootstrap=self.kafka,
                           http={"workers": 2, "max_connections": cap}) as bridge:
            run = f"cap{os.getpid()}-{id(self)}"
            held = [raw_connect(bridge) for _ in range(cap)]
            hbtest.wait_until(lambda: metrics(bridge).get("hookbridge_http_connections_open")
                              == cap, 5, "the cap's connections open")
            # More connections, each with a whole request: the kernel puts them on both loops;
            # none may be served while the cap is held, whichever loop it is on.
            waiting = []
            for i in range(extra):
                s = raw_connect(bridge)
                s.sendall(raw_post_body(body_for(run, i), b"Connection: close\r\n"))
                waiting.append(s)
            readable, _, _ = select.select(waiting, [], [], 1.0)
            self.assertEqual(readable, [], "served over http.max_connections")
            m = metrics(bridge)
            self.assertEqual(m.get("hookbridge_http_connections_open"), cap)
            self.assertEqual(m.get("hookbridge_http_connections_max"), cap)
            # Freeing the slots (on whichever loops they were) lets every waiting one in.
            for s in held:
                s.close()
            for s in waiting:
                answer = read_until_eof(s, timeout=15)
                self.assertTrue(answer.startswith(b"HTTP/1.1 202"), answer[:200])
                s.close()
            hbtest.wait_until(lambda: metrics(bridge).get("hookbridge_http_connections_open")
                              == 0, 5, "every connection closed")
            self.assertEqual(bridge.stop(timeout=30), 0)
        msgs = hbtest.consume(self.kafka, TOPIC, idle_ms=1500, timeout_ms=20000)
        ns = sorted(m["value"]["data"]["n"] for m in msgs
                    if m["value"]["data"].get("uid") == run)
        self.assertEqual(ns, list(range(extra)))

    def test_a_second_daemon_on_the_port_is_refused(self):
        with hbtest.Bridge(bootstrap=self.kafka, http={"workers": 2}) as first:
            tmp = hbtest.make_tmpdir("second")
            try:
                conf = tmp / "second.conf"
                conf.write_text(hbtest.make_config(self.kafka, tmp / "spool", http={
                    "workers": 2, "listen": f"127.0.0.1:{first.port}"}))
                r = subprocess.run([hbtest.env_path("HB_BIN"), "--config", str(conf)],
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            finally:
                hbtest.remove_tmpdir(tmp)
            err = r.stderr.decode()
            self.assertEqual(r.returncode, 1, err[-2000:])
            self.assertIn("Address already in use", err)
            # The first one still serves, alone.
            status, _, data = first.post(body=body_for("second-daemon", 0),
                                         headers={"Content-Type": "application/json"})
            self.assertEqual(status, 202, data)
    def test_every_thread_runs_under_the_configured_policy(self):
        # process.sched_batch (default true): the event loops and librdkafka's threads under
        # SCHED_BATCH (3); false leaves SCHED_OTHER (0). The spool's sync thread (hb-spool-sync,
        # started by the first spooled event) runs under SCHED_OTHER either way: it gates every
        # spooled answer, so its wake-ups must preempt. Field 41 of /proc/PID/task/TID/stat is
        # the thread's policy.
        def policies(pid):
            out = {}
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    with open(f"/proc/{pid}/task/{tid}/stat") as f:
                        stat = f.read()
                    with open(f"/proc/{pid}/task/{tid}/comm") as f:
                        comm = f.read().strip()
                except FileNotFoundError:
                    continue  # a thread that ended meanwhile
                # comm (field 2) may hold spaces: split after its closing parenthesis
                out[f"{comm}/{tid}"] = int(stat[stat.rindex(")") + 2:].split()[38])
            return out

        for batch, want in ((None, 3), (False, 0)):
            extra = {} if batch is None else {"process": {"sched_batch": batch}}
            with hbtest.Bridge(bootstrap=self.kafka, http={"workers": 2},
                               producer={"ack_timeout_ms": 300}, **extra) as bridge:
                status, _, data = bridge.post(body=body_for("policy", 0),
                                              headers={"Content-Type": "application/json"})
                self.assertEqual(status, 202, data)
                self.kafka.down()
                try:  # an event Kafka cannot take is spooled: that starts the sync thread
                    status, _, data = bridge.post(body=body_for("policy", 1),
                                                  headers={"Content-Type": "application/json"})
                    self.assertEqual(status, 202, data)
                    seen = policies(bridge.pid)
                finally:
                    self.kafka.up()
                self.assertTrue(any(n.startswith("rdk:broker") for n in seen), seen)
                self.assertGreaterEqual(len(seen), 5, seen)  # 2 loops, rdk:main, a broker, sync
                sync = {n: p for n, p in seen.items() if n.startswith("hb-spool-sync/")}
                self.assertEqual(list(sync.values()), [0], seen)
                self.assertEqual({n: p for n, p in seen.items() if p != want and n not in sync},
                                 {}, f"sched_batch={batch}: threads not under policy {want}")

if __name__ == "__main__":
    unittest.main()
