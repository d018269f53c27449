#!/usr/bin/env python3
"""etcd_cas.py: a closed-loop load on etcd's v3 JSON gateway (/v3/kv/put,
/v3/kv/txn), for cas_vs_etcd.sh: the same workload as chorus-bench
--workload cas (if-value increments of the value last seen, if-absent "0"
on a key not seen yet), --workload wo (blind puts) or --workload lock
(each client acquires a lock of a random key through etcd's lock API on
a lease it holds, then releases it: two requests, as chorus-bench's
acquire and release), at the same concurrency. One keep-alive HTTP connection per client thread, spread over
the endpoints; latency per request in ms. etcdctl runs one process per
command, so its own start would be the measurement; the Debian packages
have no etcd `benchmark` tool.

Usage: etcd_cas.py ENDPOINTS(h:p,...) MODE(put|cas|lock) CONNS SECONDS KEYS
Prints: ops/s p50_ms p99_ms not_applied errors
"""
import base64
import http.client
import json
import random
import sys
import threading
import time


def b64(s):
    return base64.b64encode(s.encode()).decode()


def main():
    endpoints = sys.argv[1].split(",")
    mode, conns = sys.argv[2], int(sys.argv[3])
    seconds, keys = float(sys.argv[4]), int(sys.argv[5])
    lat, lock = [], threading.Lock()
    counts = {"not_applied": 0, "errors": 0}
    warm = time.monotonic() + 1.0
    end = warm + seconds

    def worker(i):
        host, port = endpoints[i % len(endpoints)].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        rnd = random.Random(i)
        seen = {}
        mine, na, err = [], 0, 0
        lease, held = None, None
        if mode == "lock":
            # One lease per client for the run (60 s: no keep-alive needed).
            conn.request("POST", "/v3/lease/grant", json.dumps({"TTL": 60}),
                         {"Content-Type": "application/json"})
            lease = json.loads(conn.getresponse().read())["ID"]
        while True:
            t0 = time.monotonic()
            if t0 >= end:
                break
            # Keys of each mode apart, as chorus-bench's "key:" and "cas:".
            k = "%s:%012d" % (mode, rnd.randrange(keys))
            if mode == "lock" and held is not None:
                path = "/v3/lock/unlock"
                body = {"key": held}
            elif mode == "lock":
                path = "/v3/lock/lock"
                body = {"name": b64(k), "lease": lease}
            elif mode == "put":
                path = "/v3/kv/put"
                body = {"key": b64(k), "value": b64("x" * 100)}
            elif k in seen:
                path = "/v3/kv/txn"
                body = {"compare": [{"key": b64(k), "target": "VALUE",
                                     "result": "EQUAL",
                                     "value": b64(seen[k])}],
                        "success": [{"requestPut": {
                            "key": b64(k),
                            "value": b64(str(int(seen[k]) + 1))}}],
                        "failure": [{"requestRange": {"key": b64(k)}}]}
            else:
                path = "/v3/kv/txn"
                body = {"compare": [{"key": b64(k), "target": "CREATE",
                                     "result": "EQUAL",
                                     "create_revision": "0"}],
                        "success": [{"requestPut": {"key": b64(k),
                                                    "value": b64("0")}}],
                        "failure": [{"requestRange": {"key": b64(k)}}]}
            try:
                conn.request("POST", path, json.dumps(body),
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = json.loads(resp.read() or b"{}")
                ok = resp.status == 200
            except Exception:
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                ok, data = False, {}
            t1 = time.monotonic()
            if not ok:
                seen.pop(k, None)
                held = None
                if t0 >= warm:
                    err += 1
                continue
            if mode == "lock":
                held = None if held is not None else data.get("key")
            if mode == "cas":
                if data.get("succeeded"):
                    prev = seen.get(k)
                    seen[k] = "0" if prev is None else str(int(prev) + 1)
                else:
                    if t0 >= warm:
                        na += 1
                    kvs = (data.get("responses") or [{}])[0].get(
                        "response_range", {}).get("kvs") or []
                    if kvs:
                        seen[k] = base64.b64decode(kvs[0]["value"]).decode()
                    else:
                        seen.pop(k, None)
            if t0 >= warm:
                mine.append((t1 - t0) * 1000.0)
        with lock:
            lat.extend(mine)
            counts["not_applied"] += na
            counts["errors"] += err

    th = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    lat.sort()
    n = len(lat)
    if n == 0:
        print("0 0 0 0 %d" % counts["errors"])
        return
    print("%.0f %.2f %.2f %d %d" % (n / seconds, lat[n // 2],
                                    lat[min(n - 1, int(n * 0.99))],
                                    counts["not_applied"], counts["errors"]))


if __name__ == "__main__":
    main()
