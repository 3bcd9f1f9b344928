#!/usr/bin/env python3
"""`drover serve`'s /metrics read by a real Prometheus text parser.

Usage: metrics_test.py <path-to-drover>

Starts the service on a free port, runs a pipeline in which one module fails, then parses
/metrics with python3-prometheus-client's text_string_to_metric_families and checks the
families' names, types and values. Exits 77 (skipped) when the parser is not installed.
"""

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("SKIP: python3-prometheus-client is not installed (scripts/install-deps.sh)")
    sys.exit(77)

PIPELINE = {
    "name": "metrics",
    "modules": [
        {"id": "ok", "kind": "exec", "params": {"shell": "echo ok"}},
        {"id": "bad", "kind": "exec", "deps": ["ok"], "params": {"shell": "exit 4"}},
        {"id": "after", "kind": "noop", "deps": ["bad"]},
    ],
}
# family (as the parser names it: counters lose `_total`) -> type
EXPECTED = {
    "drover_runs": "gauge",
    "drover_runs_submitted": "counter",
    "drover_runs_finished": "counter",
    "drover_submissions_refused": "counter",
    "drover_modules": "gauge",
    "drover_modules_finished": "counter",
    "drover_attempts": "counter",
    "drover_retries": "counter",
    "drover_queue_runs": "gauge",
    "drover_queue_modules_ready": "gauge",
    "drover_queue_modules_waiting": "gauge",
    "drover_assignment_latency_seconds": "histogram",
    "drover_run_duration_seconds": "histogram",
    "drover_workers_connected": "gauge",
    "drover_worker_slots": "gauge",
    "drover_worker_slots_busy": "gauge",
    "drover_worker_busy_seconds": "counter",
    "drover_stale_results_rejected": "counter",
    "drover_worker_losses": "counter",
}


def fetch(port, path, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.status, reply.read().decode()


def main():
    drover = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen([drover, "serve", "--http", "127.0.0.1:0", "--workers", "2"],
                                  cwd=tmp, stderr=subprocess.PIPE, text=True)
        try:
            port = None
            deadline = time.monotonic() + 20
            while port is None and time.monotonic() < deadline:
                line = server.stderr.readline()
                if not line:
                    break
                found = re.search(r"http listening on [0-9.]+:(\d+)", line)
                if found:
                    port = int(found.group(1))
            if port is None:
                print("FAIL: the service did not say where it listens")
                return 1
            # Keep reading its log, so that the service never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
            status, text = fetch(port, "/api/runs?name=m.json", json.dumps(PIPELINE).encode())
            run = json.loads(text)["run"]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                state = json.loads(fetch(port, f"/api/runs/{run}")[1])["status"]
                if state not in ("queued", "running"):
                    break
                time.sleep(0.05)
            status, text = fetch(port, "/metrics")
            families = {f.name: f for f in text_string_to_metric_families(text)}
            problems = []
            for name, kind in EXPECTED.items():
                if name not in families:
                    problems.append(f"missing family {name}")
                elif families[name].type != kind:
                    problems.append(f"{name} is a {families[name].type}, expected {kind}")
            for family in families.values():
                if not family.name.startswith("drover_"):
                    problems.append(f"{family.name} lacks the drover_ prefix")
                if family.type == "counter" and not any(
                        s.name.endswith("_total") for s in family.samples):
                    problems.append(f"counter {family.name} has no _total sample")

            def sample(family, suffix="", **labels):
                for s in families[family].samples:
                    if s.name == family + suffix and all(s.labels.get(k) == v
                                                         for k, v in labels.items()):
                        return s.value
                problems.append(f"no sample {family}{suffix} {labels}")
                return None

            checks = [
                (sample("drover_runs_finished", "_total", status="failed"), 1),
                (sample("drover_modules_finished", "_total", status="succeeded"), 1),
                (sample("drover_modules_finished", "_total", status="failed"), 1),
                (sample("drover_modules_finished", "_total", status="skipped"), 1),
                (sample("drover_attempts", "_total"), 2),
                (sample("drover_run_duration_seconds", "_count"), 1),
                (sample("drover_run_duration_seconds", "_bucket", le="+Inf"), 1),
                (sample("drover_worker_slots", kind="local"), 2),
                (sample("drover_queue_runs"), 0),
            ]
            for got, want in checks:
                if got is not None and got != want:
                    problems.append(f"expected {want}, got {got}")
            buckets = [s.value for s in families["drover_assignment_latency_seconds"].samples
                       if s.name.endswith("_bucket")]
            if buckets != sorted(buckets) or not buckets or buckets[-1] != 2:
                problems.append(f"assignment latency buckets are not cumulative to 2: {buckets}")
            if problems:
                print("FAIL:\n  " + "\n  ".join(problems) + "\n--- /metrics:\n" + text)
                return 1
            print(f"OK: {len(families)} families parsed")
            return 0
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    sys.exit(main())
