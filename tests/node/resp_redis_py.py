#!/usr/bin/python3
"""resp_redis_py.py: redis-py (Debian python3-redis) against chorusd's RESP
gateway (test_node_resp.c runs it). Usage: resp_redis_py.py PREFIX KILL_PID
PORT...: the first port's node is killed (SIGKILL, pid KILL_PID) half way,
and the client goes on through the next port. Prints one line per check;
exits 0 when every check held, else 1 with the failed check's line."""
import os
import signal
import sys

import redis


def check(what, got, want):
    if got != want:
        print(f"FAIL {what}: got {got!r}, want {want!r}")
        sys.exit(1)
    print(f"ok {what}")


def main():
    prefix, kill_pid, ports = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    k = lambda s: f"{prefix}:{s}"
    r = redis.Redis(host="127.0.0.1", port=int(ports[0]), socket_timeout=10)
    check("ping", r.ping(), True)
    check("set", r.set(k("a"), b"1"), True)
    check("get", r.get(k("a")), b"1")
    check("get missing", r.get(k("missing")), None)
    check("incrby", r.incrby(k("n"), 5), 5)
    check("decr", r.decr(k("n")), 4)
    check("sadd", r.sadd(k("s"), "x", "y", "x"), 2)
    check("smembers", r.smembers(k("s")), {b"x", b"y"})
    check("client setname", r.client_setname("py"), True)
    check("client getname", r.client_getname(), "py")
    # A pipeline without a transaction: 200 commands, answers in order.
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.set(k(f"p{i}"), str(i))
        p.get(k(f"p{i}"))
    out = p.execute()
    check("pipeline order", out, [x for i in range(100) for x in (True, str(i).encode())])
    p = r.pipeline(transaction=False)
    p.incr(k("pn"))
    p.get(k("a"))
    p.sismember(k("s"), "y")
    check("pipeline mixed", p.execute(), [1, b"1", True])
    # MULTI is refused cleanly: the error, and the connection goes on.
    try:
        with r.pipeline(transaction=True) as t:
            t.set(k("t"), "1")
            t.execute()
        check("multi refused", "accepted", "an error")
    except redis.ResponseError as e:
        check("multi refused", "no transactions" in str(e), True)
    check("after multi", r.get(k("a")), b"1")
    try:
        r.sadd(k("a"), "x")
        check("wrongtype", "accepted", "an error")
    except redis.ResponseError as e:
        check("wrongtype", str(e).startswith("WRONGTYPE"), True)
    # A kv key with siblings: GET refuses to pick, CHORUS.SIBLINGS reads
    # them with their context, CHORUS.PUT with it resolves them.
    r.execute_command("CHORUS.PUT", k("kv"), "one", "")
    r.execute_command("CHORUS.PUT", k("kv"), "two", "")
    try:
        r.get(k("kv"))
        check("get of siblings", "a value", "an error")
    except redis.ResponseError as e:
        check("get of siblings", str(e).startswith("SIBLINGS"), True)
    ctx, values = r.execute_command("CHORUS.SIBLINGS", k("kv"))
    check("siblings", sorted(values), [b"one", b"two"])
    new_ctx = r.execute_command("CHORUS.PUT", k("kv"), "both", ctx)
    check("put with context", len(new_ctx) > 0, True)
    check("resolved", r.get(k("kv")), b"both")
    check("one sibling", r.execute_command("CHORUS.SIBLINGS", k("kv"))[1], [b"both"])
    # redis-py 4.3 reads RESP2 only (test_node_resp.c checks RESP3).
    hello = r.execute_command("HELLO", "2")
    check("hello 2", hello[hello.index(b"proto") + 1], 2)
    r.close()
    # Reconnect after a node is killed: the data written at QUORUM is
    # read back through another node.
    r = redis.Redis(host="127.0.0.1", port=int(ports[0]), socket_timeout=10)
    check("before kill", r.get(k("p7")), b"7")
    os.kill(kill_pid, signal.SIGKILL)
    try:
        r.get(k("p7"))
        r.get(k("p7"))
        check("killed node answers", "answered", "a connection error")
    except (redis.ConnectionError, redis.TimeoutError):
        print("ok connection lost")
    for port in ports[1:]:
        r = redis.Redis(host="127.0.0.1", port=int(port), socket_timeout=10)
        try:
            r.ping()
            break
        except redis.ConnectionError:
            continue
    check("reconnected read", r.get(k("p7")), b"7")
    check("reconnected write", r.set(k("after"), "x"), True)
    check("reconnected read back", r.get(k("after")), b"x")
    print("all ok")


main()
