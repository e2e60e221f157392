"""hbtest: drives the real hookbridge binary against hb-mock's Kafka cluster (stdlib only).

Paths come from the environment CTest sets (tests/CMakeLists.txt, hb_py_test):
HB_BIN, HB_MOCK, HB_CONSUME, HB_SOURCE_DIR, HB_FIXTURES, HB_GOLDEN.

    with MockCluster(topics=["cloud66.stack:1"]) as kafka, Bridge(bootstrap=kafka) as bridge:
        status, headers, body = bridge.post(bridge.path, payload)
        events = consume(kafka, "cloud66.stack", count=1)

Every wait has a deadline; nothing sleeps except the short poll interval of a deadline
loop. Every child process is ended when its context exits, and again at interpreter
exit for anything a crashed test left behind. Temporary directories are removed unless
HB_KEEP_TMP=1.
"""

import atexit
import http.client
import json
import os
import pathlib
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

POLL_INTERVAL = 0.02  # seconds between checks inside a deadline loop

_children = set()  # every Popen still running, for the atexit sweep


def _reap_children():
    for proc in list(_children):
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    _children.clear()


atexit.register(_reap_children)


def env_path(name):
    """The path in environment variable `name`; the test is skipped when it is unset."""
    value = os.environ.get(name)
    if not value:
        raise unittest.SkipTest(f"{name} is not set (run the test through ctest)")
    return value


def keep_tmp():
    return os.environ.get("HB_KEEP_TMP") == "1"


def make_tmpdir(prefix):
    return pathlib.Path(tempfile.mkdtemp(prefix=f"hb-{prefix}-"))


def remove_tmpdir(path):
    if path is None:
        return
    if keep_tmp():
        print(f"hbtest: kept {path}", file=sys.stderr)
    else:
        shutil.rmtree(path, ignore_errors=True)


def wait_until(predicate, timeout, what="condition"):
    """Polls predicate() until it returns something truthy, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def _start(argv, **kwargs):
    proc = subprocess.Popen(argv, **kwargs)
    _children.add(proc)
    return proc


def _end(proc, sig=signal.SIGTERM, timeout=10):
    """Signals proc and waits; SIGKILL when it outlives the timeout. Returns (code, timed_out)."""
    timed_out = False
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            proc.wait()
    _children.discard(proc)
    return proc.returncode, timed_out


# ---- mock Kafka cluster ------------------------------------------------------------------


class MockError(RuntimeError):
    """hb-mock answered "error <reason>" or went away."""


class MockCluster:
    """A librdkafka mock cluster in an hb-mock child process.

    topics: names, "name:partitions" or (name, partitions) tuples created before start.
    Topics not created here are auto-created by a producer's metadata request with
    4 partitions (the mock's default in librdkafka 2.0.2 and 2.8.0).
    """

    def __init__(self, brokers=3, topics=(), start_timeout=10):
        self.brokers = brokers
        self.bootstrap = None
        self.start_seconds = None  # how long hb-mock took to print its bootstrap line
        argv = [env_path("HB_MOCK"), "--brokers", str(brokers)]
        for topic in topics:
            if isinstance(topic, tuple):
                topic = f"{topic[0]}:{topic[1]}"
            argv += ["--topic", topic]
        self._lines = queue.Queue()
        self._stderr = []
        started = time.monotonic()
        self._proc = _start(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1)
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for thread in self._threads:
            thread.start()
        try:
            line = self._next_line(start_timeout, "the bootstrap line")
            if not line.startswith("bootstrap "):
                raise MockError(f"hb-mock said {line!r} instead of its bootstrap line")
        except BaseException:
            self.close()
            raise
        self.bootstrap = line.split(" ", 1)[1]
        self.start_seconds = time.monotonic() - started

    def _read_stdout(self):
        for line in self._proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)  # EOF

    def _read_stderr(self):
        for line in self._proc.stderr:
            self._stderr.append(line.rstrip("\n"))

    def _next_line(self, timeout, what):
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"hb-mock: no answer in {timeout:g} s waiting for {what}") from None
        if line is None:
            self._lines.put(None)  # keep reporting EOF to later callers
            raise MockError(f"hb-mock exited ({self._proc.poll()}) waiting for {what}; "
                            f"stderr: {self.stderr_tail()}")
        return line

    def cmd(self, line, timeout=10):
        """Sends one command ("down 1", "errors 0 5 _TRANSPORT"...) and waits for its "ok"."""
        if "\n" in line:
            raise ValueError("one command at a time")
        try:
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise MockError(f"hb-mock is gone: {exc}") from None
        answer = self._next_line(timeout, repr(line))
        if answer != "ok":
            raise MockError(f"hb-mock: {line!r}: {answer}")

    # Shorthands for the commands; broker is an id (1..brokers) or "all".
    def down(self, broker="all"):
        self.cmd(f"down {broker}")

    def up(self, broker="all"):
        self.cmd(f"up {broker}")

    def errors(self, apikey, count, err):
        self.cmd(f"errors {apikey} {count} {err}")

    def rtt(self, broker, ms):
        self.cmd(f"rtt {broker} {ms}")

    def create(self, topic, partitions=1):
        self.cmd(f"create {topic} {partitions}")

    def topic_error(self, topic, err):
        """Metadata answers err for topic (0 clears it); see tests/tools/mock.c."""
        self.cmd(f"topic-error {topic} {err}")

    def stderr_tail(self, n=20):
        return "\n".join(self._stderr[-n:])

    def close(self, timeout=10):
        """Asks hb-mock to quit (EOF on its stdin); returns its exit code."""
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        if self._proc.poll() is None:
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        code, _ = _end(self._proc)
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in (self._proc.stdout, self._proc.stderr):
            stream.close()
        return code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ---- configuration -----------------------------------------------------------------------

DEFAULT_WEBHOOK_PATH = "/webhooks/cloud66"
_NAME = re.compile(r"^[A-Za-z*][-A-Za-z0-9_*]*$")
_INT32 = range(-2**31, 2**31)


def _quote(text):
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t").replace("\f", "\\f"))
    return f'"{escaped}"'


def _render_value(value, indent):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if value in _INT32 else f"{value}L"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, (list, tuple)):
        return "( " + ", ".join(_render_value(v, indent) for v in value) + " )"
    if isinstance(value, dict):
        pad = "  " * (indent + 1)
        body = "".join(f"{pad}{_setting(k, v, indent + 1)}\n" for k, v in value.items())
        return "{\n" + body + "  " * indent + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as libconfig")


def _setting(name, value, indent):
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a libconfig setting name")
    return f"{name} = {_render_value(value, indent)};"


def make_config(bootstrap, spool_dir, overrides=None, **kv):
    """libconfig text for hookbridge: test defaults (port 0 listeners, debug logs) + overrides.

    overrides / kv map a group name to a dict of settings merged into that group; a
    setting (or group) set to None is left out. In the kafka group, librdkafka's
    dotted names may be given as they are ("linger.ms"): the dots become '_'.
        make_config(b, d, {"http": {"max_body_bytes": 100}}, kafka={"linger.ms": 5})
    """
    if isinstance(bootstrap, MockCluster):
        bootstrap = bootstrap.bootstrap
    groups = {
        # A short stop grace (default 5 s): every stop goes through it, quickly.
        "http": {"listen": "127.0.0.1:0", "path": DEFAULT_WEBHOOK_PATH, "max_body_bytes": 1048576,
                 "shutdown_grace_ms": 200},
        "admin": {"listen": "127.0.0.1:0"},
        "log": {"level": "debug"},
        "envelope": {"source": "/cloud66", "mode": "structured"},
        "routing": {"topic_prefix": "cloud66."},
        "producer": {"ack_timeout_ms": 5000},
        "spool": {"dir": str(spool_dir), "commit_window_ms": 2},
        "kafka": {"bootstrap_servers": bootstrap},
    }
    merged = dict(overrides or {})
    merged.update(kv)
    for group, settings in merged.items():
        if settings is None:
            groups.pop(group, None)
        elif isinstance(settings, dict):
            target = groups.setdefault(group, {})
            for name, value in settings.items():
                if group == "kafka":
                    name = name.replace(".", "_")
                if value is None:
                    target.pop(name, None)
                else:
                    target[name] = value
        else:
            groups[group] = settings  # a top-level scalar or list setting
    lines = ["# written by hbtest.make_config"]
    lines += [_setting(name, value, 0) for name, value in groups.items()]
    return "\n".join(lines) + "\n"


# ---- the daemon ----------------------------------------------------------------------------


class BridgeError(RuntimeError):
    pass


# A config whose admin group sets a non-empty listen address (libconfig text).
ADMIN_LISTEN_RE = re.compile(r'\badmin\s*[=:]\s*\{[^}]*\blisten\s*[=:]\s*"[^"]+"')


def _parse_addr(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


class Bridge:
    """The hookbridge binary with a generated (or given) config, logs captured.

    Bridge(bootstrap=kafka, http={...}, kafka={...})  builds the config with make_config;
    Bridge(config_text)                                 writes the given text as it is.
    spool_dir: reuse a spool directory (restart and crash tests); default tmpdir/spool.
    .logs is the list of log lines (dicts; a line that is not JSON is {"raw": line}).
    """

    def __init__(self, config_text=None, *, bootstrap=None, spool_dir=None, args=(),
                 start_timeout=15, env=None, **overrides):
        self.tmpdir = make_tmpdir("bridge")
        self.spool_dir = pathlib.Path(spool_dir) if spool_dir else self.tmpdir / "spool"
        if config_text is None:
            if bootstrap is None:
                raise ValueError("Bridge needs config_text or bootstrap")
            config_text = make_config(bootstrap, self.spool_dir, **overrides)
            self.path = overrides.get("http", {}).get("path", DEFAULT_WEBHOOK_PATH)
        else:
            self.path = DEFAULT_WEBHOOK_PATH
        self.config_path = self.tmpdir / "hookbridge.conf"
        self.config_path.write_text(config_text)
        self.log_path = self.tmpdir / "hookbridge.log"
        self.args = list(args)
        self.env = env
        self.start_timeout = start_timeout
        self.logs = []
        self._raw = []
        self._cond = threading.Condition()
        self._proc = None
        self._reader = None
        self._eof = True
        self.host = self.port = self.admin_port = None
        try:
            self.start()
        except BaseException:
            remove_tmpdir(self.tmpdir)
            raise

    # -- lifecycle --

    def start(self):
        """Starts the daemon and waits for its HTTP listener. Also used to restart it."""
        if self._proc is not None and self._proc.poll() is None:
            raise BridgeError("already running")
        with self._cond:
            since = len(self.logs)
            self._eof = False
            self.port = self.admin_port = None
        logfile = open(self.log_path, "a", encoding="utf-8")
        self._proc = _start([env_path("HB_BIN"), "--config", str(self.config_path), *self.args],
                            stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.PIPE,
                            env=self.env)
        self._reader = threading.Thread(target=self._read_logs, args=(self._proc, logfile),
                                        daemon=True)
        self._reader.start()
        try:
            self.wait_log(lambda l: l.get("msg") == "listening" and l.get("component") == "http",
                          self.start_timeout, since=since, what="the http listener")
            # The admin listener opens after the webhook one: a test that reads admin_port
            # right after start must not race it.
            if ADMIN_LISTEN_RE.search(self.config_path.read_text()):
                self.wait_log(lambda l: l.get("msg") == "listening" and
                              l.get("component") == "admin",
                              self.start_timeout, since=since, what="the admin listener")
        except BaseException:
            self.kill9()
            raise

    def _read_logs(self, proc, logfile):
        with logfile:
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                logfile.write(line + "\n")
                logfile.flush()
                try:
                    entry = json.loads(line)
                    if not isinstance(entry, dict):
                        raise ValueError
                except ValueError:
                    entry = {"raw": line}
                with self._cond:
                    if entry.get("msg") == "listening" and "addr" in entry:
                        if entry.get("component") == "http":
                            self.host, self.port = _parse_addr(entry["addr"])
                        elif entry.get("component") == "admin":
                            self.admin_port = _parse_addr(entry["addr"])[1]
                    self.logs.append(entry)
                    self._raw.append(line)
                    self._cond.notify_all()
        proc.stderr.close()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def running(self):
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self):
        return self._proc.pid

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends sig and waits for the exit; returns the exit code (negative: killed by a
        signal). Raises BridgeError if it had to be SIGKILLed after timeout."""
        if self._proc is None:
            return None
        code, timed_out = _end(self._proc, sig, timeout)
        self._reader.join(timeout=5)
        if timed_out:
            raise BridgeError(f"hookbridge ignored signal {sig} for {timeout} s\n{self.log_tail()}")
        return code

    def kill9(self):
        """SIGKILL: a crash, as far as the spool can tell. Returns the exit code."""
        return self.stop(signal.SIGKILL, timeout=10)

    def restart(self, sig=signal.SIGTERM, timeout=30):
        code = self.stop(sig, timeout)
        self.start()
        return code

    def close(self):
        try:
            if self.running:
                self.stop(signal.SIGTERM, timeout=30)
        finally:
            remove_tmpdir(self.tmpdir)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not issubclass(exc_type, unittest.SkipTest):
            print(f"\n--- hookbridge log tail ({self.log_path}) ---\n{self.log_tail()}",
                  file=sys.stderr)
        self.close()
        return False

    # -- logs --

    def wait_log(self, predicate, timeout=10, since=0, what=None):
        """Waits for a log line (dict) from index `since` on that satisfies predicate;
        returns it. Raises TimeoutError at the deadline and BridgeError if the daemon
        exits first."""
        deadline = time.monotonic() + timeout
        checked = since
        with self._cond:
            while True:
                for entry in self.logs[checked:]:
                    if predicate(entry):
                        return entry
                checked = len(self.logs)
                if self._eof:
                    code = self._proc.poll() if self._proc else None
                    raise BridgeError(f"hookbridge exited ({code}) before "
                                      f"{what or 'the awaited log line'}\n{self.log_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no log line for {what or predicate} within "
                                       f"{timeout:g} s\n{self.log_tail()}")
                self._cond.wait(left)

    def find_logs(self, **fields):
        """Log lines whose fields equal all the given ones, e.g. find_logs(level="error")."""
        with self._cond:
            return [e for e in self.logs if all(e.get(k) == v for k, v in fields.items())]

    def log_tail(self, n=40):
        with self._cond:
            return "\n".join(self._raw[-n:])

    # -- HTTP --

    @property
    def url(self):
        """Base URL of the webhook listener (no path)."""
        return f"http://{self.host}:{self.port}"

    @property
    def admin_url(self):
        return f"http://{self.host}:{self.admin_port}" if self.admin_port else None

    def connection(self, timeout=10, admin=False, tls_context=None):
        """A new keep-alive connection to the webhook (or admin) listener; caller closes it.
        With tls_context (an ssl.SSLContext), HTTPS to the webhook listener."""
        port = self.admin_port if admin else self.port
        if port is None:
            raise BridgeError("that listener has not reported its address")
        if tls_context is not None:
            return http.client.HTTPSConnection(self.host, port, timeout=timeout,
                                               context=tls_context)
        return http.client.HTTPConnection(self.host, port, timeout=timeout)

    def post(self, path=None, body=b"", headers=None, method="POST", timeout=10, conn=None,
             admin=False, tls_context=None):
        """One request; returns (status, headers with lower-case names, body bytes).
        path defaults to the webhook path. Pass conn to reuse a keep-alive connection, or
        tls_context (an ssl.SSLContext) for HTTPS on a new one."""
        own = conn is None
        if own:
            conn = self.connection(timeout, admin, tls_context)
        hdrs = {"Content-Type": "application/json"} if body else {}
        hdrs.update(headers or {})
        try:
            conn.request(method, path or self.path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            if own:
                conn.close()

    def get(self, path, **kwargs):
        return self.post(path, b"", method="GET", **kwargs)


# ---- reading topics back -------------------------------------------------------------------


class ConsumeTimeout(AssertionError):
    """Fewer messages than asked for arrived before the deadline; .messages has them."""

    def __init__(self, message, messages):
        super().__init__(message)
        self.messages = messages


def consume(bootstrap, topics, count=None, timeout_ms=15000, idle_ms=None, extra=()):
    """Reads topics from the beginning with hb-consume --json; returns the messages (dicts).

    With count: returns once count messages arrived, raises ConsumeTimeout if timeout_ms
    passes first. Without: returns what arrived until nothing came for idle_ms (default
    1000) after reaching the end of a partition, or timeout_ms.
    """
    if isinstance(bootstrap, MockCluster):
        bootstrap = bootstrap.bootstrap
    if isinstance(topics, str):
        topics = [topics]
    argv = [env_path("HB_CONSUME"), "-b", bootstrap, "--json", "--timeout-ms", str(timeout_ms)]
    for topic in topics:
        argv += ["-t", topic]
    if count is not None:
        argv += ["-n", str(count)]
    if idle_ms is None and count is None:
        idle_ms = 1000
    if idle_ms is not None:
        argv += ["--idle-ms", str(idle_ms)]
    for prop in extra:
        argv += ["-X", prop]
    proc = _start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout_ms / 1000 + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise TimeoutError(f"hb-consume overran its own deadline: {err.decode()[-2000:]}") from None
    finally:
        _children.discard(proc)
    messages = [json.loads(line) for line in out.decode("utf-8").splitlines() if line]
    if proc.returncode == 2:
        raise ConsumeTimeout(f"{len(messages)} of {count} messages from {topics} within "
                             f"{timeout_ms} ms; hb-consume: {err.decode()[-2000:]}", messages)
    if proc.returncode != 0:
        raise RuntimeError(f"hb-consume failed ({proc.returncode}): {err.decode()[-2000:]}")
    return messages


# ---- fixtures ------------------------------------------------------------------------------


def seed_payloads():
    """[(event_type, payload bytes)] from HB_FIXTURES/seeds/*.json, sorted by file name.

    The event type is the payload's "event_type" member, or the file name without .json
    when the payload has none (or is not JSON: such seeds are kept, for negative tests).
    """
    seeds = pathlib.Path(env_path("HB_FIXTURES")) / "seeds"
    out = []
    for path in sorted(seeds.glob("*.json")):
        body = path.read_bytes()
        event_type = path.stem
        try:
            doc = json.loads(body)
            if isinstance(doc, dict) and isinstance(doc.get("event_type"), str):
                event_type = doc["event_type"]
        except ValueError:
            pass
        out.append((event_type, body))
    return out


def have_tool(name):
    return shutil.which(name) is not None


# ---- configuration reload ------------------------------------------------------------------


def reload(bridge, config_text=None, timeout=15):
    """Rewrites the bridge's config file (when config_text is given), sends SIGHUP and waits
    for the outcome; returns its log line: msg "config reloaded", or "config reload refused;
    keeping the running config" (level error, with the reason)."""
    since = len(bridge.logs)
    if config_text is not None:
        bridge.config_path.write_text(config_text)
    os.kill(bridge.pid, signal.SIGHUP)
    return bridge.wait_log(lambda l: l.get("component") == "bridge" and (
        l.get("msg") == "config reloaded" or l.get("msg", "").startswith("config reload refused")),
        timeout, since=since, what="the reload's outcome")
