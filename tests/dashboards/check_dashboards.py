#!/usr/bin/env python3
"""Checks lockwatch's Grafana dashboards, Prometheus rules, runbooks and Alertmanager example.

Usage: check_dashboards.py --repo DIR CHECK [options]

CHECK is one of
  conventions   dashboard JSON conventions, ConfigMap == JSON files, provisioning file, rule metadata,
                one runbook per alert, recording rules used by dashboards are defined
  promql        every dashboard query (variables substituted) wrapped in a rule file: `promtool check rules`
  rules         `promtool check rules` on the rule files of rules/
  rules-test    `promtool test rules` on rules/tests/*.yaml
  alertmanager  `amtool check-config rules/alertmanager.yaml` and the routing of every alert
  scrape        every metric named by dashboards and rules exists in a real scrape of `lockwatch run`
                (needs --binary and LOCKWATCH_TEST_DSN; stages a lock wait with psql)

Every failure names the file, panel, query and metric concerned; the exit status is 1 on any failure, 2 on a
usage error. Standard library only.
"""
import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True  # never leave __pycache__ in the source tree

DASHBOARD_FILES = ("lockwatch-overview.json", "lockwatch-target.json")
RULE_FILES = ("lockwatch-alerts.yaml", "lockwatch-recording.yaml")
ALERTMANAGER_FILE = "alertmanager.yaml"
RUNBOOK_DIR = "agent/docs/runbooks"
# The documented base of every runbook_url (rules/README.md): base + the runbook's path in the repository.
RUNBOOK_BASE = "file:///usr/share/doc/lockwatch/runbooks/"  # where the Debian package installs them
PANEL_DS = {"type": "prometheus", "uid": "${datasource}"}
SELECTOR_VARS = ("job", "instance", "target")
# Concrete values for Grafana variables when a query is handed to promtool.
VAR_VALUES = {
    "job": "lockwatch", "instance": "localhost:9817", "target": "default", "datasource": "prometheus",
    "__rate_interval": "1m", "__interval": "30s", "__range": "1h", "__range_s": "3600", "__interval_ms": "30000",
}
SEVERITIES = ("critical", "warning", "info")
# Which receiver of rules/alertmanager.yaml each alert must reach (alert -> receiver). Every alert of
# rules/lockwatch-alerts.yaml must be listed: database-side lock alerts reach the DBA on-call, lockwatch's own
# failures reach the team that runs the monitoring.
EXPECTED_ROUTES = {
    "LockwatchAgentDown": "monitoring-team",
    "LockwatchTargetDown": "monitoring-team",
    "LockwatchPollsStale": "monitoring-team",
    "LockwatchPollErrors": "monitoring-team",
    "LockwatchLockPileUp": {"critical": "dba-pager", "warning": "dba-oncall"},
    "LockwatchLongLockWait": {"critical": "dba-pager", "warning": "dba-oncall"},
    "LockwatchIdleInTransactionRootBlocker": {"critical": "dba-pager", "warning": "dba-oncall"},
    "LockwatchPreparedTransactionBlocking": {"critical": "dba-pager", "warning": "dba-oncall"},
    "LockwatchDeadlockCycle": {"critical": "dba-pager", "warning": "dba-oncall"},
}
RUNBOOK_SECTIONS = ("## What it means", "## First three things to run", "## How to resolve", "## What not to do")


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class Failures:
    def __init__(self):
        self.items = []

    def add(self, msg):
        self.items.append(msg)
        print("FAIL: " + msg, flush=True)

    def done(self, what):
        if self.items:
            print(f"\n{what}: {len(self.items)} failure(s)", flush=True)
            return 1
        print(f"{what}: OK", flush=True)
        return 0


# ---------------------------------------------------------------------------------------------------------
# PromQL: a small tokenizer that finds vector selectors (metric name + label matchers).
# ---------------------------------------------------------------------------------------------------------
_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{[A-Za-z0-9_:.]+\}|\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)[a-zA-Z]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]@])
""", re.VERBOSE)
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                 "topk", "quantile", "limitk", "limit_ratio"}


def tokenize(expr):
    pos, out = 0, []
    while pos < len(expr):
        m = _TOKEN_RE.match(expr, pos)
        if not m:
            raise ValueError(f"cannot tokenize at {expr[pos:pos + 20]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def _skip_parens(tokens, i):
    """tokens[i] is '(' (or '['): returns the index after the matching closer."""
    opener = tokens[i][1]
    closer = {"(": ")", "[": "]"}[opener]
    depth = 0
    while i < len(tokens):
        if tokens[i][1] == opener:
            depth += 1
        elif tokens[i][1] == closer:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced {opener}")


def _unquote(s):
    if s[0] == "`":
        return s[1:-1]
    return bytes(s[1:-1], "utf-8").decode("unicode_escape")


def selectors(expr):
    """Returns [(metric_name or None, [(label, op, value)], text)] for every vector selector of expr."""
    tokens = tokenize(expr)
    found, i = [], 0
    while i < len(tokens):
        kind, val = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else None
        if val == "[":
            i = _skip_parens(tokens, i)
            continue
        if kind == "ident":
            low = val.lower()
            if low in _GROUPING:
                i = _skip_parens(tokens, i + 1) if nxt == "(" else i + 1
                continue
            if low in _KEYWORDS or nxt == "(" or (low in _AGGREGATIONS and nxt in ("by", "without")):
                i += 1
                continue
            name, i = val, i + 1
        elif val == "{":
            name = None
        else:
            i += 1
            continue
        matchers = []
        if i < len(tokens) and tokens[i][1] == "{":
            i += 1
            while tokens[i][1] != "}":
                if tokens[i][1] == ",":
                    i += 1
                    continue
                label, op, value = tokens[i][1], tokens[i + 1][1], tokens[i + 2]
                if value[0] != "str":
                    raise ValueError(f"matcher {label}{op} has no string value")
                matchers.append((label, op, _unquote(value[1])))
                i += 3
            i += 1
        if name is None:
            name = next((v for l, o, v in matchers if l == "__name__" and o == "="), None)
        text = (name or "") + "{" + ", ".join(f'{l}{o}"{v}"' for l, o, v in matchers) + "}"
        found.append((name, matchers, text))
    return found


def range_functions(expr):
    """Returns [(function, range_text)] for each function call whose first range is [...]."""
    tokens = tokenize(expr)
    out = []
    for i, (kind, val) in enumerate(tokens):
        if kind == "ident" and i + 1 < len(tokens) and tokens[i + 1][1] == "(":
            end = _skip_parens(tokens, i + 1)
            inner = tokens[i + 2:end - 1]
            depth = 0
            for j, (_, v) in enumerate(inner):
                if v in "({":
                    depth += 1
                elif v in ")}":
                    depth -= 1
                elif v == "[" and depth == 0:
                    k = _skip_parens(inner, j)
                    out.append((val, "".join(t[1] for t in inner[j:k])))
                    break
    return out


def substitute(expr):
    def repl(m):
        name = m.group(1) or m.group(2)
        if name not in VAR_VALUES:
            raise KeyError(name)
        return VAR_VALUES[name]
    return re.sub(r"\$\{([A-Za-z0-9_]+)(?::[a-z]+)?\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, expr)


# ---------------------------------------------------------------------------------------------------------
# Rule files: a line-based reader for the subset of YAML the rule files use (documented in rules/README.md):
# `- alert:`/`- record:` items with `expr:` (inline or block scalar `|`), `for:`, `labels:` and `annotations:`
# maps of scalars. Anything it does not understand is reported as a failure, not skipped.
# ---------------------------------------------------------------------------------------------------------
def _scalar(v):
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        return v[1:-1]
    return v


def read_rules(path, failures):
    rules = []
    lines = read_text(path).splitlines()
    cur, section, i = None, None, 0
    while i < len(lines):
        raw = lines[i]
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        i += 1
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        m = re.match(r"-\s+(alert|record):\s*(.+)$", body)
        if m:
            cur = {"kind": m.group(1), "name": _scalar(m.group(2)), "labels": {}, "annotations": {},
                   "line": i, "indent": indent, "file": path}
            rules.append(cur)
            section = None
            continue
        if cur is None or indent <= cur["indent"]:
            cur = None if (cur is not None and indent <= cur["indent"]) else cur
            continue
        key, _, value = body.partition(":")
        value = value.strip()
        if indent == cur["indent"] + 2:
            section = None
            if key == "expr":
                if value in ("|", "|-", ">", ">-"):
                    block = []
                    while i < len(lines) and (not lines[i].strip() or
                                              len(lines[i]) - len(lines[i].lstrip()) > indent):
                        block.append(lines[i].strip())
                        i += 1
                    cur["expr"] = " ".join(b for b in block if b)
                else:
                    cur["expr"] = _scalar(value)
            elif key in ("labels", "annotations") and not value:
                section = key
            elif key in ("for", "keep_firing_for"):
                cur[key] = _scalar(value)
            else:
                failures.add(f"{path}:{i}: unexpected key {key!r} in rule {cur['name']}")
        elif section and indent == cur["indent"] + 4:
            cur[section][key.strip()] = _scalar(value)
        else:
            failures.add(f"{path}:{i}: cannot read line {raw.strip()!r} (rule {cur['name']})")
    for r in rules:
        if "expr" not in r:
            failures.add(f"{path}:{r['line']}: rule {r['name']} has no expr")
    return rules


def load_all_rules(repo, failures):
    rules = []
    for name in RULE_FILES:
        path = os.path.join(repo, "rules", name)
        if not os.path.exists(path):
            failures.add(f"rules/{name}: missing")
            continue
        rules += read_rules(path, failures)
    return rules


# ---------------------------------------------------------------------------------------------------------
# Dashboards
# ---------------------------------------------------------------------------------------------------------
def load_dashboards(repo, failures):
    out = []
    for name in DASHBOARD_FILES:
        path = os.path.join(repo, "dashboards", name)
        try:
            with open(path, encoding="utf-8") as f:
                out.append((f"dashboards/{name}", json.load(f)))
        except (OSError, ValueError) as e:
            failures.add(f"dashboards/{name}: cannot load: {e}")
    return out


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def dashboard_queries(dashboards):
    """Yields (where, expr) for every panel target and (where, query) for every query variable."""
    for fname, d in dashboards:
        for p in all_panels(d.get("panels", [])):
            for t in p.get("targets", []):
                yield (f"{fname}: panel {p.get('id')} {p.get('title')!r} query {t.get('refId')}", t.get("expr", ""))
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                q = v.get("query")
                q = q.get("query", "") if isinstance(q, dict) else (q or "")
                m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", q)
                if m:
                    q = m.group(1)
                yield (f"{fname}: variable ${v.get('name')}", q)


def check_selector_vars(where, expr, failures, required=SELECTOR_VARS):
    try:
        sels = selectors(expr)
    except (ValueError, IndexError) as e:
        failures.add(f"{where}: cannot parse {expr!r}: {e}")
        return
    if not sels:
        failures.add(f"{where}: no metric selector in {expr!r}")
    for name, matchers, text in sels:
        for var in required:
            ok = any(l == var and o in ("=", "=~") and v in (f"${var}", f"${{{var}}}") for l, o, v in matchers)
            if not ok:
                failures.add(f'{where}: selector {text} lacks {var}=~"${var}" (query: {expr})')


def check_conventions_dashboards(repo, dashboards, failures, recorded):
    uids = {}
    for fname, d in dashboards:
        if d.get("schemaVersion") != 39:
            failures.add(f"{fname}: schemaVersion is {d.get('schemaVersion')!r}, want 39")
        if "id" not in d or d["id"] is not None:
            failures.add(f"{fname}: id must be null")
        uid = d.get("uid")
        if not isinstance(uid, str) or not re.fullmatch(r"[a-z0-9-]{1,40}", uid or ""):
            failures.add(f"{fname}: uid {uid!r} must be a fixed string of [a-z0-9-], at most 40 characters")
        elif uid in uids:
            failures.add(f"{fname}: uid {uid!r} also used by {uids[uid]}")
        else:
            uids[uid] = fname
        for key in ("title", "description"):
            if not d.get(key):
                failures.add(f"{fname}: dashboard has no {key}")
        if "__inputs" in d or "${DS_" in json.dumps(d):
            failures.add(f"{fname}: uses __inputs/${{DS_...}}, which file provisioning cannot resolve")
        variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
        ds = variables.get("datasource")
        if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
            failures.add(f"{fname}: needs a variable 'datasource' of type datasource with query 'prometheus'")
        for var in SELECTOR_VARS:
            v = variables.get(var)
            if not v or v.get("type") != "query":
                failures.add(f"{fname}: needs a query variable {var!r}")
                continue
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            if not q.startswith("label_values("):
                failures.add(f"{fname}: variable {var!r} must use a label_values() query, has {q!r}")
            if v.get("datasource") != PANEL_DS:
                failures.add(f"{fname}: variable {var!r} datasource is {v.get('datasource')!r}, want {PANEL_DS}")
        ids = set()
        panels = list(all_panels(d.get("panels", [])))
        if not panels:
            failures.add(f"{fname}: no panels")
        for p in panels:
            where = f"{fname}: panel {p.get('id')} {p.get('title')!r}"
            if p.get("id") in ids:
                failures.add(f"{where}: duplicate panel id")
            ids.add(p.get("id"))
            if p.get("type") == "row":
                if not p.get("title"):
                    failures.add(f"{where}: row without title")
                continue
            if not p.get("title"):
                failures.add(f"{where}: no title")
            if not p.get("description"):
                failures.add(f"{where}: no description")
            if not p.get("fieldConfig", {}).get("defaults", {}).get("unit"):
                failures.add(f"{where}: no unit (fieldConfig.defaults.unit)")
            if p.get("datasource") != PANEL_DS:
                failures.add(f"{where}: datasource is {p.get('datasource')!r}, want {PANEL_DS}")
            if not p.get("targets"):
                failures.add(f"{where}: no queries")
            for t in p.get("targets", []):
                tw = f"{where} query {t.get('refId')}"
                if t.get("datasource") != PANEL_DS:
                    failures.add(f"{tw}: datasource is {t.get('datasource')!r}, want {PANEL_DS}")
                expr = t.get("expr", "")
                if not expr.strip():
                    failures.add(f"{tw}: empty expr")
                    continue
                check_selector_vars(tw, expr, failures)
                try:
                    for func, rng in range_functions(expr):
                        if func in ("rate", "irate", "increase") or func.endswith("_over_time"):
                            if rng != "[$__rate_interval]":
                                failures.add(f"{tw}: {func}() over {rng}, want [$__rate_interval] (query: {expr})")
                    for name, _, text in selectors(expr):
                        if name and ":" in name and name not in recorded:
                            failures.add(f"{tw}: recording rule {name} is not defined in rules/lockwatch-recording.yaml")
                except (ValueError, IndexError) as e:
                    failures.add(f"{tw}: cannot parse {expr!r}: {e}")
        # Variables chain on each other: instance filters on job, target on job and instance.
        for var, need in (("instance", ("job",)), ("target", ("job", "instance"))):
            v = variables.get(var)
            if v:
                q = v.get("query")
                q = q.get("query", "") if isinstance(q, dict) else (q or "")
                inner = re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", q)
                check_selector_vars(f"{fname}: variable ${var}", inner, failures, need)


def check_configmap(repo, failures):
    path = os.path.join(repo, "dashboards", "kubernetes", "configmap.yaml")
    try:
        text = read_text(path)
    except OSError as e:
        failures.add(f"dashboards/kubernetes/configmap.yaml: {e}")
        return
    if not re.search(r"^kind: ConfigMap$", text, re.M):
        failures.add("dashboards/kubernetes/configmap.yaml: not a ConfigMap")
    if not re.search(r"^  labels:\n(    .*\n)*    grafana_dashboard: \"1\"$", text, re.M):
        failures.add("dashboards/kubernetes/configmap.yaml: metadata.labels lacks grafana_dashboard: \"1\"")
    # Decode each `  <file>: |` block scalar and compare it with the file.
    lines = text.splitlines()
    for name in DASHBOARD_FILES:
        try:
            start = lines.index(f"  {name}: |")
        except ValueError:
            failures.add(f"dashboards/kubernetes/configmap.yaml: no data key {name!r} (run python3 dashboards/generate_configmap.py)")
            continue
        block = []
        for line in lines[start + 1:]:
            if line and not line.startswith("    "):
                break
            block.append(line[4:])
        while block and block[-1] == "":
            block.pop()
        decoded = "\n".join(block) + "\n"
        actual = read_text(os.path.join(repo, "dashboards", name))
        if decoded != actual:
            diff_at = next((n for n, (a, b) in enumerate(zip(decoded.splitlines(), actual.splitlines()), 1) if a != b),
                           min(len(decoded.splitlines()), len(actual.splitlines())) + 1)
            failures.add(f"dashboards/kubernetes/configmap.yaml: data {name!r} differs from dashboards/{name} "
                         f"(first at line {diff_at}); run python3 dashboards/generate_configmap.py")
    generator = load_configmap_generator(repo)
    if generator.render(os.path.join(repo, "dashboards")) != text:
        failures.add("dashboards/kubernetes/configmap.yaml: not what dashboards/generate_configmap.py writes; rerun it")


def load_configmap_generator(repo):
    """Loads dashboards/generate_configmap.py of repo as a module."""
    path = os.path.join(repo, "dashboards", "generate_configmap.py")
    spec = importlib.util.spec_from_file_location("lockwatch_generate_configmap", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_provisioning(repo, failures):
    path = os.path.join(repo, "dashboards", "provisioning", "lockwatch.yaml")
    try:
        text = read_text(path)
    except OSError as e:
        failures.add(f"dashboards/provisioning/lockwatch.yaml: {e}")
        return
    for pattern, what in ((r"^apiVersion: 1$", "apiVersion: 1"), (r"^providers:$", "providers:"),
                          (r"^\s+type: file$", "a provider of type file"),
                          (r"^\s+options:\n\s+path: \S+", "options.path")):
        if not re.search(pattern, text, re.M):
            failures.add(f"dashboards/provisioning/lockwatch.yaml: lacks {what}")


def check_conventions_rules(repo, rules, failures):
    alerts = [r for r in rules if r["kind"] == "alert"]
    records = [r for r in rules if r["kind"] == "record"]
    if not alerts:
        failures.add("rules/lockwatch-alerts.yaml: no alerts")
    seen = set()
    for r in alerts:
        where = f"{os.path.relpath(r['file'], repo)}:{r['line']}: alert {r['name']}"
        if r["name"] in seen:
            failures.add(f"{where}: duplicate alert name")
        seen.add(r["name"])
        if not re.fullmatch(r"Lockwatch(?:[A-Z][a-z0-9]*)+", r["name"]):
            failures.add(f"{where}: name must be CamelCase with the prefix Lockwatch")
        if not re.fullmatch(r"\d+[smh]", r.get("for", "")):
            failures.add(f"{where}: needs a for: duration, has {r.get('for')!r}")
        if r["labels"].get("severity") not in SEVERITIES:
            failures.add(f"{where}: severity {r['labels'].get('severity')!r} not in {SEVERITIES}")
        for a in ("summary", "description", "runbook_url"):
            if not r["annotations"].get(a):
                failures.add(f"{where}: no {a} annotation")
        want_url = f"{RUNBOOK_BASE}{r['name']}.md"
        if r["annotations"].get("runbook_url") != want_url:
            failures.add(f"{where}: runbook_url {r['annotations'].get('runbook_url')!r}, want {want_url!r}")
        runbook = os.path.join(repo, RUNBOOK_DIR, r["name"] + ".md")
        if not os.path.exists(runbook):
            failures.add(f"{where}: runbook {RUNBOOK_DIR}/{r['name']}.md does not exist")
        else:
            text = read_text(runbook)
            for s in RUNBOOK_SECTIONS:
                if s not in text:
                    failures.add(f"{RUNBOOK_DIR}/{r['name']}.md: lacks section {s!r}")
            if text.splitlines()[:1] != [f"# {r['name']}"]:
                failures.add(f"{RUNBOOK_DIR}/{r['name']}.md: first line must be '# {r['name']}'")
        if r["name"] not in EXPECTED_ROUTES:
            failures.add(f"{where}: no expected Alertmanager route in EXPECTED_ROUTES of {os.path.basename(__file__)}")
    rb_dir = os.path.join(repo, RUNBOOK_DIR)
    if os.path.isdir(rb_dir):
        for f in sorted(os.listdir(rb_dir)):
            if f.endswith(".md") and f != "README.md" and f[:-3] not in seen:
                failures.add(f"{RUNBOOK_DIR}/{f}: no alert of that name in rules/lockwatch-alerts.yaml")
    for r in records:
        where = f"{os.path.relpath(r['file'], repo)}:{r['line']}: record {r['name']}"
        if not re.fullmatch(r"[a-z_]+:lockwatch_[a-z0-9_]+:[a-z0-9_]+", r["name"]):
            failures.add(f"{where}: name must be level:metric:operations with a lockwatch_ metric")
        if r.get("expr"):
            check_rule_keeps_labels(where, r["expr"], failures)


def check_rule_keeps_labels(where, expr, failures):
    """Recording rules must keep job, instance and target in every aggregation (dashboards select on them)."""
    tokens = tokenize(expr)
    for i, (kind, val) in enumerate(tokens):
        if kind == "ident" and val in ("by", "on") and i + 1 < len(tokens) and tokens[i + 1][1] == "(":
            end = _skip_parens(tokens, i + 1)
            labels = {t[1] for t in tokens[i + 2:end - 1] if t[0] == "ident"}
            missing = [l for l in SELECTOR_VARS if l not in labels]
            if missing:
                failures.add(f"{where}: {val} (...) drops {', '.join(missing)}")
        if kind == "ident" and val == "without":
            failures.add(f"{where}: use by (...) with job, instance, target rather than without")


def run_conventions(repo):
    failures = Failures()
    rules = load_all_rules(repo, failures)
    recorded = {r["name"] for r in rules if r["kind"] == "record"}
    dashboards = load_dashboards(repo, failures)
    check_conventions_dashboards(repo, dashboards, failures, recorded)
    check_configmap(repo, failures)
    check_provisioning(repo, failures)
    check_conventions_rules(repo, rules, failures)
    return failures.done("conventions")


# ---------------------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------------------
def need_tool(name, package, failures):
    path = shutil.which(name)
    if not path:
        failures.add(f"{name} not found on PATH: install the Debian package {package}")
    return path


def run_tool(cmd, failures, what):
    print("+ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    print(p.stdout, end="", flush=True)
    if p.returncode != 0:
        failures.add(f"{what}: `{' '.join(cmd)}` exited {p.returncode}")
    return p


def run_promql(repo):
    failures = Failures()
    promtool = need_tool("promtool", "prometheus", failures)
    dashboards = load_dashboards(repo, failures)
    if not promtool or not dashboards:
        return failures.done("promql")
    rules, index = [], []
    for where, expr in dashboard_queries(dashboards):
        if where.split(": ", 1)[1].startswith("variable"):
            continue
        try:
            concrete = substitute(expr)
        except KeyError as e:
            failures.add(f"{where}: unknown variable ${e.args[0]} in {expr!r}")
            continue
        index.append((where, concrete))
        rules.append({"record": f"dashboard:query_{len(index)}:check", "expr": concrete})
    with tempfile.TemporaryDirectory() as tmp:
        # One file with every query, then one file per query so a failure names its panel and query.
        path = os.path.join(tmp, "dashboards.rules.json")
        with open(path, "w") as f:
            json.dump({"groups": [{"name": "dashboard_queries", "rules": rules}]}, f, indent=1)
        p = run_tool(["promtool", "check", "rules", path], failures, "dashboard queries")
        if p.returncode != 0:
            for n, (where, concrete) in enumerate(index):
                one = os.path.join(tmp, f"q{n}.json")
                with open(one, "w") as f:
                    json.dump({"groups": [{"name": "q", "rules": [rules[n]]}]}, f)
                q = subprocess.run(["promtool", "check", "rules", one], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
                if q.returncode != 0:
                    failures.add(f"{where}: promtool rejects {concrete!r}: {q.stdout.strip()}")
    print(f"{len(index)} dashboard queries checked", flush=True)
    return failures.done("promql")


def run_rules(repo):
    failures = Failures()
    if need_tool("promtool", "prometheus", failures):
        run_tool(["promtool", "check", "rules"] + [os.path.join(repo, "rules", f) for f in RULE_FILES],
                 failures, "rule files")
    return failures.done("rules")


def run_rules_test(repo):
    failures = Failures()
    tests_dir = os.path.join(repo, "rules", "tests")
    files = sorted(os.path.join(tests_dir, f) for f in os.listdir(tests_dir) if f.endswith(".yaml")) \
        if os.path.isdir(tests_dir) else []
    if not files:
        failures.add("rules/tests: no promtool test files")
    # Every alert must appear in a test with an empty exp_alerts (negative) and a non-empty one (positive).
    alerts = [r["name"] for r in load_all_rules(repo, failures) if r["kind"] == "alert"]
    tests_text = "\n".join(read_text(f) for f in files)
    for a in alerts:
        blocks = re.findall(r"alertname:\s*" + re.escape(a) + r"\s*\n\s*exp_alerts:(.*?)(?=\n\s*- eval_time:|\n  - |\Z)",
                            tests_text, re.S)
        if not any(b.strip() == "[]" for b in blocks):
            failures.add(f"rules/tests: alert {a} has no negative case (exp_alerts: [])")
        if not any("exp_labels" in b for b in blocks):
            failures.add(f"rules/tests: alert {a} has no positive case (exp_alerts with exp_labels)")
    if files and need_tool("promtool", "prometheus", failures):
        run_tool(["promtool", "test", "rules"] + files, failures, "rule unit tests")
    return failures.done("rules-test")


def run_alertmanager(repo):
    failures = Failures()
    amtool = need_tool("amtool", "prometheus-alertmanager", failures)
    path = os.path.join(repo, "rules", ALERTMANAGER_FILE)
    if amtool:
        run_tool(["amtool", "check-config", path], failures, "alertmanager config")
        for r in load_all_rules(repo, failures):
            if r["kind"] != "alert":
                continue
            want = EXPECTED_ROUTES.get(r["name"])
            sev = r["labels"].get("severity", "")
            if isinstance(want, dict):
                want = want.get(sev)
            if want is None:
                failures.add(f"alert {r['name']} (severity {sev}): no expected receiver in EXPECTED_ROUTES")
                continue
            cmd = ["amtool", "config", "routes", "test", f"--config.file={path}", f"alertname={r['name']}",
                   f"severity={sev}", "job=lockwatch", "instance=db1:9817", "target=main"]
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=60)
            got = p.stdout.strip()
            if p.returncode != 0 or got != want:
                failures.add(f"rules/{ALERTMANAGER_FILE}: alert {r['name']} (severity {sev}) routes to "
                             f"{got!r}, want {want!r}")
            else:
                print(f"route {r['name']} severity={sev} -> {got}", flush=True)
    return failures.done("alertmanager")


# ---------------------------------------------------------------------------------------------------------
# Scrape cross-check
# ---------------------------------------------------------------------------------------------------------
def used_metrics(repo, failures):
    """Returns {metric: [where, ...]} for dashboards and rules."""
    used = {}
    for where, expr in dashboard_queries(load_dashboards(repo, failures)):
        try:
            for name, _, _ in selectors(expr):
                if name:
                    used.setdefault(name, []).append(where)
        except (ValueError, IndexError) as e:
            failures.add(f"{where}: cannot parse {expr!r}: {e}")
    for r in load_all_rules(repo, failures):
        for name, _, _ in selectors(r.get("expr", "")):
            if name:
                used.setdefault(name, []).append(f"{os.path.relpath(r['file'], repo)}: {r['kind']} {r['name']}")
    return used


def scrape_names(text):
    names = set()
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group())
    return names


class Psql:
    """A psql session kept open on a pipe."""

    def __init__(self, dsn, tag):
        psql = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
        self.proc = subprocess.Popen([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True,
                                     env=dict(os.environ, PGAPPNAME=f"lockwatch-dash-check-{tag}"))

    def send(self, sql):
        self.proc.stdin.write(sql + "\n")
        self.proc.stdin.flush()

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_scrape(repo, binary, timeout_s):
    failures = Failures()
    dsn = os.environ.get("LOCKWATCH_TEST_DSN")
    if not dsn:
        failures.add("LOCKWATCH_TEST_DSN is not set: this check needs a PostgreSQL 15 superuser conninfo "
                     "(tests/run.sh or `eval \"$(bash tests/pg_cluster.sh start)\"` sets it)")
        return failures.done("scrape")
    if not binary or not os.access(binary, os.X_OK):
        failures.add(f"lockwatch binary {binary!r} does not exist or is not executable")
        return failures.done("scrape")
    used = used_metrics(repo, failures)
    recorded = {r["name"] for r in load_all_rules(repo, failures) if r["kind"] == "record"}
    table = f"lw_dash_check_{os.getpid()}"
    holder = waiter = agent = None
    log = tempfile.NamedTemporaryFile(prefix="lockwatch-dash-check-", suffix=".log", delete=False)
    log_path = log.name
    deadline = time.monotonic() + timeout_s
    try:
        # Stage a lock wait so that the series that exist only during contention are exported.
        holder = Psql(dsn, "holder")
        holder.send(f"CREATE TABLE {table} (id int); BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;")
        waiter = Psql(dsn, "waiter")
        time.sleep(0.5)
        waiter.send(f"SELECT count(*) FROM {table};")
        cmd = [binary, "run", "--dsn", dsn, "--listen", "127.0.0.1:0", "--interval", "200ms"]
        print("+ " + " ".join(c if c != dsn else "<LOCKWATCH_TEST_DSN>" for c in cmd), flush=True)
        agent = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        port = None
        while port is None and time.monotonic() < deadline and agent.poll() is None:
            text = read_text(log_path)
            m = re.search(r"serving metrics.*?(?:\bport=|\"port\":\s*)(\d+)", text)
            port = int(m.group(1)) if m else None
            if port is None:
                time.sleep(0.1)
        if port is None:
            failures.add(f"`lockwatch run` did not log 'serving metrics ... port=N' (exit status "
                         f"{agent.poll()}); its output:\n{read_text(log_path)}")
            return failures.done("scrape")
        url = f"http://127.0.0.1:{port}/metrics"
        names, body = set(), ""
        want_live = {"lockwatch_blocked_sessions", "lockwatch_lock_waiting_sessions", "lockwatch_wait_event_sessions"}
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    body = resp.read().decode("utf-8")
                names = scrape_names(body)
                if want_live <= names and 'lockwatch_up{target="default"} 1' in body:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            failures.add(f"no scrape of {url} showed target default up with a lock wait within {timeout_s} s; "
                         f"last scrape:\n{body}\nagent output:\n{read_text(log_path)}")
        print(f"scraped {len(names)} metric names from {url}", flush=True)
        for metric in sorted(used):
            if metric in names or metric in recorded or metric == "up":
                continue
            for where in sorted(set(used[metric])):
                failures.add(f"{where}: metric {metric} is not in the scrape of `lockwatch run`")
        print(f"{len(used)} metric names used by dashboards and rules", flush=True)
    finally:
        if agent is not None and agent.poll() is None:
            agent.terminate()
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        for s in (holder, waiter):  # the holder first: its rollback releases the waiter
            if s is not None:
                s.close()
        cleanup = Psql(dsn, "cleanup")
        cleanup.send(f"DROP TABLE IF EXISTS {table};")
        cleanup.close()
        log.close()
        if os.path.exists(log_path):
            os.unlink(log_path)
    return failures.done("scrape")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", required=True, help="repository root")
    ap.add_argument("--binary", help="lockwatch binary (scrape)")
    ap.add_argument("--timeout", type=float, default=60, help="scrape: seconds to wait for the agent")
    ap.add_argument("check", choices=("conventions", "promql", "rules", "rules-test", "alertmanager", "scrape"))
    args = ap.parse_args()
    repo = os.path.abspath(args.repo)
    if args.check == "conventions":
        return run_conventions(repo)
    if args.check == "promql":
        return run_promql(repo)
    if args.check == "rules":
        return run_rules(repo)
    if args.check == "rules-test":
        return run_rules_test(repo)
    if args.check == "alertmanager":
        return run_alertmanager(repo)
    return run_scrape(repo, args.binary, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
