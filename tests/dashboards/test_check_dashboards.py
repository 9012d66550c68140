#!/usr/bin/env python3
"""Unit tests of check_dashboards.py: its PromQL reader, and that every convention it enforces fails on a copy
of the repository broken in exactly that way (so no check passes vacuously).

Usage: test_check_dashboards.py --repo DIR [unittest options]
"""
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # never leave __pycache__ in the source tree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_dashboards as cd  # noqa: E402

REPO = None


class SelectorTest(unittest.TestCase):
    CASES = [
        # (expr, [(name, {label: value})])
        ('up{job="x"} == 0', [("up", {"job": "x"})]),
        ('sum by (job, instance) (rate(a_total{job=~"$job"}[$__rate_interval]))', [("a_total", {"job": "$job"})]),
        ('sum(b) by (target)', [("b", {})]),
        ('x{a="1"} / on (target) group_left () y', [("x", {"a": "1"}), ("y", {})]),
        ('histogram_quantile(0.9, sum by (le) (rate(h_bucket{t="}"}[5m])))', [("h_bucket", {"t": "}"})]),
        ('a and on (job) b > 60', [("a", {}), ("b", {})]),
        ('{__name__="m", job="j"}', [("m", {"__name__": "m", "job": "j"})]),
        ('time() - ts{target=~"$target"}', [("ts", {"target": "$target"})]),
        ('avg_over_time(x[5m:30s]) offset 5m', [("x", {})]),
        ('m or vector(0)', [("m", {})]),
        ('count without (pid) (m)', [("m", {})]),
        ('sum:rec:op{job="j"}', [("sum:rec:op", {"job": "j"})]),
    ]

    def test_selectors(self):
        for expr, want in self.CASES:
            with self.subTest(expr=expr):
                got = [(n, {l: v for l, _, v in m}) for n, m, _ in cd.selectors(expr)]
                self.assertEqual(got, want)

    def test_range_functions(self):
        self.assertEqual(cd.range_functions('sum(rate(a[5m])) / sum(increase(b{x="1"}[$__rate_interval]))'),
                         [("rate", "[5m]"), ("increase", "[$__rate_interval]")])

    def test_substitute(self):
        self.assertEqual(cd.substitute('rate(a{job=~"$job", t=~"${target}"}[$__rate_interval])'),
                         'rate(a{job=~"lockwatch", t=~"default"}[1m])')
        with self.assertRaises(KeyError):
            cd.substitute('a{x="$nosuchvar"}')


class MutationTest(unittest.TestCase):
    """Each case breaks one convention in a copy of the repository and expects `conventions` to name it."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lw-dash-selftest-")
        for d in ("dashboards", "rules", os.path.join("agent", "docs", "runbooks")):
            shutil.copytree(os.path.join(REPO, d), os.path.join(self.tmp, d))

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def fresh_copy(self):
        self.tearDown()
        self.setUp()

    def conventions(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = cd.run_conventions(self.tmp)
        return rc, out.getvalue()

    def edit_dashboard(self, name, fn, regenerate=True):
        path = os.path.join(self.tmp, "dashboards", name)
        with open(path) as f:
            d = json.load(f)
        fn(d)
        with open(path, "w") as f:
            json.dump(d, f, indent=2)
            f.write("\n")
        if regenerate:
            generator = cd.load_configmap_generator(self.tmp)
            text = generator.render(os.path.join(self.tmp, "dashboards"))
            with open(os.path.join(self.tmp, "dashboards", "kubernetes", "configmap.yaml"), "w") as f:
                f.write(text)

    def edit_text(self, rel, old, new):
        path = os.path.join(self.tmp, rel)
        with open(path) as f:
            text = f.read()
        self.assertIn(old, text, f"{rel}: mutation target not found")
        with open(path, "w") as f:
            f.write(text.replace(old, new, 1))

    def first_panel(self, d, kind="timeseries"):
        return next(p for p in cd.all_panels(d["panels"]) if p["type"] == kind)

    def test_unmodified_copy_passes(self):
        rc, out = self.conventions()
        self.assertEqual(rc, 0, out)

    def test_dashboard_mutations_fail(self):
        def drop_instance(d):
            t = self.first_panel(d)["targets"][0]
            t["expr"] = t["expr"].replace(', instance=~"$instance"', "")

        def fixed_rate(d):
            p = next(p for p in cd.all_panels(d["panels"]) if "rate(" in json.dumps(p.get("targets", [])))
            p["targets"][0]["expr"] = p["targets"][0]["expr"].replace("$__rate_interval", "5m")

        def bad_ds(d):
            self.first_panel(d)["datasource"] = {"type": "prometheus", "uid": "prom1"}

        def bad_target_ds(d):
            self.first_panel(d)["targets"][0]["datasource"] = "${DS_PROMETHEUS}"

        def no_unit(d):
            del self.first_panel(d)["fieldConfig"]["defaults"]["unit"]

        def no_desc(d):
            self.first_panel(d, "stat")["description"] = ""

        def schema(d):
            d["schemaVersion"] = 36

        def ident(d):
            d["id"] = 7

        def no_ds_var(d):
            d["templating"]["list"] = [v for v in d["templating"]["list"] if v["name"] != "datasource"]

        def unknown_record(d):
            t = self.first_panel(d)["targets"][0]
            t["expr"] = 'target:lockwatch_nothing:sum{job=~"$job", instance=~"$instance", target=~"$target"}'

        cases = [
            (drop_instance, 'lacks instance=~"$instance"'),
            (fixed_rate, "want [$__rate_interval]"),
            (bad_ds, "datasource is"),
            (bad_target_ds, "__inputs/${DS_...}"),
            (no_unit, "no unit"),
            (no_desc, "no description"),
            (schema, "schemaVersion is 36"),
            (ident, "id must be null"),
            (no_ds_var, "needs a variable 'datasource'"),
            (unknown_record, "recording rule target:lockwatch_nothing:sum is not defined"),
        ]
        for fn, want in cases:
            with self.subTest(mutation=fn.__name__):
                self.fresh_copy()
                self.edit_dashboard("lockwatch-target.json", fn)
                rc, out = self.conventions()
                self.assertEqual(rc, 1, out)
                self.assertIn(want, out)
                self.assertIn("lockwatch-target.json", out)

    def test_duplicate_uid_fails(self):
        self.edit_dashboard("lockwatch-target.json", lambda d: d.update(uid="lockwatch-overview"))
        rc, out = self.conventions()
        self.assertEqual(rc, 1)
        self.assertIn("uid 'lockwatch-overview' also used by", out)

    def test_stale_configmap_fails(self):
        self.edit_dashboard("lockwatch-overview.json", lambda d: d.update(title="changed"), regenerate=False)
        rc, out = self.conventions()
        self.assertEqual(rc, 1)
        self.assertIn("data 'lockwatch-overview.json' differs from dashboards/lockwatch-overview.json", out)

    def test_rule_mutations_fail(self):
        cases = [
            ("rules/lockwatch-alerts.yaml", "severity: critical", "severity: page", "severity 'page' not in"),
            ("rules/lockwatch-alerts.yaml", "        for: 2m\n", "", "needs a for: duration"),
            ("rules/lockwatch-alerts.yaml", "runbooks/LockwatchDeadlockCycle.md", "runbooks/Deadlock.md",
             "runbook_url"),
            ("rules/lockwatch-alerts.yaml", "- alert: LockwatchDeadlockCycle", "- alert: lockwatch_deadlock",
             "CamelCase"),
            ("agent/docs/runbooks/LockwatchPollErrors.md", "## What not to do", "## Notes",
             "lacks section '## What not to do'"),
            ("rules/lockwatch-recording.yaml", "sum by (job, instance, target, le)", "sum by (target, le)",
             "drops job, instance"),
        ]
        for rel, old, new, want in cases:
            with self.subTest(file=rel, old=old):
                self.fresh_copy()
                self.edit_text(rel, old, new)
                rc, out = self.conventions()
                self.assertEqual(rc, 1, out)
                self.assertIn(want, out)

    def run_check(self, fn):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = fn(self.tmp)
        return rc, out.getvalue()

    def test_alert_without_negative_case_fails(self):
        self.edit_text("rules/tests/lockwatch-alerts-test.yaml",
                       "      - eval_time: 45s\n        alertname: LockwatchDeadlockCycle\n        exp_alerts: []\n", "")
        rc, out = self.run_check(cd.run_rules_test)
        self.assertEqual(rc, 1, out)
        self.assertIn("alert LockwatchDeadlockCycle has no negative case", out)

    def test_invalid_dashboard_promql_names_the_panel(self):
        def break_query(d):
            t = self.first_panel(d)["targets"][0]
            t["expr"] = "sum by (job (" + t["expr"]
        self.edit_dashboard("lockwatch-target.json", break_query)
        rc, out = self.run_check(cd.run_promql)
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"lockwatch-target.json: panel \d+ '[^']+' query A: promtool rejects")

    def test_missing_runbook_fails(self):
        os.unlink(os.path.join(self.tmp, "agent", "docs", "runbooks", "LockwatchLongLockWait.md"))
        rc, out = self.conventions()
        self.assertEqual(rc, 1)
        self.assertIn("runbook agent/docs/runbooks/LockwatchLongLockWait.md does not exist", out)


def main():
    global REPO
    args = sys.argv[1:]
    if "--repo" not in args or args.index("--repo") + 1 >= len(args):
        print("usage: test_check_dashboards.py --repo DIR", file=sys.stderr)
        return 2
    i = args.index("--repo")
    REPO = os.path.abspath(args[i + 1])
    del args[i:i + 2]
    prog = unittest.main(argv=[sys.argv[0]] + args, exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
