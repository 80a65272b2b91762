"""A spout that speaks the multi-lang protocol without any library and, like
some libraries do, answers only next, ack and fail: activate and deactivate
get no answer at all. It writes each message as one write, the JSON and
"end" lines separated by newlines. Emits records 0..N-1 with their number as
the id; a failed record is emitted again. argv: N REPORT_FILE. The report
(JSON lines) notes every command that came and "done" once all were acked."""
import json
import os
import sys

N, REPORT = int(sys.argv[1]), sys.argv[2]
report = open(REPORT, "a")


def note(**kw):
    report.write(json.dumps(kw) + "\n")
    report.flush()


def read_msg():
    text = ""
    while True:
        line = sys.stdin.readline()
        if not line:
            sys.exit(0)
        if line == "end\n":
            return json.loads(text)
        text += line


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\nend\n")
    sys.stdout.flush()


setup = read_msg()
open(os.path.join(setup["pidDir"], str(os.getpid())), "w").close()
send({"pid": os.getpid()})
nxt, replay, acked = 0, [], set()
while True:
    msg = read_msg()
    if isinstance(msg, list):
        continue  # task ids of an emit: not needed here
    cmd = msg.get("command")
    note(kind="command", command=cmd)
    if cmd in ("activate", "deactivate"):
        continue  # no answer, not even sync
    if cmd == "next":
        n = replay.pop(0) if replay else (nxt if nxt < N else None)
        if n is not None:
            if n == nxt:
                nxt += 1
            send({"command": "emit", "id": n, "tuple": ["rec %d" % n], "need_task_ids": False})
    elif cmd == "ack":
        acked.add(msg["id"])
        if len(acked) == N:
            note(kind="done")
    elif cmd == "fail":
        replay.append(msg["id"])
    send({"command": "sync"})
