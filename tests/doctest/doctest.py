#!/usr/bin/env python3
"""Runs every SQL example of README.md and docs/*.md and compares what it prints with what the page shows.

The rules a page follows (docs/architecture.md, "Docs that are tested"):

- Every fenced block whose info string is `sql` runs, in page order, in one psql session per page, in a fresh
  database of its own with the extension created (so a page may build on its earlier blocks: sign in as a user,
  send spans, then read them).
- A block fenced as `output` right after a `sql` block (nothing but blank lines between) is what that block must
  print, exactly as psql prints it (`psql -X -q`, errors as `ERROR:  message`, no CONTEXT lines); trailing spaces
  and blank lines at either end are ignored. A `sql` block without an `output` block must print nothing but
  results (any ERROR fails it).
- A block fenced as `sql norun` is shown but not run; use it only for statements that need something this test
  cluster does not have (pg_cron, a Supabase project), and say so next to it. The runner counts them.

- Every public function of the extension (in schema `analytics`, name not starting with `_`, not a trigger
  function) must be called as `analytics.<name>(` in at least one block that runs: a function without an executed
  example fails the run.

Usage: doctest.py [--update] FILE.md ...   (PGHOST/PGPORT/PGUSER of a cluster with the extension installed and
the Supabase roles created). --update rewrites each output block with what its sql block printed (review the diff).
Prints one line per page and "doctest: N passed, N failed"; exits 1 when a block fails.
"""

import os
import re
import subprocess
import sys

FENCE = re.compile(r"^(```+)\s*([A-Za-z0-9_-]*)\s*(.*)$")


def blocks(text):
    """The fenced blocks of a markdown text: (lang, options, body, start_line, end_line), 0-based lines."""
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, opts = m.group(1), m.group(2).lower(), m.group(3).split()
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            j += 1
        out.append((lang, opts, "\n".join(lines[i + 1 : j]), i, j))
        i = j + 1
    return out


def pairs(text):
    """The sql blocks of a page, each with its expected output block (or None) and the output block's lines."""
    bs = blocks(text)
    lines = text.split("\n")
    result = []
    for k, (lang, opts, body, start, end) in enumerate(bs):
        if lang != "sql":
            continue
        expected, where = None, None
        if k + 1 < len(bs) and bs[k + 1][0] == "output":
            between = lines[end + 1 : bs[k + 1][3]]
            if all(not l.strip() for l in between):
                expected, where = bs[k + 1][2], (bs[k + 1][3], bs[k + 1][4])
        result.append({"opts": opts, "sql": body, "expected": expected, "where": where, "line": start + 1})
    return result


def normalise(s):
    lines = [l.rstrip() for l in s.replace("\r\n", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def admin(db, sql, check=True):
    env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    subprocess.run(["psql", "-X", "-q", "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql], check=check, env=env)


def psql(db, script):
    r = subprocess.run(
        ["psql", "-X", "-q", "-d", db, "-v", "ON_ERROR_STOP=0"],
        input=script, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    return r.stdout


def run_page(path, update):
    text = open(path, encoding="utf-8").read()
    examples = pairs(text)
    runnable = [e for e in examples if "norun" not in e["opts"]]
    if not runnable:
        return 0, 0, len(examples), []
    db = "doctest_" + re.sub(r"[^a-z0-9]+", "_", os.path.relpath(path).lower()).strip("_")
    admin("postgres", f"drop database if exists {db}")
    admin("postgres", f"create database {db}")
    admin(db, "create extension analytics_ext")
    marker = "<<<doctest-block-{}>>>"
    script = ["\\set SHOW_CONTEXT never", "\\set VERBOSITY default"]
    for n, e in enumerate(runnable):
        script.append(f"\\echo {marker.format(n)}")
        script.append(e["sql"])
        # a block that ends inside a statement must not swallow the next marker
        script.append(";" if not e["sql"].rstrip().endswith(";") else "")
    script.append(f"\\echo {marker.format(len(runnable))}")
    out = psql(db, "\n".join(script) + "\n")
    pieces = re.split(r"^<<<doctest-block-(\d+)>>>$", out, flags=re.M)
    got = {int(pieces[i]): pieces[i + 1] for i in range(1, len(pieces) - 1, 2)}
    passed, failed, failures = 0, 0, []
    replacements = []
    for n, e in enumerate(runnable):
        actual = normalise(got.get(n, "<<the session ended before this block>>"))
        if e["expected"] is None:
            ok = "ERROR:" not in actual and "<<the session" not in actual
            if not ok:
                failures.append((e["line"], "(no output block; must not fail)", actual))
        else:
            ok = actual == normalise(e["expected"])
            if not ok:
                failures.append((e["line"], normalise(e["expected"]), actual))
            replacements.append((e["where"], actual))
        passed += ok
        failed += not ok
    admin("postgres", f"drop database if exists {db}", check=False)
    if update and replacements:
        lines = text.split("\n")
        for (start, end), actual in sorted(replacements, reverse=True):
            lines[start + 1 : end] = actual.split("\n") if actual else []
        open(path, "w", encoding="utf-8").write("\n".join(lines))
    return passed, failed, len(examples) - len(runnable), failures


PUBLIC_FUNCTIONS = """
select distinct p.proname from pg_proc p
where p.pronamespace = 'analytics'::regnamespace and p.proname !~ '^_' and p.prorettype <> 'trigger'::regtype
order by 1"""


def functions_without_example(files):
    """The public functions that no executed sql block of the pages calls."""
    db = "doctest_coverage"
    admin("postgres", f"drop database if exists {db}")
    admin("postgres", f"create database {db}")
    admin(db, "create extension analytics_ext")
    r = subprocess.run(["psql", "-X", "-q", "-At", "-d", db, "-c", PUBLIC_FUNCTIONS],
                       check=True, stdout=subprocess.PIPE, text=True)
    admin("postgres", f"drop database if exists {db}", check=False)
    names = [n for n in r.stdout.split("\n") if n]
    sql = "\n".join(e["sql"] for f in files for e in pairs(open(f, encoding="utf-8").read()) if "norun" not in e["opts"])
    return [n for n in names if not re.search(r"analytics\." + re.escape(n) + r"\s*\(", sql)]


def main(argv):
    update = "--update" in argv
    files = [a for a in argv if a != "--update"]
    total_passed = total_failed = total_norun = 0
    for path in files:
        passed, failed, norun, failures = run_page(path, update)
        total_passed += passed
        total_failed += failed
        total_norun += norun
        extra = f", {norun} not run" if norun else ""
        print(f"doctest {path}: {passed} passed, {failed} failed{extra}")
        for line, want, got in failures:
            print(f"  {path}:{line}: the sql block printed")
            print("    " + got.replace("\n", "\n    "))
            print("  but the page shows")
            print("    " + want.replace("\n", "\n    "))
    missing = functions_without_example(files)
    if missing:
        total_failed += 1
        print(f"doctest coverage: no executed example calls {', '.join('analytics.' + m for m in missing)}")
    else:
        print("doctest coverage: every public function has an executed example")
    print(f"doctest: {total_passed} passed, {total_failed} failed")
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
