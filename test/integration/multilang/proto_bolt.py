"""A bolt that speaks Storm's multi-lang protocol message by message, as the
protocol's documentation shows it, without any library (not this project's
module either). It checks what streamd sends and writes what it saw to a
report file (one JSON object a line) for the test to assert on.

argv: REPORT_FILE STATE_DIR [MODE AT]
  For every input [line] it emits [line] on "default" anchored to the input
  with need_task_ids left to its default (true) and reads the task ids,
  emits [line, n] directly to a task of component "direct" on stream
  "lens" (need_task_ids false), logs at every level once, sends one
  "error" and one "metrics", and acks the input; an input whose line ends
  in "7" is failed without emits the first time it comes (the spout
  replays it). It answers
  every heartbeat with sync. Every 50th input it waits 30 ms before acking
  so that streamd sends a heartbeat first.
  MODE "ticks": lines ending in "7" are failed until a tick tuple came
  (which it acks, as Storm's BasicBolt does), so the run lasts until then.
  Other MODEs (once per run, at the AT-th input; a file in STATE_DIR remembers that
  it happened, so the restarted child behaves): die, hang, badjson,
  unknown, badack, idlehang (keeps the AT-th input without acking it and
  hangs at the first heartbeat that comes 2 s after its last input, i.e.
  while idle).
  MODE "pieces" (with AT 0): every message is written as four writes, each
  flushed after a pause, as a library that prints the JSON, its newline,
  "end" and the final newline separately does: the message, "end" and its
  newline reach streamd in separate reads.
"""
import json
import os
import sys
import time

report_path, state_dir = sys.argv[1], sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "ticks" else None
tick_wait = len(sys.argv) > 3 and sys.argv[3] == "ticks"
at = int(sys.argv[4]) if len(sys.argv) > 4 else 0
report = open(report_path, "a")


def note(**kw):
    kw["pid"] = os.getpid()
    kw["t"] = time.time()
    report.write(json.dumps(kw) + "\n")
    report.flush()


queued = []  # messages that came while waiting for task ids


def read_msg():
    if queued:
        return queued.pop(0)
    return read_raw()


def read_task_ids():
    # a heartbeat may come before the answer to an emit: keep it for later
    while True:
        msg = read_raw()
        if isinstance(msg, list):
            return msg
        queued.append(msg)


def read_raw():
    text = ""
    while True:
        line = sys.stdin.readline()
        if not line:
            sys.exit(0)
        if line == "end\n":
            return json.loads(text)
        text += line


def send(obj):
    if mode == "pieces":
        for piece in (json.dumps(obj), "\n", "end", "\n"):
            sys.stdout.write(piece)
            sys.stdout.flush()
            time.sleep(0.002)
        return
    sys.stdout.write(json.dumps(obj) + "\nend\n")
    sys.stdout.flush()


def fail_check(what):
    note(kind="violation", what=what)


# ---- handshake ----
setup = read_msg()
for key in ("pidDir", "conf", "context"):
    if key not in setup:
        fail_check("handshake without " + key)
ctx = setup["context"]
for key in ("task->component", "taskid", "componentid", "stream->outputfields", "source->stream->grouping"):
    if key not in ctx:
        fail_check("context without " + key)
pid = os.getpid()
open(os.path.join(setup["pidDir"], str(pid)), "w").close()
send({"pid": pid})
direct_tasks = sorted(int(t) for t, c in ctx["task->component"].items() if c == "direct")
note(kind="handshake", taskid=ctx["taskid"], component=ctx["componentid"],
     outputs=ctx["stream->outputfields"], inputs=ctx["source->stream->grouping"],
     pidfile=os.path.exists(os.path.join(setup["pidDir"], str(pid))),
     timeout=setup["conf"].get("topology.subprocess.timeout.secs"), direct_tasks=direct_tasks)

seen = set(os.listdir(state_dir))
held = []  # idlehang: inputs kept unacked
last_input = time.time()
count = 0
logged = False
ticked = False
while True:
    msg = read_msg()
    if msg.get("stream") == "__heartbeat":
        if msg.get("task") != -1:
            fail_check("heartbeat with task %r" % msg.get("task"))
        note(kind="heartbeat")
        if held and time.time() - last_input >= 2:
            note(kind="idle_hang", held=held)
            time.sleep(3600)
        send({"command": "sync"})
        continue
    if msg.get("stream") == "__tick":
        ticked = True
        note(kind="tick", comp=msg.get("comp"), task=msg.get("task"), id=msg.get("id"))
        send({"command": "ack", "id": msg["id"]})  # as Storm's BasicBolt does
        continue
    for key in ("id", "comp", "stream", "task", "tuple"):
        if key not in msg:
            fail_check("tuple without " + key)
    count += 1
    last_input = time.time()
    line = msg["tuple"][0]
    if mode and count == at and ("mode-" + mode) not in seen:
        open(os.path.join(state_dir, "mode-" + mode), "w").close()
        seen.add("mode-" + mode)
        note(kind="abuse", mode=mode)
        if mode == "die":
            os._exit(3)
        if mode == "hang":
            time.sleep(3600)
        if mode == "badjson":
            sys.stdout.write("{this is not json\nend\n")
            sys.stdout.flush()
        if mode == "unknown":
            send({"command": "frobnicate"})
        if mode == "badack":
            send({"command": "ack", "id": "987654321"})
        if mode == "idlehang":
            held.append(line)
        continue
    if line.endswith("7") and (("failed-" + line) not in seen or (tick_wait and not ticked)):
        # no emit: the line reaches the sink only if the spout replays it
        open(os.path.join(state_dir, "failed-" + line), "w").close()
        seen.add("failed-" + line)
        note(kind="failed", line=line)
        send({"command": "fail", "id": msg["id"]})
        continue
    send({"command": "emit", "anchors": [msg["id"]], "tuple": [line]})
    ids = read_task_ids()
    if not isinstance(ids, list) or not ids:
        fail_check("emit answered with %r" % (ids,))
    dt = direct_tasks[count % len(direct_tasks)]
    send({"command": "emit", "anchors": [msg["id"]], "stream": "lens", "task": dt, "tuple": [line, len(line)],
          "need_task_ids": False})
    if not logged:
        logged = True
        for level in range(5):
            send({"command": "log", "msg": "proto_bolt log level %d" % level, "level": level})
        send({"command": "error", "msg": "proto_bolt reports an error"})
        send({"command": "metrics", "name": "lines", "params": 1})
    if count % 50 == 0:
        time.sleep(0.03)
    send({"command": "ack", "id": msg["id"]})
