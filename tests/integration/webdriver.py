"""A minimal W3C WebDriver client (standard library only) for the browser tests: starts Debian's chromedriver,
opens headless Chromium, and offers the few commands the tests use. No Selenium: nothing to pip-install in CI."""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
]


class WebDriverError(Exception):
    pass


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    def __init__(self, width=1400, height=800):
        driver = shutil.which("chromedriver")
        chromium = shutil.which("chromium")
        if not driver or not chromium:
            raise WebDriverError("chromium and chromium-driver must be installed (scripts/setup.sh installs them)")
        self.port = _free_port()
        self.profile = tempfile.mkdtemp(prefix="analytics_ext_chromium.")
        self.proc = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                self._call("GET", "/status")
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            self.close()
            raise WebDriverError("chromedriver did not start")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium,
                                   "args": CHROMIUM_ARGS + [f"--user-data-dir={self.profile}", f"--window-size={width},{height}"]},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            raise WebDriverError(f"{method} {path}: {e.code} {detail[:500]}") from None

    def _s(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, url):
        self._s("POST", "/url", {"url": url})

    def run(self, script, *args):
        """Runs `script` (a function body; `arguments` are `args`) in the page and returns its value."""
        return self._s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        """The element matching `css`, or None."""
        found = self._s("POST", "/elements", {"using": "css selector", "value": css})
        return found[0] if found else None

    def count(self, css):
        return len(self._s("POST", "/elements", {"using": "css selector", "value": css}))

    def click(self, element):
        """A real click (WebDriver scrolls the element into view and dispatches mouse events at its centre)."""
        self._s("POST", f"/element/{_eid(element)}/click", {})

    def _on_fresh(self, css, action, tries=50):
        """Finds the element matching `css` and applies `action` to it, again when the page redrew it in between (a
        virtualised list replaces its rows on every draw: the element found can be stale by the time it is used)."""
        for k in range(tries):
            element = self.find(css)
            if element is None:
                raise WebDriverError(f"no element matches {css}")
            try:
                return action(element)
            except WebDriverError as e:
                if "stale element" not in str(e) or k == tries - 1:
                    raise
                time.sleep(0.05)

    def click_css(self, css):
        self._on_fresh(css, self.click)

    def keys_css(self, css, keys):
        self._on_fresh(css, lambda element: self.keys(element, keys))

    def text(self, element):
        return self._s("GET", f"/element/{_eid(element)}/text")

    def keys(self, element, keys):
        """Types `keys` into `element` (WebDriver key codes: "\\ue015" is ArrowDown, "\\ue012" ArrowLeft, ...)."""
        self._s("POST", f"/element/{_eid(element)}/value", {"text": keys})

    def frame(self, element):
        """Switches into the iframe `element` (None: back to the top-level document)."""
        self._s("POST", "/frame", {"id": element})

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self._s("GET", "/screenshot")))

    def wait_for(self, script, timeout=10.0):
        """Polls `script` (returning a truthy value when done) until it holds; returns the value."""
        end = time.time() + timeout
        while True:
            v = self.run(script)
            if v:
                return v
            if time.time() > end:
                raise WebDriverError(f"timed out waiting for: {script}")
            time.sleep(0.05)

    def close(self):
        try:
            if getattr(self, "session", None):
                self._call("DELETE", f"/session/{self.session}")
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _eid(element):
    return element["element-6066-11e4-a52e-4f735466cecf"]


ARROW_UP, ARROW_DOWN, ARROW_LEFT, ARROW_RIGHT, ENTER = "\ue013", "\ue015", "\ue012", "\ue014", "\ue007"
