"""docker/prometheus/hookbridge.rules.yml: promtool checks the rules and runs their unit tests
(hookbridge.rules.test.yml), every alert has a case where it fires and one where it does not,
every alert is labelled and annotated with a runbook that exists in docs/alerts.md, the alerts
the docs promise are there, and the unit tests catch a changed threshold. Which metrics the
expressions read is checked against a running bridge by test_dashboard.py."""
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

PDIR = deploytools.source_dir() / "docker" / "prometheus"
RULES = PDIR / "hookbridge.rules.yml"
TESTS = PDIR / "hookbridge.rules.test.yml"
ALERTS_DOC = deploytools.source_dir() / "docs" / "alerts.md"

# What issue 14 and the docs name: Kafka down for minutes, spool filling, oldest spooled event
# ageing, rejected events, a topic parked, a refused reload, connections near the cap.
REQUIRED = {"HookbridgeKafkaDown", "HookbridgeSpoolFilling", "HookbridgeSpoolBacklogOld",
            "HookbridgeEventsRejected", "HookbridgeTopicParked", "HookbridgeReloadRefused",
            "HookbridgeConnectionsNearCap"}
SEVERITIES = {"critical", "warning", "info"}


def promtool(*args, cwd=PDIR):
    exe = shutil.which("promtool")
    if not exe:
        raise AssertionError("promtool not found: install Debian's prometheus package")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True)


def alert_rules():
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


class Rules(unittest.TestCase):
    def test_promtool_check_rules(self):
        done = promtool("check", "rules", RULES.name)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_promtool_test_rules(self):
        done = promtool("test", "rules", TESTS.name)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_each_alert_fires_and_holds_back(self):
        fired, quiet = set(), set()
        for case in yaml.safe_load(TESTS.read_text())["tests"]:
            for ev in case.get("alert_rule_test", []):
                (fired if ev["exp_alerts"] else quiet).add(ev["alertname"])
        names = {r["alert"] for r in alert_rules()}
        self.assertEqual(fired, names, "alerts without a case where they fire (or unknown)")
        self.assertEqual(quiet, names, "alerts without a case where they stay quiet")

    def test_labels_and_annotations(self):
        doc = ALERTS_DOC.read_text()
        anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
                   for h in re.findall(r"^#+ (.+)$", doc, re.M)}
        for rule in alert_rules():
            with self.subTest(alert=rule["alert"]):
                self.assertIn(rule["labels"]["severity"], SEVERITIES)
                ann = rule["annotations"]
                self.assertTrue(ann["summary"] and ann["description"])
                page, _, anchor = ann["runbook_url"].partition("#")
                self.assertEqual(page, "docs/alerts.md")
                self.assertIn(anchor, anchors, "runbook anchor missing from docs/alerts.md")

    def test_the_named_alerts_are_there(self):
        self.assertLessEqual(REQUIRED, {r["alert"] for r in alert_rules()})

    def test_unit_tests_catch_a_changed_threshold(self):
        # The unit tests must be able to fail: with SpoolFilling's threshold moved past the
        # tests' 85 % the firing case no longer fires.
        with tempfile.TemporaryDirectory(prefix="hb-rules-") as tmp:
            text = RULES.read_text()
            moved = text.replace("hookbridge_spool_max_bytes > 0.8\n",
                                 "hookbridge_spool_max_bytes > 0.9\n")
            self.assertNotEqual(text, moved)
            with open(os.path.join(tmp, RULES.name), "w") as f:
                f.write(moved)
            shutil.copy(TESTS, tmp)
            done = promtool("test", "rules", TESTS.name, cwd=tmp)
            self.assertNotEqual(done.returncode, 0)
            self.assertIn("HookbridgeSpoolFilling", done.stdout + done.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
