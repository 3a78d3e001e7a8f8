#!/usr/bin/python3
"""Checks a gpt2c-bench report.json, and optionally its report.html.

    validate_report.py REPORT.json [--html REPORT.html] [--schema SCHEMA.json]

1. REPORT.json must validate against reports/report.schema.json (JSON Schema
   draft 2020-12; Debian's python3-jsonschema), plus the rules a schema cannot
   say: a stats object's order (min <= p50 <= p90 <= p95 <= p99 <= max), its cv
   equal to stddev / mean, validation.failures equal to the checks with ok false,
   one compare row per headline figure, a soak verdict of PASS exactly when
   it gives no reasons (and never with failures, mismatches or fd growth).
2. With --html, every leaf of the JSON (number, string, boolean, null; raw
   samples and token ids included, nothing is left out) must appear in the page
   in an element whose data-k attribute is the leaf's path ("phases.latency.rows[0].ttft_ms.p50",
   top-level keys bare), with text written by the documented rule:
     number  integral and |v| < 1e15: "%.0f" (never "-0"); otherwise "%.6g"
     string  the string itself (after HTML unescaping)
     boolean "yes" / "no"
     null    "—"
   No data-k may name a path the JSON does not have, and the page must be
   self-contained: no script, no external stylesheet, image, font or frame.
   The five charts must be there (ids chart-ttft, chart-decode, chart-itl,
   chart-throughput, chart-scaling, chart-rss), and chart-roofline with one
   point (class "kbpt") per kernel result that has an intensity and a rate
   when the report carries gpt2c-kbench data ("kbench").
3. A gpt2c-kbench --json document (its "schema" is "gpt2c-kbench") is checked
   against $defs/kbench of the same schema file instead (--html does not apply).

Exit status 0 when everything holds; 1 with one line per problem otherwise;
2 on bad usage or an unreadable file. Standard library + jsonschema only; this
script shares no code with the C report writer.
"""

import argparse
import html.parser
import json
import math
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCHEMA = os.path.join(HERE, "..", "..", "reports", "report.schema.json")
DASH = "\u2014"
CHART_IDS = ["chart-ttft", "chart-decode", "chart-itl", "chart-throughput", "chart-scaling", "chart-rss"]
HEADLINE = ["load_ms", "ttft_ms", "decode_tok_s", "peak_rss_mb", "leak_mb_per_hour",
            "req_s_c1", "req_s_c4", "scaling_c4", "validation_failures"]
MAX_LISTED = 40


def fmt_num(v):
    """The report.html number rule (reports/README.md)."""
    v = float(v)
    if not math.isfinite(v):
        return DASH
    if abs(v) < 1e15 and v == math.floor(v):
        return "%.0f" % (0.0 if v == 0 else v)
    return "%.6g" % v


def fmt_leaf(v):
    if v is None:
        return DASH
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return fmt_num(v)
    return v


def leaves(node, path=""):
    """(path, value) for every scalar or null in the tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, k if not path else path + "." + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from leaves(v, "%s[%d]" % (path, i))
    else:
        yield path, node


# ---- schema and semantic checks ---------------------------------------------

def is_kbench_doc(report):
    return isinstance(report, dict) and report.get("schema") == "gpt2c-kbench"


def schema_problems(report, schema_path):
    try:
        import jsonschema
    except ImportError:
        return ["python3-jsonschema is not installed (apt-get install python3-jsonschema)"]
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    if is_kbench_doc(report):
        schema = {"$schema": schema.get("$schema"), "$defs": schema.get("$defs", {}), "$ref": "#/$defs/kbench"}
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    probs = []
    for e in sorted(cls(schema).iter_errors(report), key=lambda e: list(map(str, e.absolute_path))):
        where = "".join("[%d]" % p if isinstance(p, int) else "." + p for p in e.absolute_path).lstrip(".")
        probs.append("schema: %s: %s" % (where or "(top level)", e.message))
    return probs


def walk_stats(node, path=""):
    if isinstance(node, dict):
        if set(node) == {"n", "mean", "stddev", "cv", "min", "p50", "p90", "p95", "p99", "max"}:
            yield path, node
            return
        for k, v in node.items():
            yield from walk_stats(v, k if not path else path + "." + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk_stats(v, "%s[%d]" % (path, i))


def semantic_problems(r):
    probs = []
    num = (int, float)
    for path, st in walk_stats(r):
        order = [k for k in ("min", "p50", "p90", "p95", "p99", "max") if isinstance(st.get(k), num)
                 and not isinstance(st.get(k), bool)]
        for a, b in zip(order, order[1:]):
            if st[a] > st[b] * (1 + 1e-9) + 1e-12:
                probs.append("%s: %s (%s) > %s (%s)" % (path, a, st[a], b, st[b]))
        m = st.get("mean")
        if isinstance(m, num) and order and not (st[order[0]] - 1e-9 * abs(m) <= m <= st[order[-1]] + 1e-9 * abs(m)):
            probs.append("%s: mean %s outside [min, max]" % (path, m))
        sd, cv = st.get("stddev"), st.get("cv")
        if isinstance(sd, num) and isinstance(cv, num) and isinstance(m, num) and m != 0:
            if abs(cv - sd / abs(m)) > 1e-6 * max(1.0, abs(cv)):
                probs.append("%s: cv %s is not stddev / mean = %s" % (path, cv, sd / abs(m)))
    phases = r.get("phases") if isinstance(r, dict) else None
    val = phases.get("validation") if isinstance(phases, dict) else None
    if isinstance(val, dict) and isinstance(val.get("checks"), list) and isinstance(val.get("failures"), int):
        bad = sum(1 for c in val["checks"] if isinstance(c, dict) and c.get("ok") is False)
        if bad != val["failures"]:
            probs.append("phases.validation.failures is %d but %d checks have ok = false" % (val["failures"], bad))
    soak = phases.get("soak") if isinstance(phases, dict) else None
    if isinstance(soak, dict) and isinstance(soak.get("reasons"), list):
        # PASS exactly when there is no reason to fail; failures, mismatches
        # and fd growth are reasons
        if (soak.get("verdict") == "PASS") != (len(soak["reasons"]) == 0):
            probs.append("phases.soak: verdict %s with %d reasons" % (soak.get("verdict"), len(soak["reasons"])))
        for k in ("failures", "mismatches", "fd_growth"):
            if isinstance(soak.get(k), num) and soak[k] > 0 and soak.get("verdict") == "PASS":
                probs.append("phases.soak: verdict PASS with %s = %s" % (k, soak[k]))
        if all(isinstance(soak.get(k), num) for k in ("mismatches", "checked")) and soak["mismatches"] > soak["checked"]:
            probs.append("phases.soak: %s mismatches of %s checked" % (soak["mismatches"], soak["checked"]))
    cmp = r.get("compare") if isinstance(r, dict) else None
    if isinstance(cmp, dict) and isinstance(cmp.get("rows"), list):
        names = [row.get("name") for row in cmp["rows"] if isinstance(row, dict)]
        if sorted(names) != sorted(HEADLINE):
            probs.append("compare.rows: want one row per headline figure %s, got %s" % (HEADLINE, names))
    return probs


# ---- the HTML ----------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []        # open elements: (tag, index into self.found or None)
        self.found = []        # [path, text]
        self.ids = set()
        self.external = []

    def _attrs(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag in ("script", "link", "iframe", "object", "embed", "img", "base"):
            self.external.append("<%s> element" % tag)
        for k in ("src", "href", "xlink:href", "srcset", "action"):
            v = a.get(k)
            if v is not None and not v.startswith("#"):
                self.external.append('%s="%s" on <%s>' % (k, v, tag))
        st = a.get("style") or ""
        if "url(" in st:
            self.external.append("url() in a style attribute on <%s>" % tag)
        return a

    def handle_starttag(self, tag, attrs):
        a = self._attrs(tag, attrs)
        if tag in VOID:
            return
        idx = None
        if "data-k" in a:
            idx = len(self.found)
            self.found.append([a["data-k"], ""])
        self.stack.append((tag, idx))

    def handle_startendtag(self, tag, attrs):
        a = self._attrs(tag, attrs)
        if "data-k" in a:
            self.found.append([a["data-k"], ""])

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        for _, idx in self.stack:
            if idx is not None:
                self.found[idx][1] += data


def html_problems(report, html_text):
    probs = []
    page = Page()
    page.feed(html_text)
    page.close()
    css = re.findall(r"<style[^>]*>(.*?)</style>", html_text, re.S | re.I)
    for c in css:
        if re.search(r"url\(|@import", c):
            probs.append("html: the stylesheet loads something (url() or @import)")
    for e in page.external:
        probs.append("html: not self-contained: %s" % e)
    for cid in CHART_IDS:
        if cid not in page.ids:
            probs.append("html: chart #%s is missing" % cid)
    kb = report.get("kbench") if isinstance(report, dict) else None
    if isinstance(kb, dict):
        if "chart-roofline" not in page.ids:
            probs.append("html: chart #chart-roofline is missing (the report has kbench data)")
        want = sum(1 for r in kb.get("results", []) if isinstance(r, dict)
                   and isinstance(r.get("intensity"), (int, float)) and isinstance(r.get("gflop_s"), (int, float))
                   and r["intensity"] > 0 and r["gflop_s"] > 0)
        got = len(re.findall(r'class="kbpt"', html_text))
        if got != want:
            probs.append("html: the roofline has %d kernel points, the JSON %d results to plot" % (got, want))

    shown = {}
    for path, text in page.found:
        shown.setdefault(path, []).append(text.strip())
    known = {p for p, _ in leaves(report)}
    missing, wrong = [], []
    for path, value in leaves(report):
        want = fmt_leaf(value)
        if path not in shown:
            missing.append("%s = %s" % (path, want))
            continue
        for got in shown[path]:
            if got != want:
                wrong.append("%s: the page says %r, the JSON %r" % (path, got, want))
    extra = sorted(p for p in shown if p not in known)
    for label, items in (("missing from the page (no data-k element)", missing),
                         ("shown differently", wrong),
                         ("data-k paths the JSON does not have", extra)):
        for it in items[:MAX_LISTED]:
            probs.append("html: %s: %s" % (label, it))
        if len(items) > MAX_LISTED:
            probs.append("html: %s: ... and %d more" % (label, len(items) - MAX_LISTED))
    return probs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report")
    ap.add_argument("--html")
    ap.add_argument("--schema", default=DEFAULT_SCHEMA)
    args = ap.parse_args(argv)
    try:
        with open(args.report, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        print("validate_report: %s: %s" % (args.report, e), file=sys.stderr)
        return 2
    html_text = None
    if args.html:
        try:
            with open(args.html, encoding="utf-8") as f:
                html_text = f.read()
        except (OSError, ValueError) as e:
            print("validate_report: %s: %s" % (args.html, e), file=sys.stderr)
            return 2
    try:
        probs = schema_problems(report, args.schema)
    except (OSError, ValueError) as e:
        print("validate_report: schema %s: %s" % (args.schema, e), file=sys.stderr)
        return 2
    probs += semantic_problems(report)
    n_leaves = sum(1 for _ in leaves(report))
    if html_text is not None and is_kbench_doc(report):
        probs.append("--html: %s is a gpt2c-kbench document, not a bench report" % args.report)
    elif html_text is not None:
        probs += html_problems(report, html_text)
    if probs:
        print("validate_report: %s: %d problem%s" % (args.report, len(probs), "" if len(probs) == 1 else "s"),
              file=sys.stderr)
        for p in probs:
            print("  " + p, file=sys.stderr)
        return 1
    print("validate_report: %s: valid (schema version %s, %d values%s)" % (
        args.report, report.get("schema_version"), n_leaves,
        ", every one shown in %s" % args.html if html_text is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
