"""docker/kubernetes/ as a cluster would take it: every manifest passes kubernetes-validate's
strict schemas for a current Kubernetes; the ConfigMap's config, with the Secret's files where
the pod mounts them, passes the real binary's --check-config and runs (probes, a webhook with
the Secret's token, a clean SIGTERM) against the mock cluster; and the pieces agree: mounts and
the config's paths, ports, probes, the stop's grace period against the config's stop times,
resources against the bench's RSS, non-root."""
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import deploytools  # noqa: E402

deploytools.ensure_venv()

import kubernetes_validate  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, str(deploytools.source_dir() / "tests" / "integration"))
import hbtest  # noqa: E402

# The newest release kubernetes-validate 1.37.0 has schemas for, and the oldest the manifests
# claim (the preStop sleep action is on by default from 1.30).
K8S_VERSIONS = ["1.37", "1.30"]
# The margin beyond the stop's own times for the last spool sync and the exit.
GRACE_MARGIN_S = 5
# http.shutdown_grace_ms's default (issue 11) while the binary does not have the option yet.
ASSUMED_SHUTDOWN_GRACE_MS = 5000

KDIR = deploytools.source_dir() / "docker" / "kubernetes"
SECRET_EXAMPLE = "secret.example.yaml"


def load_docs():
    """{(kind, name): document} over every manifest the kustomization lists and the example
    Secret (which it leaves out: its token is public)."""
    kust = yaml.safe_load((KDIR / "kustomization.yaml").read_text())
    docs = {}
    for res in kust["resources"] + [SECRET_EXAMPLE]:
        for doc in yaml.safe_load_all((KDIR / res).read_text()):
            if doc:
                docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return kust, docs


def mebibytes(quantity):
    m = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    if not m:
        raise AssertionError(f"quantity {quantity!r} is not NMi or NGi")
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


class Manifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hb_bin = hbtest.env_path("HB_BIN")
        cls.kust, cls.docs = load_docs()
        cls.sts = cls.docs[("StatefulSet", "hookbridge")]
        cls.pod = cls.sts["spec"]["template"]["spec"]
        (cls.container,) = cls.pod["containers"]
        cm = cls.docs[("ConfigMap", "hookbridge-config")]
        cls.conf_text = cm["data"]["hookbridge.conf"]
        cls.conf = deploytools.conf_scalars(cls.conf_text)
        cls.secret = cls.docs[("Secret", "hookbridge-secrets")]
        cls.defaults = deploytools.option_defaults(cls.hb_bin)

    def setting(self, name):
        """The config's value of an option, else the binary's default (as int when numeric)."""
        if name in self.conf:
            return self.conf[name]
        value = self.defaults[name]
        return int(value) if re.fullmatch(r"-?\d+", value) else value

    def mount(self, volume_name):
        (m,) = [m for m in self.container["volumeMounts"] if m["name"] == volume_name]
        return m

    def port(self, name):
        (p,) = [p for p in self.container["ports"] if p["name"] == name]
        return p["containerPort"]

    # -- the cluster's view --------------------------------------------------------------------

    def test_kustomization_lists_every_manifest(self):
        files = sorted(p.name for p in KDIR.glob("*.yaml")
                       if p.name not in ("kustomization.yaml", SECRET_EXAMPLE))
        self.assertEqual(sorted(self.kust["resources"]), files)
        # The Secret the pods mount is the example's name, created by the operator.
        self.assertEqual(self.secret["metadata"]["name"],
                         [v for v in self.pod["volumes"]
                          if v["name"] == "secrets"][0]["secret"]["secretName"])

    def test_strict_schema(self):
        for version in K8S_VERSIONS:
            for (kind, name), doc in self.docs.items():
                with self.subTest(version=version, kind=kind, name=name):
                    kubernetes_validate.validate(doc, version, strict=True)

    def test_strict_schema_catches_a_misspelt_field(self):
        # The check above must be able to fail: strict mode refuses a field the schema lacks.
        broken = yaml.safe_load(yaml.safe_dump(self.sts))
        broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
        with self.assertRaises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)

    def test_image_tag_is_the_project_version(self):
        cmake = (deploytools.source_dir() / "CMakeLists.txt").read_text()
        version = re.search(r"project\(hookbridge VERSION (\S+)", cmake).group(1)
        self.assertEqual(self.container["image"], f"hookbridge:{version}")
        (img,) = self.kust["images"]
        self.assertEqual((img["name"], img["newTag"]), ("hookbridge", version))

    # -- the pieces agree ----------------------------------------------------------------------

    def test_selectors_match_the_pods(self):
        labels = self.sts["spec"]["template"]["metadata"]["labels"]
        selected = [self.sts["spec"]["selector"]["matchLabels"]]
        for (kind, _), doc in self.docs.items():
            if kind == "Service":
                selected.append(doc["spec"]["selector"])
            elif kind == "PodDisruptionBudget":
                selected.append(doc["spec"]["selector"]["matchLabels"])
        for sel in selected:
            self.assertLessEqual(sel.items(), labels.items())
        headless = self.docs[("Service", self.sts["spec"]["serviceName"])]
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        names = {p["name"] for p in self.container["ports"]}
        for (kind, _), doc in self.docs.items():
            if kind == "Service":
                for p in doc["spec"]["ports"]:
                    self.assertIn(p["targetPort"], names)

    def test_config_paths_are_the_mounts(self):
        args = self.container["args"]
        config_path = args[args.index("--config") + 1]
        cm = self.mount("config")
        (item,) = [v for v in self.pod["volumes"] if v["name"] == "config"][0]["configMap"]["items"]
        self.assertEqual(config_path, f"{cm['mountPath']}/{item['path']}")
        self.assertEqual(item["key"], "hookbridge.conf")
        # Every @include is a key of the Secret, at the secret volume's mount path.
        secrets = self.mount("secrets")["mountPath"]
        includes = deploytools.conf_includes(self.conf_text)
        self.assertTrue(includes)
        keys = set(self.secret["stringData"])
        self.assertEqual({f"{secrets}/{k}" for k in keys}, set(includes))
        # The spool is the claim template's volume, one per replica.
        (claim,) = self.sts["spec"]["volumeClaimTemplates"]
        self.assertEqual(self.mount(claim["metadata"]["name"])["mountPath"],
                         self.setting("spool.dir"))
        self.assertEqual(claim["spec"]["accessModes"], ["ReadWriteOnce"])
        size = mebibytes(claim["spec"]["resources"]["requests"]["storage"]) * 2**20
        self.assertGreater(size, self.setting("spool.max_bytes") +
                           self.setting("spool.min_free_bytes") +
                           self.setting("spool.segment_bytes"))

    def test_listen_ports_are_the_container_ports(self):
        self.assertEqual(int(self.setting("http.listen").rsplit(":", 1)[1]), self.port("webhook"))
        host, port = self.setting("admin.listen").rsplit(":", 1)
        self.assertEqual(int(port), self.port("admin"))
        # The kubelet probes the pod's address, not its loopback.
        self.assertEqual(host, "0.0.0.0")

    def test_probes(self):
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                            ("readinessProbe", "/readyz")):
            with self.subTest(probe=probe):
                get = self.container[probe]["httpGet"]
                self.assertEqual((get["path"], get["port"]), (path, "admin"))

    def test_grace_period_covers_the_graceful_stop(self):
        pre_stop = self.container["lifecycle"]["preStop"]["sleep"]["seconds"]
        if "http.shutdown_grace_ms" in self.defaults or "http.shutdown_grace_ms" in self.conf:
            grace_ms = self.setting("http.shutdown_grace_ms")
        else:
            grace_ms = ASSUMED_SHUTDOWN_GRACE_MS
        # The stop's worst case: the grace, then a request that arrived just before its end
        # takes its full time to arrive and waits for Kafka's ack, then the in-flight deliveries
        # get their time.
        parts = {"http.shutdown_grace_ms": grace_ms}
        for opt in ("http.request_timeout_ms", "producer.ack_timeout_ms",
                    "producer.shutdown_timeout_ms"):
            parts[opt] = self.setting(opt)
        need = pre_stop + sum(parts.values()) / 1000 + GRACE_MARGIN_S
        have = self.pod["terminationGracePeriodSeconds"]
        self.assertGreaterEqual(have, need, f"preStop {pre_stop} s + {parts} + {GRACE_MARGIN_S} s")

    def test_runs_as_non_root(self):
        psc, csc = self.pod["securityContext"], self.container["securityContext"]
        self.assertTrue(psc["runAsNonRoot"])
        self.assertGreater(psc["runAsUser"], 0)
        self.assertEqual(psc["fsGroup"], psc["runAsGroup"])
        self.assertFalse(csc["allowPrivilegeEscalation"])
        self.assertTrue(csc["readOnlyRootFilesystem"])
        self.assertEqual(csc["capabilities"]["drop"], ["ALL"])

    def test_runs_as_the_image_user(self):
        # The image's user hookbridge has a fixed uid (docker/make-rootfs --uid N, or useradd
        # --uid N); the pods must run as that one, for the files the image owns.
        dockerfile = (deploytools.source_dir() / "docker" / "Dockerfile").read_text()
        m = re.search(r"--uid[ =](\d+)", dockerfile)
        if not m:
            self.skipTest("docker/Dockerfile gives the user hookbridge no fixed uid")
        self.assertEqual(self.pod["securityContext"]["runAsUser"], int(m.group(1)))

    def test_resources_from_the_bench(self):
        # The bench's peak RSS, wherever the performance section now lives.
        root = deploytools.source_dir()
        texts = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
        peaks = []
        for path in texts:
            if path.exists():
                for line in path.read_text().splitlines():
                    if line.startswith("| peak RSS"):
                        peaks += [float(x) for x in re.findall(r"([\d.]+) MiB", line)]
        self.assertTrue(peaks, "no '| peak RSS ... MiB' row in README.md or docs/*.md")
        res = self.container["resources"]
        request = mebibytes(res["requests"]["memory"])
        limit = mebibytes(res["limits"]["memory"])
        self.assertGreaterEqual(request, max(peaks))
        self.assertGreaterEqual(limit, 2 * max(peaks))

    # -- the real binary -----------------------------------------------------------------------

    def write_config(self, tmp, secrets=None, **replace):
        """The ConfigMap's config with the Secret's files in tmp/secrets (or the given ones)
        and the given "old" -> "new" texts replaced; returns its path."""
        mount = self.mount("secrets")["mountPath"]
        sdir = tmp / "secrets"
        sdir.mkdir(exist_ok=True)
        for key, value in (secrets or self.secret["stringData"]).items():
            (sdir / key).write_text(value)
        text = self.conf_text.replace(f'"{mount}/', f'"{sdir}/')
        for old, new in replace.items():
            self.assertIn(old, text)
            text = text.replace(old, new)
        path = tmp / "hookbridge.conf"
        path.write_text(text)
        return path

    def check_config(self, path):
        return subprocess.run([self.hb_bin, "--check-config", "--config", str(path)],
                              capture_output=True, text=True)

    def test_check_config_with_the_secret(self):
        with tempfile.TemporaryDirectory(prefix="hb-k8s-") as tmp:
            tmp = pathlib.Path(tmp)
            done = self.check_config(self.write_config(tmp))
            self.assertEqual(done.returncode, 0, done.stderr)
            # The Secret's files are read: a token too short to be one is refused.
            bad = dict(self.secret["stringData"], **{"auth.conf": 'tokens = ( "short" );\n'})
            done = self.check_config(self.write_config(tmp, bad))
            self.assertEqual(done.returncode, 2)
            self.assertIn("auth.tokens[0]", done.stderr)
            # And so is kafka.conf, inside the kafka group.
            bad = dict(self.secret["stringData"],
                       **{"kafka.conf": 'security_protocol = "nonsense";\n'})
            done = self.check_config(self.write_config(tmp, bad))
            self.assertEqual(done.returncode, 2)
            self.assertIn("security.protocol", done.stderr)

    def test_the_config_runs(self):
        token = re.search(r'"([^"]+)"', self.secret["stringData"]["auth.conf"]).group(1)
        with tempfile.TemporaryDirectory(prefix="hb-k8s-") as tmp, \
                hbtest.MockCluster(topics=["cloud66.stack:1"]) as kafka:
            tmp = pathlib.Path(tmp)
            bootstrap = self.conf["kafka.bootstrap_servers"]
            text = self.write_config(
                tmp, **{'"0.0.0.0:8080"': '"127.0.0.1:0"', '"0.0.0.0:8081"': '"127.0.0.1:0"',
                        f'"{self.setting("spool.dir")}"': f'"{tmp / "spool"}"',
                        f'"{bootstrap}"': f'"{kafka.bootstrap}"'}).read_text()
            with hbtest.Bridge(text) as bridge:
                hbtest.wait_until(lambda: bridge.admin_port, 10, "the admin listener")
                self.assertEqual(bridge.get("/healthz", admin=True)[0], 200)
                hbtest.wait_until(lambda: bridge.get("/readyz", admin=True)[0] == 200, 15,
                                  "/readyz 200")
                body = (b'{"event_type":"stack.created","timestamp":1757011079,'
                        b'"stack":{"uid":"k8s-1"}}')
                status, _, _ = bridge.post(f"{bridge.path}/{token}", body)
                self.assertEqual(status, 202)
                self.assertEqual(bridge.post(f"{bridge.path}/not-the-token-0123456", body)[0], 401)
                (msg,) = hbtest.consume(kafka, "cloud66.stack", count=1)
                self.assertEqual(msg["key"], "k8s-1")
                self.assertEqual(msg["value"]["type"], "com.cloud66.stack.created")
                # SIGTERM, as the kubelet sends after preStop: a clean exit well within the
                # grace period left after the preStop sleep.
                left = (self.pod["terminationGracePeriodSeconds"] -
                        self.container["lifecycle"]["preStop"]["sleep"]["seconds"])
                started = time.monotonic()
                self.assertEqual(bridge.stop(timeout=left), 0)
                self.assertLess(time.monotonic() - started, left)


if __name__ == "__main__":
    unittest.main(verbosity=2)
