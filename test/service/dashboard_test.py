#!/usr/bin/env python3
"""End-to-end test of the dashboard that `drover serve` answers at `/`.

Usage: dashboard_test.py <path-to-drover> <output-dir>

Starts the service on a free port, submits a four-module pipeline in which `lint` fails, waits
for the run to finish, then loads the page in headless Chromium twice: once to dump the DOM the
page's JavaScript built from the JSON API, once to save <output-dir>/dashboard.png. Exits 77
(skipped) when Chromium is not installed, 1 on a failed check, 0 otherwise.
"""

import html
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

PIPELINE = {
    "name": "dash",
    "modules": [
        {"id": "fetch", "kind": "exec", "params": {"shell": "echo fetched"}},
        {"id": "build", "kind": "exec", "deps": ["fetch"], "params": {"shell": "echo built"}},
        {"id": "lint", "kind": "exec", "deps": ["fetch"],
         "params": {"shell": "echo lint failed >&2; exit 3"}},
        {"id": "package", "kind": "exec", "deps": ["build", "lint"],
         "params": {"shell": "echo pkg"}},
    ],
}
# What each module may end as: without keep_going, lint's failure may cancel build.
EXPECTED = {
    "fetch": {"succeeded"},
    "build": {"succeeded", "cancelled"},
    "lint": {"failed"},
    "package": {"skipped", "cancelled"},
}
FINISHED = {"succeeded", "failed", "cancelled"}
LISTENING = re.compile(r"http listening on ([0-9.]+):(\d+)")
CHROME_TIMEOUT_S = 60


class check_failed(Exception):
    pass


_say_lock = threading.Lock()


def say(text):
    """Prints a whole line at once: the server's stderr is echoed from other threads."""
    with _say_lock:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def start_server(drover, tmp):
    """Starts `drover serve`; returns (process, port). Echoes its stderr from a thread."""
    server = subprocess.Popen(
        [drover, "serve", "--http", "127.0.0.1:0", "--workers", "2",
         "--state", os.path.join(tmp, "state")],
        cwd=tmp, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    lines = queue.Queue()

    def pump():
        for line in server.stderr:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 20
    port = None
    while port is None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise check_failed("drover serve did not print 'http listening on ADDR:PORT' "
                               "within 20 s")
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            continue
        if line is None:
            raise check_failed(f"drover serve exited (status {server.wait()}) before it "
                               "printed 'http listening on ADDR:PORT'")
        say(f"[server] {line}")
        match = LISTENING.search(line)
        if match:
            port = int(match.group(2))

    def echo_rest():
        while (line := lines.get()) is not None:
            say(f"[server] {line}")

    threading.Thread(target=echo_rest, daemon=True).start()
    return server, port


def stop_server(server):
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        say("drover serve ignored SIGTERM for 5 s; killing it")
        server.kill()
        server.wait()


def request(method, url, body=None, headers=None):
    """Returns (status, parsed JSON body); HTTP errors are answers here, not exceptions."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            status, raw = res.status, res.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        raise check_failed(f"{method} {url} answered {status} with non-JSON: {raw[:500]!r}")


def submit_and_wait(base, pipe_path):
    with open(pipe_path, "rb") as f:
        body = f.read()
    status, answer = request("POST", f"{base}/api/runs?name=pipe.json", body,
                             {"Content-Type": "application/json"})
    if status != 202 or not isinstance(answer.get("run"), str):
        raise check_failed(f"POST /api/runs: expected 202 and {{\"run\": ID}}, got {status} "
                           f"{answer}")
    run_id = answer["run"]
    say(f"submitted {run_id}")
    deadline = time.monotonic() + 30
    while True:
        status, run = request("GET", f"{base}/api/runs/{run_id}")
        if status != 200:
            raise check_failed(f"GET /api/runs/{run_id}: expected 200, got {status} {run}")
        if run.get("status") in FINISHED:
            return run_id, run
        if time.monotonic() > deadline:
            raise check_failed(f"run {run_id} did not finish within 30 s; last answer: {run}")
        time.sleep(0.1)


def run_chromium(chromium, tmp, headless, extra):
    args = [chromium, headless, "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", f"--user-data-dir={os.path.join(tmp, 'chrome')}",
            "--virtual-time-budget=8000", "--window-size=1280,1000"] + extra
    # Its own session, so a timeout kills the helper processes that hold stdout open too.
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=CHROME_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise check_failed(f"chromium did not finish within {CHROME_TIMEOUT_S} s: {args}")
    return proc.returncode, out, err


def chromium_with_fallback(chromium, tmp, extra, produced):
    """Runs with --headless=new, then with --headless if that failed and produced nothing."""
    code, out, err = run_chromium(chromium, tmp, "--headless=new", extra)
    if code != 0 and not produced(out):
        say(f"chromium --headless=new exited {code}; retrying with --headless\n"
            f"{err[-2000:]}")
        code, out, err = run_chromium(chromium, tmp, "--headless", extra)
    if code != 0:
        say(f"chromium exited {code}; its stderr ends with:\n{err[-2000:]}")
    return out


def has_module(dom, module, statuses):
    """Whether a `module status-S` element with data-id=module exists, S among statuses."""
    cls = r'class="module status-(?:%s)"' % "|".join(re.escape(s) for s in statuses)
    ident = r'data-id="%s"' % re.escape(module)
    return bool(re.search(f"<g [^>]*{cls}[^>]*{ident}", dom)
                or re.search(f"<g [^>]*{ident}[^>]*{cls}", dom))


def check_dom(dom, run_id, worker_names, module_workers):
    """Returns the problems found in the page's DOM, as sentences.

    worker_names: what /api/workers calls the service's workers; module_workers: module id ->
    the worker /api/runs/ID says ran it. The page must show both.
    """
    # The page's own script is not what it rendered.
    rendered = re.sub(r"<script\b.*?</script>", "", dom, flags=re.S | re.I)
    problems = []
    for module, statuses in EXPECTED.items():
        if f'data-id="{module}"' not in rendered:
            problems.append(f'no DAG element with data-id="{module}"')
        elif not has_module(rendered, module, statuses):
            problems.append(f'the DAG element of {module} has no class "module status-S" with '
                            f"S in {sorted(statuses)}")
    for name in worker_names:
        if f"<td>{html.escape(name, quote=False)}</td>" not in rendered:
            problems.append(f"the workers table has no cell naming worker {name!r}")
    for module, worker in module_workers.items():
        if f"<td>{html.escape(worker, quote=False)}</td>" not in rendered:
            problems.append(f"the modules table does not show that {worker!r} ran {module}")
    if not re.search(r"<pre\b[^>]*>[^<]*lint failed", rendered):
        problems.append("no <pre> shows lint's reason with its log line 'lint failed'")
    if run_id not in rendered:
        problems.append(f"the run id {run_id} is not shown")
    return problems


def main():
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} <path-to-drover> <output-dir>")
        return 2
    drover, out_dir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    chromium = find_chromium()
    if not chromium:
        print("SKIP: chromium is not installed (Debian: apt-get install chromium)")
        return 77
    os.makedirs(out_dir, exist_ok=True)
    screenshot = os.path.join(out_dir, "dashboard.png")
    if os.path.exists(screenshot):
        os.remove(screenshot)

    tmp = tempfile.mkdtemp(prefix="drover-dashboard-")
    server = None
    problems = []
    dom = ""
    try:
        pipe_path = os.path.join(tmp, "pipe.json")
        with open(pipe_path, "w") as f:
            json.dump(PIPELINE, f, indent=2)
        server, port = start_server(drover, tmp)
        base = f"http://127.0.0.1:{port}"

        with urllib.request.urlopen(f"{base}/", timeout=10) as res:
            page_type, page = res.headers.get("Content-Type", ""), res.read()
        if not page_type.startswith("text/html") or b"<!doctype html>" not in page[:100].lower():
            problems.append(f"GET / answered Content-Type {page_type!r} and {page[:100]!r}, "
                            "not the dashboard's HTML")

        run_id, run = submit_and_wait(base, pipe_path)
        ended = {m["id"]: m["status"] for m in run.get("modules", [])}
        say(f"run {run_id} ended {run['status']}: {ended}")
        for module, statuses in EXPECTED.items():
            if ended.get(module) not in statuses:
                problems.append(f"the API says {module} ended {ended.get(module)}, expected one "
                                f"of {sorted(statuses)}")

        module_workers = {m["id"]: m["worker"] for m in run["modules"] if m.get("worker")}
        status, workers = request("GET", f"{base}/api/workers")
        worker_names = [w["name"] for w in workers.get("workers", [])]
        if status != 200 or not worker_names:
            problems.append(f"GET /api/workers: expected 200 and at least one worker, got "
                            f"{status} {workers}")
        say(f"workers: {worker_names}; modules ran on: {module_workers}")

        url = f"{base}/#run={run_id}"
        dom = chromium_with_fallback(chromium, tmp, ["--dump-dom", url], lambda out: out.strip())
        if not dom.strip():
            problems.append("chromium --dump-dom printed nothing")
        else:
            problems += check_dom(dom, run_id, worker_names, module_workers)

        chromium_with_fallback(chromium, tmp, [f"--screenshot={screenshot}", url],
                               lambda _: os.path.exists(screenshot))
        if not os.path.exists(screenshot):
            problems.append(f"chromium wrote no screenshot at {screenshot}")
        elif os.path.getsize(screenshot) <= 10 * 1024:
            problems.append(f"the screenshot is {os.path.getsize(screenshot)} bytes; a rendered "
                            "dashboard is more than 10 KB")
    except check_failed as e:
        problems.append(str(e))
    except (OSError, ValueError, KeyError) as e:  # urllib's errors are OSErrors
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        if server:
            stop_server(server)
        shutil.rmtree(tmp, ignore_errors=True)

    if problems:
        print("FAILED:")
        for p in problems:
            print(f"  - {p}")
        if dom:
            body = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S | re.I)
            print(f"DOM excerpt without style and script (first 2000 characters):\n"
                  f"{body[:2000]}")
        return 1
    print(f"OK: the dashboard shows the run; screenshot at {screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
