#!/usr/bin/env python3
"""Validate hookbridge envelopes against schema/envelope.schema.json.

Uses the `jsonschema` package when it can be imported (Debian: python3-jsonschema, which
scripts/install-deps installs), else a small stdlib validator that implements exactly the
JSON Schema 2020-12 keywords that schema uses (type, const, pattern, minLength, maxLength,
required, properties, additionalProperties: false, format: date-time). Both give the same answer on
that schema; `--self-test` checks that on good and bad samples.

As a library:  from schema_check import validate_envelope; errs = validate_envelope(obj)
As a command:  schema_check.py FILE...   (each file: one envelope JSON, or JSON lines)
               schema_check.py -          (JSON lines on stdin, e.g. hb-consume / kcat output)
               schema_check.py --self-test
Exit status: 0 when every envelope is valid, 1 otherwise, 2 on usage errors.
"""

import datetime
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA_PATH = os.path.join(ROOT, "schema", "envelope.schema.json")

_schema_cache = None


def load_schema(path=SCHEMA_PATH):
    global _schema_cache
    if _schema_cache is None or path != SCHEMA_PATH:
        with open(path, encoding="utf-8") as f:
            s = json.load(f)
        if path != SCHEMA_PATH:
            return s
        _schema_cache = s
    return _schema_cache


# ---- stdlib validator ---------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

SUPPORTED = {"$schema", "$id", "title", "description", "type", "const", "pattern", "minLength",
             "maxLength", "required", "properties", "additionalProperties", "format", "examples"}


def _is_datetime(s):
    m = _RFC3339.match(s)
    if not m:
        return False
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    try:
        datetime.date(y, mo, d)
    except ValueError:
        return False
    return h <= 23 and mi <= 59 and sec <= 60  # 60: leap second, as RFC 3339 allows


def _type_ok(value, t):
    if isinstance(t, list):
        return any(_type_ok(value, x) for x in t)
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "null":
        return value is None
    raise ValueError("unsupported type %r" % t)


def _json_equal(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _validate(schema, value, path, errors):
    unknown = set(schema) - SUPPORTED
    if unknown:
        raise ValueError("schema keyword(s) %s at %s not supported by the stdlib validator; "
                         "extend tests/integration/schema_check.py" % (sorted(unknown), path))
    if "type" in schema and not _type_ok(value, schema["type"]):
        errors.append("%s: %r is not of type %r" % (path, value, schema["type"]))
        return
    if "const" in schema and not _json_equal(value, schema["const"]):
        errors.append("%s: %r was expected" % (path, schema["const"]))
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append("%s: %r is too short" % (path, value))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append("%s: %r is too long" % (path, value))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append("%s: %r does not match %r" % (path, value, schema["pattern"]))
        if schema.get("format") == "date-time" and not _is_datetime(value):
            errors.append("%s: %r is not a 'date-time'" % (path, value))
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append("%s: %r is a required property" % (path, name))
        props = schema.get("properties", {})
        for name, sub in props.items():
            if name in value:
                _validate(sub, value[name], "%s.%s" % (path, name), errors)
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                errors.append("%s: additional properties are not allowed (%s)"
                              % (path, ", ".join(map(repr, extra))))


def validate_stdlib(obj, schema=None):
    errors = []
    _validate(schema or load_schema(), obj, "$", errors)
    return errors


# ---- jsonschema, when installed ---------------------------------------------------------------

def _jsonschema_validator(schema):
    try:
        import jsonschema  # noqa: F401
        from jsonschema import Draft202012Validator
    except ImportError:
        return None
    Draft202012Validator.check_schema(schema)
    checker = Draft202012Validator.FORMAT_CHECKER
    # jsonschema checks date-time only with rfc3339-validator installed; use ours so that both
    # paths agree.
    checker = type(checker)()
    checker.checks("date-time")(lambda v: not isinstance(v, str) or _is_datetime(v))
    return Draft202012Validator(schema, format_checker=checker)


def validate_envelope(obj, use_jsonschema=None):
    """Returns a list of error strings; empty when obj is a valid envelope.
    use_jsonschema: None = when importable, True = required, False = stdlib only."""
    schema = load_schema()
    if use_jsonschema is not False:
        v = _jsonschema_validator(schema)
        if v is not None:
            return ["%s: %s" % ("$" + "".join("[%r]" % p for p in e.absolute_path), e.message)
                    for e in v.iter_errors(obj)]
        if use_jsonschema:
            raise RuntimeError("jsonschema is not importable (apt-get install python3-jsonschema)")
    return validate_stdlib(obj, schema)


# ---- self-test ----------------------------------------------------------------------------------

GOOD = {
    "specversion": "1.0",
    "id": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "source": "/cloud66/stacks/stack-550e8400-e29b-41d4-a716",
    "type": "com.cloud66.stack.created",
    "subject": "stack-550e8400-e29b-41d4-a716",
    "time": "2025-09-04T18:37:59Z",
    "datacontenttype": "application/json",
    "family": "stack",
    "receivedat": "2026-01-01T00:00:00.123Z",
    "data": {"timestamp": 1757011079, "event_type": "stack.created",
             "stack": {"uid": "stack-550e8400-e29b-41d4-a716", "name": "my-production-app"}},
}


def _bad_samples():
    def mod(fn):
        e = json.loads(json.dumps(GOOD))
        fn(e)
        return e
    return {
        "specversion 0.3": mod(lambda e: e.update(specversion="0.3")),
        "uppercase id": mod(lambda e: e.update(id=e["id"].upper())),
        "short id": mod(lambda e: e.update(id="abc")),
        "relative source": mod(lambda e: e.update(source="cloud66")),
        "foreign type": mod(lambda e: e.update(type="org.example.x")),
        "time not RFC 3339": mod(lambda e: e.update(time="2025-09-04 18:37:59")),
        "time 25h": mod(lambda e: e.update(time="2025-09-04T25:37:59Z")),
        "receivedat without ms": mod(lambda e: e.update(receivedat="2026-01-01T00:00:00Z")),
        "other content type": mod(lambda e: e.update(datacontenttype="text/plain")),
        "family with slash": mod(lambda e: e.update(family="a/b")),
        "extra attribute": mod(lambda e: e.update(extra=1)),
        "missing receivedat": mod(lambda e: e.pop("receivedat")),
        "missing data": mod(lambda e: e.pop("data")),
        "data without event_type": mod(lambda e: e["data"].pop("event_type")),
        "stack without uid": mod(lambda e: e["data"]["stack"].pop("uid")),
        "stack uid number": mod(lambda e: e["data"]["stack"].update(uid=5)),
        "empty subject": mod(lambda e: e.update(subject="")),
        "not an object": [GOOD],
    }


def self_test():
    ok = True
    goods = {
        "sample": GOOD,
        "no subject, no stack": {k: v for k, v in GOOD.items() if k != "subject"} | {
            "data": {"event_type": "server.created"}},
        "offset time": dict(GOOD, time="2025-09-04T18:37:59.5+02:00"),
    }
    modes = [False]
    if _jsonschema_validator(load_schema()) is not None:
        modes.append(True)
    for use in modes:
        name = "jsonschema" if use else "stdlib"
        for label, e in goods.items():
            errs = validate_envelope(e, use_jsonschema=use)
            if errs:
                ok = False
                print("FAIL %s: valid %s rejected: %s" % (name, label, errs))
        for label, e in _bad_samples().items():
            if not validate_envelope(e, use_jsonschema=use):
                ok = False
                print("FAIL %s: invalid %s accepted" % (name, label))
    print("schema_check self-test (%s): %s" % ("+".join("jsonschema" if m else "stdlib"
                                                          for m in modes), "ok" if ok else "FAILED"))
    return ok


def _iter_docs(text):
    text = text.strip()
    if not text:
        return
    try:
        yield json.loads(text)
        return
    except json.JSONDecodeError:
        pass
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield json.loads(line)


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    if argv == ["--self-test"]:
        return 0 if self_test() else 1
    bad = 0
    total = 0
    for name in argv:
        text = sys.stdin.read() if name == "-" else open(name, encoding="utf-8").read()
        for i, doc in enumerate(_iter_docs(text), 1):
            total += 1
            errs = validate_envelope(doc)
            if errs:
                bad += 1
                for e in errs:
                    print("%s#%d: %s" % (name, i, e))
    print("%d envelopes, %d invalid" % (total, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
