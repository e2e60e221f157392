"""docker/grafana/hookbridge.json and docker/prometheus/hookbridge.rules.yml read only what the
bridge exports: the real binary runs against the mock cluster, takes the seeds, reports its
brokers, and its /metrics is scraped; every hookbridge_* name in the dashboard and the rules must
be a family it exports (# TYPE lines; a histogram's _bucket, _sum and _count series), every label
a query filters on must be on that family's samples, and every family it exports must be on the
dashboard. The dashboard is valid JSON that Grafana can import, and each panel's PromQL parses
(promtool check rules on the queries as recording rules).

The metrics of work still under way (PENDING) may be missing only while the binary lacks the
option that comes with each; once it has it, they must be exported under these names."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import deploytools  # noqa: E402

deploytools.ensure_venv()

import yaml  # noqa: E402

sys.path.insert(0, str(deploytools.source_dir() / "tests" / "integration"))
import hbtest  # noqa: E402

DASHBOARD = deploytools.source_dir() / "docker" / "grafana" / "hookbridge.json"
RULES = deploytools.source_dir() / "docker" / "prometheus" / "hookbridge.rules.yml"
TOPICS = ["cloud66.application:1", "cloud66.stack:1", "cloud66.backup:1"]

# Metrics of work under way when this was written (issue 11's per-topic isolation and dead
# letters; the HTTP server's replay cache), as their branches name them, each with the option
# that lands with it: a binary with the option must export the metric.
PENDING = {"hookbridge_topic_parked": "dead_letter.topic",
           "hookbridge_deadletters_total": "dead_letter.topic",
           "hookbridge_http_replay_hits_total": "auth.replay_cache_size"}
# Labels Prometheus adds from the scrape target, not the bridge.
TARGET_LABELS = {"instance", "job", "namespace", "pod"}

_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$", re.M)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? \S+$", re.M)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape():
    """(families {name: type}, labels {family: {label: {values}}}) of a bridge that took every
    seed and reported its brokers."""
    with hbtest.MockCluster(topics=TOPICS) as kafka, \
            hbtest.Bridge(bootstrap=kafka, kafka={"statistics.interval.ms": 200}) as bridge:
        for _, body in hbtest.seed_payloads():
            bridge.post(body=body)
        bridge.get("/healthz")  # the listener's own answers (endpoint="healthz")

        def brokers_reported():
            status, _, text = bridge.get("/metrics", admin=True)
            text = text.decode("utf-8")
            return text if status == 200 and "hookbridge_kafka_broker_state{" in text else None
        text = hbtest.wait_until(brokers_reported, 15, "broker states in /metrics")
    families = dict(_TYPE.findall(text))
    labels = {}
    for name, body in _SAMPLE.findall(text):
        fam = deploytools.family_of(name, families)
        seen = labels.setdefault(fam, {})
        for label, value in _LABEL.findall(body or ""):
            seen.setdefault(label, set()).add(value)
    return families, labels


def dashboard_exprs(dash):
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def as_plain_promql(expr):
    """A Grafana query with its variables replaced, so that promtool can parse it."""
    return (expr.replace("$__rate_interval", "5m").replace("$__range", "6h")
            .replace("$instance", ".*"))


class Dashboard(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        hb_bin = hbtest.env_path("HB_BIN")
        options = deploytools.option_defaults(hb_bin)
        cls.may_miss = {m for m, opt in PENDING.items() if opt not in options}
        cls.families, cls.labels = scrape()
        cls.dash_text = DASHBOARD.read_text()
        cls.dash = json.loads(cls.dash_text)
        cls.rules_text = RULES.read_text()

    def exported(self, name):
        return deploytools.family_of(name, self.families)

    def check_names(self, text, where):
        missing = sorted(n for n in deploytools.query_metrics(text) if not self.exported(n))
        self.assertEqual([n for n in missing if n not in self.may_miss], [],
                         f"{where} names metrics the bridge does not export")

    def label_problems(self, exprs):
        """What the queries filter on that the bridge's samples do not carry."""
        out = []
        for expr in exprs:
            for metric, label, op, value in deploytools.query_matchers(expr):
                fam = self.exported(metric)
                if label in TARGET_LABELS or fam is None or fam not in self.labels:
                    continue
                if label not in self.labels[fam]:
                    out.append(f"{metric} has no label {label}")
                elif op == "=" and value not in self.labels[fam][label]:
                    out.append(f"{metric}{{{label}}} is never {value!r}")
        return out

    def test_the_scrape_is_what_it_should_be(self):
        # The checks below are only as good as the scrape: it must hold the families with
        # labels, the histogram, and every outcome of the events.
        self.assertEqual(self.families.get("hookbridge_event_ack_seconds"), "histogram")
        self.assertEqual(self.labels["hookbridge_events_total"]["outcome"],
                         {"published", "spooled", "rejected"})
        self.assertIn("state", self.labels["hookbridge_kafka_broker_state"])

    def test_dashboard_names_only_exported_metrics(self):
        self.check_names(self.dash_text, "docker/grafana/hookbridge.json")

    def test_rules_name_only_exported_metrics(self):
        self.check_names(self.rules_text, "docker/prometheus/hookbridge.rules.yml")

    def test_a_metric_it_does_not_export_is_caught(self):
        # check_names must be able to fail.
        with self.assertRaises(AssertionError):
            self.check_names("rate(hookbridge_events_totl[5m])", "a typo")

    def test_query_labels_are_on_the_samples(self):
        rules = yaml.safe_load(self.rules_text)
        exprs = [e for _, e in dashboard_exprs(self.dash)]
        exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
        self.assertEqual(self.label_problems(exprs), [])
        # And the check can fail.
        self.assertEqual(len(self.label_problems(['hookbridge_events_total{outcome="lost"}',
                                                  'hookbridge_kafka_up{broker="b"}'])), 2)

    def test_every_exported_family_is_on_the_dashboard(self):
        shown = {self.exported(n) for n in deploytools.query_metrics(self.dash_text)}
        self.assertEqual(sorted(set(self.families) - shown), [],
                         "metrics the bridge exports that no panel shows")

    def test_grafana_can_import_it(self):
        d = self.dash
        self.assertEqual((d["uid"], d["title"]), ("hookbridge", "hookbridge"))
        self.assertIsInstance(d["schemaVersion"], int)
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        variables = {v["name"] for v in d["templating"]["list"]}
        self.assertEqual(variables, {"datasource", "instance"})
        for panel in d["panels"]:
            if panel["type"] == "row":
                continue
            with self.subTest(panel=panel["title"]):
                g = panel["gridPos"]
                self.assertLessEqual(g["x"] + g["w"], 24)
                self.assertTrue(panel["targets"])
                self.assertEqual(panel["datasource"]["uid"], "${datasource}")
                refs = [t["refId"] for t in panel["targets"]]
                self.assertEqual(len(refs), len(set(refs)))

    def test_dashboard_queries_parse(self):
        exe = shutil.which("promtool")
        if not exe:
            raise AssertionError("promtool not found: install Debian's prometheus package")
        rules = [{"record": f"dashboard:query_{i}", "expr": as_plain_promql(expr)}
                 for i, (_, expr) in enumerate(dashboard_exprs(self.dash))]
        with tempfile.TemporaryDirectory(prefix="hb-dash-") as tmp:
            path = os.path.join(tmp, "queries.yml")
            with open(path, "w") as f:
                yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
            done = subprocess.run([exe, "check", "rules", path], capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
