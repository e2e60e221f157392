"""test_docs: the README and docs/*.md hold together. Every relative link (file, directory or
#anchor, with GitHub's heading anchors) resolves; the option table in docs/configuration.md is
exactly what `hookbridge --print-config-reference` prints; the README's envelope example is the
golden envelope cut down, never altered (and so is docs/envelope.md's); the README keeps the two commands .ci/run relies on,
maps every file of docs/, and stays a front door."""

import difflib
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import unittest

SRC = pathlib.Path(os.environ.get("HB_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
GOLDEN = pathlib.Path(os.environ.get("HB_GOLDEN", SRC / "tests" / "golden"))
README = SRC / "README.md"
DOCS = SRC / "docs"
README_MAX_LINES = 160  # "a few screens"

REF_BEGIN = "<!-- BEGIN hookbridge --print-config-reference -->"
REF_END = "<!-- END hookbridge --print-config-reference -->"

FENCE = re.compile(r"^\s{0,3}(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target), the target up to whitespace or ')'; an optional "title".
INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_ID = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.I)
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def hookbridge():
    return os.environ.get("HB_BIN", str(SRC / "build" / "dev" / "hookbridge"))


def documents():
    return [README] + sorted(DOCS.glob("*.md"))


def prose_lines(path):
    """(line number, text) of every line outside fenced code blocks, code spans blanked."""
    fence = None
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield n, CODE_SPAN.sub(lambda s: " " * len(s.group(0)), line)


def github_slug(text):
    """The anchor GitHub gives a heading: markup dropped, lowercased, punctuation other than '-'
    and '_' removed, each space turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(path):
    """Every anchor a document offers: its headings (repeats get -1, -2, ...) and <a id>s."""
    seen = {}
    out = set()
    fence = None
    for line in path.read_text(encoding="utf-8").split("\n"):
        m = FENCE.match(line)
        if m:
            fence = m.group(1) if fence is None else (None if m.group(1) == fence else fence)
            continue
        if fence is not None:
            continue
        out.update(HTML_ID.findall(line))
        h = HEADING.match(line)
        if h:
            slug = github_slug(h.group(2))
            k = seen.get(slug, 0)
            seen[slug] = k + 1
            out.add(slug if k == 0 else f"{slug}-{k}")
    return out


def links(path):
    """(line number, target) of every link; a link's text may run over a line break."""
    numbered = list(prose_lines(path))
    for n, line in numbered:
        m = REF_DEF.match(line)
        if m:
            yield n, m.group(1)
    text, starts = "", []
    for n, line in numbered:
        starts.append((len(text), n))
        text += line + "\n"
    for m in INLINE_LINK.finditer(text):
        yield max(n for at, n in starts if at <= m.start()), m.group(1)


class DocsTest(unittest.TestCase):
    def test_slugs_follow_github(self):
        # The rule the link check relies on, on headings of the kinds the docs use.
        self.assertEqual(github_slug("Connection limits and TLS"), "connection-limits-and-tls")
        self.assertEqual(github_slug("`hookbridge spool verify`"), "hookbridge-spool-verify")
        self.assertEqual(github_slug("HTTP: answers, limits & TLS"), "http-answers-limits--tls")
        self.assertEqual(github_slug("The option table (generated)"), "the-option-table-generated")
        self.assertEqual(github_slug("spool.max_bytes"), "spoolmax_bytes")
        self.assertEqual(github_slug("[Docker](x.md) images"), "docker-images")

    def test_finders_see_what_they_should(self):
        # A broken link must be found, and code must not count as a link.
        with tempfile.TemporaryDirectory(prefix="hb-docs-") as d:
            self.check_finders(pathlib.Path(d) / "probe.md")

    def check_finders(self, tmp):
        tmp.write_text("# A b\n\n## A b\n\n[x](#a-b-1) `[no](nowhere.md)`\n\n```\n[no](none.md)\n"
                       "```\n[y]: other.md#sec\nsee [two\nlines](x.md) and [::]:PORT (z)\n",
                       encoding="utf-8")
        self.assertEqual(sorted(links(tmp)), [(5, "#a-b-1"), (10, "other.md#sec"), (11, "x.md")])
        self.assertEqual(anchors(tmp), {"a-b", "a-b-1"})

    def test_every_relative_link_resolves(self):
        bad = []
        count = 0
        for doc in documents():
            for n, target in links(doc):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
                    continue
                count += 1
                where = f"{doc.relative_to(SRC)}:{n}: {target}"
                file_part, _, anchor = target.partition("#")
                dest = (doc.parent / file_part).resolve() if file_part else doc
                if not dest.exists():
                    bad.append(f"{where}: no such file")
                    continue
                if SRC.resolve() not in dest.resolve().parents and dest.resolve() != SRC.resolve():
                    bad.append(f"{where}: outside the repository")
                    continue
                if anchor:
                    if dest.suffix != ".md":
                        bad.append(f"{where}: an anchor into a file that is not Markdown")
                    elif anchor not in anchors(dest):
                        bad.append(f"{where}: no heading or <a id> '{anchor}' in {dest.name}")
        self.assertGreater(count, 20, "the link finder found almost nothing")
        self.assertEqual(bad, [], "broken links:\n" + "\n".join(bad))

    def test_option_table_is_the_generated_one(self):
        text = (DOCS / "configuration.md").read_text(encoding="utf-8")
        self.assertIn(REF_BEGIN, text)
        self.assertIn(REF_END, text)
        table = text.split(REF_BEGIN, 1)[1].split(REF_END, 1)[0].strip("\n")
        hb = hookbridge()
        out = subprocess.run([hb, "--print-config-reference"], check=True, capture_output=True,
                             text=True, timeout=30).stdout.strip("\n")
        diff = "\n".join(difflib.unified_diff(table.split("\n"), out.split("\n"),
                                              "docs/configuration.md", "--print-config-reference",
                                              lineterm="", n=0))
        self.assertEqual(diff, "", "docs/configuration.md's option table is stale; rewrite it with "
                         f"HB_BIN={hb} python3 {__file__} --update-config-reference\n{diff}")

    def test_envelope_examples_are_the_golden_cut_down(self):
        for doc in (README, DOCS / "envelope.md"):
            with self.subTest(doc=doc.name):
                text = doc.read_text(encoding="utf-8")
                m = re.search(r"```json\n(.*?)\n```", text, re.S)
                self.assertIsNotNone(m, f"{doc.name} lost its envelope example")
                self.check_cut_down(json.loads(m.group(1)))

    def check_cut_down(self, example):
        golden = json.loads((GOLDEN / f"{example['data']['event_type']}.json").read_text())

        def subset(part, whole, path):
            if isinstance(part, dict):
                self.assertIsInstance(whole, dict, path)
                self.assertEqual(list(part), [k for k in whole if k in part], f"{path}: order")
                for k, v in part.items():
                    self.assertIn(k, whole, f"{path}.{k}")
                    subset(v, whole[k], f"{path}.{k}")
            else:
                self.assertEqual(part, whole, path)

        # Every attribute is shown; only data's members are cut down.
        self.assertEqual(list(example), list(golden))
        subset(example, golden, "envelope")

    def test_readme_is_a_front_door(self):
        text = README.read_text(encoding="utf-8")
        lines = text.split("\n")
        self.assertLessEqual(len(lines), README_MAX_LINES, "the reference belongs in docs/")
        # The two commands, as .ci/run runs the second.
        self.assertIn("scripts/run     #", text)
        self.assertIn("scripts/test    #", text)
        ci = (SRC / ".ci" / "run").read_text()
        self.assertRegex(ci, r"(?m)^exec scripts/test\s*$")
        # The map names every document.
        for doc in sorted(DOCS.glob("*.md")):
            self.assertIn(f"](docs/{doc.name})", text, f"README's docs map lacks {doc.name}")


def update_config_reference():
    """Rewrites the table between the markers with what the binary prints."""
    path = DOCS / "configuration.md"
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(REF_BEGIN + "\n", 1)
    _, tail = rest.split(REF_END, 1)
    out = subprocess.run([hookbridge(), "--print-config-reference"], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    path.write_text(head + REF_BEGIN + "\n" + out + REF_END + tail, encoding="utf-8")
    print(f"rewrote the option table of {path}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--update-config-reference"]:
        update_config_reference()
    else:
        unittest.main(verbosity=2)
