"""The HTML views in a real browser: each document is fetched as PostgREST would (role authenticated, the user's
JWT claims), saved, opened in headless Chromium through chromedriver, and driven. Every check fails the test when
the interaction does not happen. Usage: views_browser.py DATABASE OUTDIR [--docs DIR] (screenshots to DIR too)."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from webdriver import ARROW_DOWN, ARROW_LEFT, ARROW_RIGHT, ENTER, Browser  # noqa: E402

ALICE = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
BOB = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
db, out = sys.argv[1], sys.argv[2]
docs = sys.argv[sys.argv.index("--docs") + 1] if "--docs" in sys.argv else None
os.makedirs(out, exist_ok=True)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    checks += 1
    print(f"ok - {what}")


def as_user(sub, query):
    """The value of `query` in a transaction run the way PostgREST runs a request of user `sub`."""
    script = (
        "begin;\nset local role authenticated;\n"
        f"select set_config('request.jwt.claims', '{{\"sub\":\"{sub}\",\"role\":\"authenticated\"}}', true) is null as _ \\gset\n"
        f"{query}\ncommit;\n"
    )
    r = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", db], input=script, capture_output=True,
                       text=True, check=True)
    return r.stdout.rsplit("COMMIT", 1)[0].removeprefix("BEGIN\n").removeprefix("SET\n").rstrip("\n")


def save(name, html):
    path = os.path.join(out, name)
    with open(path, "w") as f:
        f.write(html)
    return "file://" + path


def rendered(b):
    return float(b.wait_for("return document.body.dataset.rendered"))


def shot(b, name):
    b.screenshot(os.path.join(out, name))
    if docs:
        b.screenshot(os.path.join(docs, name))


# ---- two users: each view renders only the caller's rows ----------------------------------------------------------
alice_doc = as_user(ALICE, "select analytics.trace_view('view-1');")
check(alice_doc.startswith("<!doctype html>"), "Alice gets her trace view")
check(as_user(BOB, "select analytics.trace_view('view-1') is null;") == "t", "Bob gets NULL for Alice's trace")
check(as_user(BOB, "select analytics.trace_view('view-1', user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa') is null;") == "t",
      "Bob naming Alice's id gets NULL too")
bob_doc = as_user(BOB, "select analytics.trace_view('bob-1');")
check("bob-pipeline" in bob_doc and "support-agent" not in bob_doc, "Bob's own view holds his span only")

with Browser() as b:
    # ---- the trace view: tree, waterfall, details, collapse, keyboard -------------------------------------------
    b.open(save("trace_view.html", alice_doc))
    rendered(b)
    check(b.count(".row") == 5, "five span rows drawn")
    check(b.run("return document.querySelector('#detail h2').textContent") == "support-agent",
          "the root is selected at first")
    b.click_css('.row[data-span-id="llm"]')
    b.wait_for("return document.getElementById('detail').dataset.spanId === 'llm'")
    inp = b.text(b.find('#detail pre[data-field="input"]'))
    check("You are a support agent." in inp and '"role": "user"' in inp, "clicking a span shows its input")
    check("Your order 8812 ships today." in b.text(b.find('#detail pre[data-field="output"]')),
          "and its output")
    check(b.text(b.find('#detail dd[data-field="first token"]')) == "400 ms", "and its time to first token")
    check(b.run("return document.querySelector('.row[data-span-id=\"tool\"]').classList.contains('error')"),
          "the failed span is marked as an error")
    check(b.run("return document.querySelector('.row[data-span-id=\"llm\"] .bar').classList.contains('crit')"),
          "the last model call is on the critical path")
    shot(b, "trace_view.png")

    b.click_css('.row[data-span-id="kb"] .tg')
    b.wait_for("return !document.querySelector('.row[data-span-id=\"embed\"]')")
    check(b.count(".row") == 4 and b.run("return document.body.dataset.visibleRows") == "4",
          "collapsing search-knowledge-base hides its child row")
    check(b.run("return document.querySelector('.row[data-span-id=\"kb\"]').getAttribute('aria-expanded')") == "false",
          "and says so to assistive technology")
    b.click_css('.row[data-span-id="kb"] .tg')
    b.wait_for("return !!document.querySelector('.row[data-span-id=\"embed\"]')")
    check(b.count(".row") == 5, "expanding it shows the child again")

    # keyboard: from kb, Down goes to embed, Left twice goes back to kb and collapses it, Right expands
    b.keys_css('.row[data-span-id="kb"]', ARROW_DOWN)
    b.wait_for("return document.getElementById('detail').dataset.spanId === 'embed'")
    check(True, "ArrowDown moves the selection to the next span")
    b.keys_css('.row[data-span-id="embed"]', ARROW_LEFT)
    b.wait_for("return document.getElementById('detail').dataset.spanId === 'kb'")
    b.keys_css('.row[data-span-id="kb"]', ARROW_LEFT)
    b.wait_for("return !document.querySelector('.row[data-span-id=\"embed\"]')")
    check(True, "ArrowLeft goes to the parent, then collapses it")
    b.keys_css('.row[data-span-id="kb"]', ARROW_RIGHT)
    b.wait_for("return !!document.querySelector('.row[data-span-id=\"embed\"]')")
    check(b.run("return document.activeElement.dataset.spanId") == "kb", "ArrowRight expands; focus stays on the row")

    # find: a span inside a collapsed subtree is found, its ancestors open, it is selected and highlighted
    b.click_css('.row[data-span-id="root"] .tg')
    b.wait_for("return document.body.dataset.visibleRows === '1'")
    b.keys_css("#find", "embed")
    b.wait_for("return document.getElementById('find-count').textContent === '1 found'")
    b.keys_css("#find", ENTER)
    b.wait_for("return document.getElementById('detail').dataset.spanId === 'embed'")
    check(b.run("return document.body.dataset.visibleRows") == "5"
          and b.run("return document.querySelector('.row[data-span-id=\"embed\"]').classList.contains('match')")
          and b.text(b.find("#find-count")) == "1 of 1",
          "find: 'embed' under the collapsed root opens the way to it, selects and highlights it")

    # ---- in an app's page: iframe.srcdoc in a sandbox that allows scripts only (what docs/views.md recommends) ------
    with open(os.path.join(out, "host.html"), "w") as f:
        f.write("<!doctype html><title>host</title><body><div id=trace></div>")
    b.open("file://" + os.path.join(out, "host.html"))
    b.run("""const frame = document.createElement('iframe');
             frame.sandbox = 'allow-scripts'; frame.style.cssText = 'width: 1200px; height: 700px; border: 0';
             frame.srcdoc = arguments[0]; document.getElementById('trace').replaceChildren(frame);""", alice_doc)
    b.frame(b.wait_for("return document.querySelector('iframe')"))
    rendered(b)
    b.click_css('.row[data-span-id="llm"]')
    b.wait_for("return document.getElementById('detail').dataset.spanId === 'llm'")
    check("Your order 8812 ships today." in b.text(b.find('#detail pre[data-field="output"]')),
          "inside a sandboxed iframe (srcdoc), the view runs and a click shows the span's output")
    b.frame(None)

    # ---- hostile text renders as text and runs nothing ------------------------------------------------------------
    xss_doc = as_user(ALICE, "select analytics.trace_view('xss');")
    b.open(save("trace_view_xss.html", xss_doc))
    rendered(b)
    b.click_css('.row[data-span-id="root"]')
    b.wait_for("return document.getElementById('detail').dataset.spanId === 'root'")
    check(b.run("return document.querySelector('.row[data-span-id=\"root\"] .name').textContent") ==
          "<script>window.__xss=1</script>", "a <script> name shows as text")
    check('"><img src=x onerror="window.__xss=2">' in b.text(b.find('#detail pre[data-field="input"]')),
          "an onerror input shows as text")
    check("javascript:window.__xss=4" in b.text(b.find('#detail pre[data-field="metadata"]')),
          "a javascript: URL shows as text")
    b.click_css('.row[data-span-id="child"]')
    b.wait_for("return document.getElementById('detail').dataset.spanId === 'child'")
    check(b.text(b.find('#detail dd[data-field="message"]')) == "<iframe src=javascript:window.__xss=7>",
          "an iframe status message shows as text")
    check(b.run("return window.__xss === undefined"), "no injected script ran")
    check(b.run("return document.querySelectorAll('img, iframe, svg, a[href]').length") == 0,
          "no injected element exists")
    check(b.run("return document.scripts.length") == 2, "the page has only its own two script elements")

    # ---- 20,000 spans: readable, a window of rows at a time ------------------------------------------------------
    big_doc = as_user(ALICE, "select analytics.trace_view('big');")
    b.open(save("trace_view_big.html", big_doc))
    ms = rendered(b)
    rows = b.count(".row")
    check(b.run("return document.body.dataset.visibleRows") == "20000" and rows < 200,
          f"20,000 spans: {rows} rows in the DOM, first render at {ms:.0f} ms after navigation")
    b.run("document.getElementById('viewport').scrollTop = 24 * 15000")
    b.wait_for("return !!document.querySelector('.row[data-span-id=\"s15000\"]')")
    check(True, "scrolling draws the rows in sight (s15000 at row 15,000)")
    b.run("document.getElementById('viewport').scrollTop = 0")
    b.wait_for("return !!document.querySelector('.row[data-span-id=\"s1\"]')")
    b.click_css('.row[data-span-id="s1"]')
    b.wait_for("return document.getElementById('detail').dataset.spanId === 's1'")
    b.keys_css('.row[data-span-id="s1"]', ARROW_DOWN * 60)
    b.wait_for("return document.getElementById('detail').dataset.spanId === 's61'")
    check(b.run("return document.activeElement.dataset.spanId") == "s61"
          and b.run("return document.getElementById('viewport').scrollTop") > 0,
          "60 presses of ArrowDown scroll the list and keep the focus on the selected row through every redraw")
    b.run("document.getElementById('viewport').scrollTop = 0")
    b.wait_for("return !!document.querySelector('.row[data-span-id=\"s0\"]')")
    b.click_css('.row[data-span-id="s0"] .tg')
    b.wait_for("return document.body.dataset.visibleRows === '1'")
    check(True, "collapsing the root of 20,000 spans leaves one row")

# ---- the experiment view --------------------------------------------------------------------------------------------
exp_doc = as_user(ALICE, """select analytics.experiment_view('cta', '["signup"]', '[{"metric": "errors", "lower_is_better": true}]');""")
check(exp_doc.startswith("<!doctype html>"), "Alice gets her experiment view")
check(as_user(BOB, "select count(*) from analytics.ab_experiments;") == "0", "Bob has no experiment to view")
with Browser(1200, 1250) as b:
    b.open(save("experiment_view.html", exp_doc))
    rendered(b)
    check(b.run("return document.querySelector('h1').textContent") == "Checkout <b>CTA</b>", "the name shows as text")
    bars = b.run("""return [...document.querySelectorAll('.ci-bar rect.ci')].map(r => {
        const box = r.getBoundingClientRect(); return [r.closest('section').dataset.metric, r.getAttribute('class'), box.width, box.height]; })""")
    check(len(bars) == 2 and all(w > 5 and h > 5 for _, _, w, h in bars),
          f"one visible interval bar per treatment and metric: {bars}")
    check(bars[0][:2] == ["signup", "ci better"], "signup: b's interval is drawn as significantly better")
    check(bars[1][:2] == ["errors", "ci worse"], "errors: b's interval is drawn as significantly worse")
    check(b.run("return document.querySelector('section[data-metric=\"errors\"] tr[data-variant=\"b\"] .status-failing') !== null"),
          "the errors guardrail says failing for b")
    pts = b.run("return document.querySelector('figure.chart polyline.line').getAttribute('points').trim().split(/\\s+/).length")
    check(pts == 6, f"the cumulative chart has a point per day of assignment: {pts}")
    check(b.run("return document.querySelector('figure.chart polygon.band').getBoundingClientRect().height") > 10,
          "and a visible band for the interval")
    check(b.run("return document.querySelector('.srm-warning[role=alert]') === null"), "no sample-ratio warning for a fair split")
    shot(b, "experiment_view.png")

    skewed = as_user(ALICE, "select analytics.experiment_view('skewed', '[\"signup\"]');")
    b.open(save("experiment_view_skewed.html", skewed))
    rendered(b)
    check("Sample ratio mismatch" in b.text(b.find(".srm-warning[role=alert]")), "a broken split shows the SRM warning")

# ---- the dashboard ----------------------------------------------------------------------------------------------------
RANGE = "'2026-11-20 00:00+00', '2026-11-22 00:00+00', '1 hour'"
dash = as_user(ALICE, f"select analytics.dashboard_view({RANGE});")
bob_dash = as_user(BOB, f"select analytics.dashboard_view({RANGE});")
check('data-trace-id="view-1"' in dash and 'data-trace-id="view-1"' not in bob_dash and 'data-trace-id="bob-1"' in bob_dash,
      "each user's dashboard lists only their own traces")
check('data-experiment="cta"' in dash and "data-experiment=" not in bob_dash, "and only their own experiments")
with Browser(1200, 1400) as b:
    b.open(save("dashboard_view.html", dash))
    rendered(b)
    shot(b, "dashboard_view.png")
    markers = b.run("""return [...document.querySelectorAll('.anomaly-marker')].map(m => {
        const box = m.querySelector('path').getBoundingClientRect();
        return [m.closest('figure').dataset.chart, box.width > 4 && box.height > 4]; })""")
    check(markers == [["errors", True], ["latency", True]],
          f"the open anomalies are marked, visibly, on the error-rate and latency charts: {markers}")
    check(b.count("#anomalies tbody tr") == 3, "three anomalies listed (the resolved one is not; a custom metric is listed, not drawn)")
    check('&lt;script&gt;window.__xss=1&lt;/script&gt;' in dash and b.run("return window.__xss === undefined")
          and b.run("return document.querySelectorAll('img, iframe, script[src]').length") == 0,
          "hostile trace and model names on the dashboard are text: no injected element, no script run")
    b.click_css('figure[data-chart="latency"] .anomaly-marker')
    b.wait_for("return location.hash === '#anomaly-1'")
    check(b.run("return document.querySelector(':target').textContent.startsWith('latency_p95')"),
          "clicking the latency marker jumps to its anomaly")
    totals = b.text(b.find(".totals"))
    check(totals.startswith("Requests\n3\n"), f"the totals count the three traces (root spans) as requests: {totals!r}")
    check(b.count('#chart-requests rect.bar') > 0 and b.count('#chart-latency polyline.line') == 2,
          "the request bars and the two latency lines are drawn")
    check(b.count('#failed-traces tbody tr') >= 1 and b.count('#experiments tbody tr') == 2,
          "traces with errors and the running experiments are listed")
    b.click_css('header nav a[href="#failed-traces"]')
    b.wait_for("return location.hash === '#failed-traces'")
    check(True, "the section links navigate within the document")
    b.open(save("dashboard_view_bob.html", bob_dash))
    rendered(b)
    check(b.run("return [...document.querySelectorAll('.anomaly-marker')].map(m => m.closest('figure').dataset.chart)") == ["requests"],
          "Bob's dashboard marks his one anomaly only")

print(f"views: {checks} checks passed")
