#!/usr/bin/env python3
"""A stand-in for `streamd --role=worker --control-fd=3`, for node tests.

Speaks the control protocol of src/control.h on fd 3: reads the assignment,
writes it to $FAKE_WORKER_DIR/assign-<port>.json, sends "started" and a
heartbeat every 100 ms, exits 0 on {"type":"stop"}. $FAKE_WORKER_MODE:
  normal       as above
  crash_once   exits 3 after its first heartbeat unless crashed-<port> exists
               (it creates that file), so the node must restart it once
  ignore_stop  ignores stop messages (the node must SIGKILL it)
  silent       never sends a heartbeat (the node must kill it as stale)
$FAKE_WORKER_DEAF_PORT: the worker of that port never reads after the
assignment (it keeps heartbeating), as a worker with a stuck channel would.
"""
import json
import os
import select
import struct
import sys
import time

FD = 3


def send(msg):
    data = json.dumps(msg).encode()
    os.write(FD, struct.pack(">I", len(data)) + data)


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(FD, n - len(buf))
        if not chunk:
            sys.exit(0)  # the node went away
        buf += chunk
    return buf


def read_msg():
    (n,) = struct.unpack(">I", read_exact(4))
    return json.loads(read_exact(n))


def main():
    if "--role=worker" not in sys.argv or "--control-fd=3" not in sys.argv:
        sys.exit(2)
    mode = os.environ.get("FAKE_WORKER_MODE", "normal")
    out = os.environ.get("FAKE_WORKER_DIR", ".")
    a = read_msg()
    me = a["workers"][a["worker_index"]]
    port = me["port"]
    with open(os.path.join(out, "assign-%d.json.tmp" % port), "w") as f:
        json.dump(a, f)
    os.rename(os.path.join(out, "assign-%d.json.tmp" % port), os.path.join(out, "assign-%d.json" % port))
    print("fake worker port %d pid %d mode %s" % (port, os.getpid(), mode), flush=True)
    send({"type": "started", "pid": os.getpid()})
    beats = 0
    deaf = os.environ.get("FAKE_WORKER_DEAF_PORT") == str(port)
    while True:
        r, _, _ = select.select([] if deaf else [FD], [], [], 0.1)
        if r:
            msg = read_msg()
            if msg.get("type") == "stop" and mode != "ignore_stop":
                send({"type": "heartbeat", "time_ms": int(time.time() * 1000), "worker_index": a["worker_index"],
                      "task_columns": {"task": []}, "idle": True, "rss_kb": 1, "final": True})
                sys.exit(0)
            continue
        if mode == "silent":
            continue
        beats += 1
        # the task columns (src/proto/task_columns.h): ids, then one array per counter
        columns = {"task": list(me["tasks"]), "emitted": [beats] * len(me["tasks"])}
        send({"type": "heartbeat", "time_ms": int(time.time() * 1000), "worker_index": a["worker_index"],
              "task_columns": columns, "idle": False, "rss_kb": 1000 + beats})
        marker = os.path.join(out, "crashed-%d" % port)
        if mode == "crash_once" and not os.path.exists(marker):
            open(marker, "w").close()
            sys.exit(3)


if __name__ == "__main__":
    main()
