#!/usr/bin/env python3
"""console_cdp.py URL NODE OUT_PNG RACK: drives headless Chromium through the
DevTools protocol over --remote-debugging-pipe (no socket, no library: JSON
messages ended by NUL on fds 3 and 4) for test_node_console.c.

It opens URL (a node's web console), waits for the members table, then
writes lines on stdout for the test to check:

  ROWS name=state,...      the members the page's DOM lists, with states
  TEXT name name name      the names found in the page's visible text
  RACKS n same markup      the rows, how many show exactly RACK as their
                           rack (hostile bytes, shown as text), and how
                           many elements the page holds that no markup of
                           its own makes (img, iframe, a second script)
  LEVELS level=rate/p99,...  the request table: each level's rate
                           (req/s) and p99 as the page shows them
  SHOT W H COLOURS NONWHITE  the screenshot (also saved to OUT_PNG): its
                           size, distinct colours, pixels not white
  READY                    then it waits for a line on stdin (the test
                           kills NODE meanwhile)
  CHANGED state SECONDS    NODE's state on the same page, first not "up",
  DOWN SECONDS             then "down" (or TIMEOUT)
  SAME 1|0                 the page was not reloaded (a marker set before
                           the kill is still there)
  ERROR text               anything that went wrong

Every wait is bounded (the test's own timeout is the backstop)."""
import base64
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Browser:
    def __init__(self, profile):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        args = [exe, "--headless=new", "--remote-debugging-pipe",
                "--user-data-dir=" + profile, "--no-first-run",
                "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--window-size=1200,800", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses root otherwise
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        env.pop("ASAN_OPTIONS", None)

        def fds():
            # Out of the way first: either pipe may itself be fd 3 or 4,
            # and dup2 onto itself would keep its close-on-exec flag.
            r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)  # inheritable
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            args, env=env, preexec_fn=fds, pass_fds=(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(profile + ".log", "wb"), close_fds=False)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.w, self.r = to_chrome_w, from_chrome_r
        self.buf = b""
        self.next_id = 0
        self.session = None

    def call(self, method, params=None, timeout=10.0, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(raw)
                if m.get("id") == self.next_id:
                    if "error" in m:
                        raise RuntimeError(method + ": " + str(m["error"]))
                    return m.get("result", {})
            left = end - time.monotonic()
            if left <= 0:
                raise RuntimeError(method + ": no answer in %g s" % timeout)
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self.buf += chunk

    def eval(self, expr):
        r = self.call("Runtime.evaluate",
                      {"expression": expr, "returnByValue": True})
        return r.get("result", {}).get("value")

    def close(self):
        try:
            self.call("Browser.close", session=False, timeout=3)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def png_pixels(data):
    """(width, height, set of colours, pixels not white) of an 8-bit RGB or
    RGBA PNG, decoded here (zlib and the five row filters of PNG §9)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), "unexpected PNG format"
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    colours, nonwhite = set(), 0
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif f == 3:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((a + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 255
        for x in range(0, stride, bpp):
            px = bytes(line[x:x + 3])
            colours.add(px)
            if px != b"\xff\xff\xff":
                nonwhite += 1
        prev = line
    return w, h, colours, nonwhite


ROWS_JS = ("Array.from(document.querySelectorAll('#members tr[data-node]'))"
           ".map(r => r.dataset.node + '=' + r.dataset.state).join(',')")


def main():
    url, node, png, rack = sys.argv[1:5]
    profile = tempfile.mkdtemp(prefix="chorus-chromium-")
    b = Browser(profile)
    try:
        targets = b.call("Target.getTargets", session=False)["targetInfos"]
        page = [t for t in targets if t["type"] == "page"][0]["targetId"]
        b.session = b.call("Target.attachToTarget",
                           {"targetId": page, "flatten": True},
                           session=False)["sessionId"]
        b.call("Page.enable")
        b.call("Page.navigate", {"url": url})
        rows, end = "", time.monotonic() + 15
        while time.monotonic() < end:
            rows = b.eval(ROWS_JS) or ""
            if rows.count("=") >= 3 and "=up" in rows and \
                    rows.count("=up") == rows.count("="):
                break
            time.sleep(0.2)
        out("ROWS " + rows)
        text = b.eval("document.body.innerText") or ""
        names = [r.split("=")[0] for r in rows.split(",") if r]
        out("TEXT " + " ".join(n for n in names if n in text))
        racks = b.eval(
            "(() => { const rows = document.querySelectorAll("
            "'#members tr[data-node]'); let same = 0;"
            "rows.forEach(r => { if (r.children[5].textContent === %s) same++; });"
            "const markup = document.querySelectorAll('img, iframe').length +"
            " document.querySelectorAll('script').length - 1;"
            "return rows.length + ' ' + same + ' ' + markup; })()"
            % json.dumps(rack))
        out("RACKS " + str(racks))
        # Two polls, so the rates and percentiles are drawn too.
        time.sleep(1.2)
        out("LEVELS " + (b.eval(
            "Array.from(document.querySelectorAll('#levels tr[data-level]'))"
            ".map(r => r.dataset.level + '=' + r.children[1].textContent +"
            " '/' + r.children[3].textContent).join(',')") or ""))
        shot = b.call("Page.captureScreenshot", {
            "format": "png",
            "clip": {"x": 0, "y": 0, "width": 1200, "height": 800,
                     "scale": 0.5}}, timeout=15)
        data = base64.b64decode(shot["data"])
        with open(png, "wb") as f:
            f.write(data)
        w, h, colours, nonwhite = png_pixels(data)
        out("SHOT %d %d %d %d" % (w, h, len(colours), nonwhite))
        b.eval("window.chorusMarker = 'before-kill'")
        out("READY")
        if not sys.stdin.readline():
            out("ERROR the test closed stdin")
            return
        t0 = time.monotonic()
        js = ("(document.querySelector('#members tr[data-node=\"%s\"]') || "
              "{dataset: {}}).dataset.state || ''" % node)
        changed = down = None
        while time.monotonic() - t0 < 20 and down is None:
            st = b.eval(js)
            now = time.monotonic() - t0
            if changed is None and st and st != "up":
                changed = st
                out("CHANGED %s %.2f" % (st, now))
            if st == "down":
                down = now
                out("DOWN %.2f" % now)
            time.sleep(0.1)
        if down is None:
            out("TIMEOUT last state %s" % b.eval(js))
        out("SAME %d" % (b.eval("window.chorusMarker") == "before-kill"))
        out("ROWS " + (b.eval(ROWS_JS) or ""))
    except Exception as e:  # reported to the test, which fails on it
        out("ERROR %s" % e)
    finally:
        b.close()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
