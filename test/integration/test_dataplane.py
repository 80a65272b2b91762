"""The data plane facing a hostile network: a peer that passes the handshake
(it reads the assignment from etcd and the topology file, as a real worker
does) sends forged tuples; each one closes that peer's connection, is logged
with its address, and the worker keeps running with every input line
reaching the sink."""
import json
import os
import resource
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from cluster import cluster, sink_lines, topology_file  # noqa: F401 (fixture)
from conftest import read_jsonl, wait_for, worker_pids
from cluster import start_cluster
from test_cluster import all_workers, submit, wait_all_lines


def worker_logs(c):
    return "\n".join(p.read_text(errors="replace") for n in c.nodes for p in sorted(Path(n.local).rglob("*.log")))


def flowing_topology(tmp_path, nlines, workers=2, delay_ms=2, config=None):
    """file_lines -> slow pass_through -> file_sink over nlines numbered lines, acking on."""
    src = tmp_path / "input.txt"
    src.write_text("".join(f"record {i:06d}\n" for i in range(nlines)))
    sink = tmp_path / "sink.jsonl"
    conf = {"topology.acker.executors": 2, "topology.message.timeout.secs": 5, "topology.max.spout.pending": 50}
    conf.update(config or {})
    topo = {
        "name": "flow",
        "workers": workers,
        "config": conf,
        "spouts": [{"id": "lines", "class": "file_lines", "parallelism": 2, "args": {"path": str(src)}}],
        "bolts": [
            {"id": "slow", "class": "pass_through", "parallelism": workers, "args": {"delay.ms": delay_ms},
             "outputs": ["line"], "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "parallelism": workers, "args": {"path": str(sink)},
             "inputs": [{"from": "slow", "grouping": "shuffle"}]},
        ],
    }
    return topology_file(tmp_path, topo), sink


def running_flow(c, tmp_path, nlines, workers=2, config=None, delay_ms=2):
    """One node with a slot per worker and the topology flowing; returns (topology file, sink, assignment file)."""
    start_cluster(c, masters=1, nodes=1, slots=workers)
    path, sink = flowing_topology(tmp_path, nlines, workers=workers, config=config, delay_ms=delay_ms)
    submit(c, path)

    def assignment():
        kv = c.etcd.get_prefix(c.key("assignments/"))
        return json.loads(next(iter(kv.values()))) if kv else None
    wait_for(lambda: assignment() and len(all_workers(c)) == workers, 30, what=f"{workers} workers running")
    wait_for(lambda: worker_logs(c).count("transport: connected to worker") >= workers * (workers - 1), 30,
             what="the workers to connect")
    afile = tmp_path / "assignment.json"
    afile.write_text(json.dumps(assignment()))
    return path, sink, afile


def wire_peer(streamd_bin, afile, topo, kind, to=1, claim=0, secs=10, extra=()):
    exe = Path(streamd_bin).parent / "test" / "unit" / "wire_peer"
    res = subprocess.run([str(exe), str(afile), str(topo), str(to), str(claim), kind, str(secs), *extra],
                         capture_output=True, text=True, timeout=secs + 30)
    return res.stdout.strip(), res.stderr


def test_forged_tuples_close_only_that_connection(cluster, streamd_bin, tmp_path):
    c = cluster
    nlines = 3000
    topo, sink, afile = running_flow(c, tmp_path, nlines)
    pids = all_workers(c)
    reasons = {"ack_init": "__ack_init names another spout task",
               "unsubscribed": "stream not subscribed by the destination's component",
               "fields": "value count differs from the stream's fields",
               "shm_offer": "malformed shared-memory offer",
               "shm_bell": "a bell without a shared-memory ring",
               "shm_garbage": "a frame other than a batch in the shared-memory ring"}
    for kind, reason in reasons.items():
        out, err = wire_peer(streamd_bin, afile, topo, kind)
        assert out == "closed", f"{kind}: the worker kept a forging peer's connection ({out} {err})\n" + c.all_output()
        wait_for(lambda: reason in worker_logs(c), 10, what=f"the rejection of {kind} in the worker log")
        assert all_workers(c) == pids, f"a worker died after a forged {kind}\n" + c.all_output()
    log = worker_logs(c)
    assert "rejecting tuple from 127.0.0.1:" in log
    wait_all_lines(sink, nlines, c, 90)
    assert all_workers(c) == pids


def test_guessed_topology_id_rejected(cluster, streamd_bin, tmp_path):
    """A peer that knows the topology id (today guessable: name-time-random)
    but not the topology's secret never gets a tuple in."""
    c = cluster
    nlines = 1500
    topo, sink, afile = running_flow(c, tmp_path, nlines)
    pids = all_workers(c)
    assign = json.loads(afile.read_text())
    assert len(assign["secret"]) == 64, "the assignment should carry the topology's secret"
    for i in range(3):
        out, err = wire_peer(streamd_bin, afile, topo, "fields", extra=["guess"])
        assert out == "closed", f"a peer without the secret kept its connection ({out} {err})\n" + c.all_output()
    wait_for(lambda: worker_logs(c).count("peer does not hold the topology secret") >= 3, 10,
             what="three handshakes rejected for a wrong proof")
    log = worker_logs(c)
    assert "value count differs" not in log, "a tuple of an unauthenticated peer reached the checks:\n" + log[-3000:]
    assert assign["secret"] not in log, "the secret was logged"
    wait_all_lines(sink, nlines, c, 90)
    assert all_workers(c) == pids
    # the secret is never sent on the data plane nor exposed by the API
    status, body = c.api("/api/v1/topologies")
    assert assign["secret"] not in json.dumps(body)


def closed_by_peer(sock):
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset


def test_strangers_are_bounded(cluster, tmp_path):
    """A slow-loris peer and 1,000 idle connections: each is closed within the
    handshake timeout (or at once, over the cap), the worker keeps running and
    the data keeps flowing."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 1200:
        pytest.skip("cannot open 1,000 sockets here")
    c = cluster
    nlines = 3000
    _, sink, afile = running_flow(c, tmp_path, nlines, config={"worker.transfer.handshake.timeout.ms": 2000,
                                                               "worker.transfer.max.unauthenticated": 16})
    pids = all_workers(c)
    target = json.loads(afile.read_text())["workers"][1]
    addr = (target["host"], target["port"])
    loris = socket.create_connection(addr, timeout=5)
    loris_start = time.monotonic()
    idle = []
    for _ in range(1000):
        s = socket.create_connection(addr, timeout=5)
        s.setblocking(False)
        idle.append(s)
    loris.setblocking(False)
    # a valid-looking header, one byte at a time
    header = (74 + 20).to_bytes(4, "little") + bytes([1, 0, 0, 0]) + (74 + 20).to_bytes(4, "little")
    loris_closed_at = None
    deadline = time.monotonic() + 30
    i = 0
    while loris_closed_at is None and time.monotonic() < deadline:
        try:
            loris.send(header[i % len(header):i % len(header) + 1])
        except OSError:
            loris_closed_at = time.monotonic()
            break
        i += 1
        time.sleep(0.2)
        if closed_by_peer(loris):
            loris_closed_at = time.monotonic()
    assert loris_closed_at is not None, "the slow-loris connection was never closed\n" + c.all_output()
    assert loris_closed_at - loris_start < 10
    wait_for(lambda: all(closed_by_peer(s) for s in idle if s.fileno() >= 0), 20,
             what="the worker to close all 1,000 idle connections")
    for s in idle:
        s.close()
    loris.close()
    assert "connections already in their handshake" in worker_logs(c)
    assert all_workers(c) == pids, "a worker died\n" + c.all_output()
    wait_all_lines(sink, nlines, c, 90)
    assert all_workers(c) == pids


def worker_index_pid(c, index):
    """pid of the worker process with the given index (from its command line's log file name or its log)."""
    for pid in all_workers(c):
        try:
            log = os.readlink(f"/proc/{pid}/fd/1")
            text = Path(log).read_text(errors="replace")
        except OSError:
            continue
        if f"worker {index} listening on" in text:
            return pid
    return None


def test_stopped_peer_does_not_stall_the_others(cluster, tmp_path):
    """SIGSTOP one of three workers: the others declare it down after the peer
    timeout and their tuples keep flowing; after SIGCONT every line arrives."""
    c = cluster
    nlines = 6000
    # pending high enough that trees stuck behind the stopped worker do not
    # hold the spouts back during the test: what flows is what the healthy
    # workers can carry
    _, sink, afile = running_flow(c, tmp_path, nlines, workers=3, delay_ms=2,
                                  config={"worker.transfer.peer.timeout.secs": 2,
                                          "worker.transfer.heartbeat.interval.ms": 200,
                                          "topology.max.spout.pending": 100000,
                                          "topology.message.timeout.secs": 10})
    wait_for(lambda: sink_lines(sink) > 200, 30, what="the flow to start")
    victim = worker_index_pid(c, 2)
    assert victim, "cannot find worker 2\n" + c.all_output()
    os.kill(victim, signal.SIGSTOP)
    try:
        wait_for(lambda: "peer declared down" in worker_logs(c), 15, what="the stopped peer to be declared down")
        before = sink_lines(sink)
        time.sleep(2)
        during = sink_lines(sink)
    finally:
        os.kill(victim, signal.SIGCONT)
    assert during > before, f"nothing reached the sink while a peer was stopped ({before} -> {during})\n" + c.all_output()
    wait_all_lines(sink, nlines, c, 120)


def local_worker_pid(local_pid, index):
    """pid of the local-mode worker with the given index (from its log)."""
    for pid in worker_pids(local_pid):
        try:
            text = Path(os.readlink(f"/proc/{pid}/fd/1")).read_text(errors="replace")
        except OSError:
            continue
        if f"worker {index} listening on" in text:
            return pid
    return None


def spout_failed_in_progress(stderr_path, spout):
    """The largest `failed=` count of the spout in local mode's progress lines so far."""
    best = 0
    for line in Path(stderr_path).read_text(errors="replace").splitlines():
        if "progress: " not in line:
            continue
        for part in line.split("progress: ", 1)[1].split("; "):
            if part.startswith(spout + " emitted="):
                best = max(best, int(part.rsplit("failed=", 1)[1].split()[0]))
    return best


def three_worker_flow(tmp_path, name, nlines, config, delay_ms, sink_tasks, pad=""):
    """A 3-worker flow, lines -> slow x3 (delay_ms a tuple) -> sink, one
    acker, over nlines input records; returns (topology, sink path)."""
    src = tmp_path / "input.txt"
    src.write_text("".join(f"record {i:06d}{pad}\n" for i in range(nlines)))
    sink = tmp_path / "sink.jsonl"
    conf = {"topology.acker.executors": 1, "worker.transfer.peer.timeout.secs": 1,
            "worker.transfer.heartbeat.interval.ms": 200, **config}
    topo = {
        "name": name,
        "workers": 3,
        "config": conf,
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [
            {"id": "slow", "class": "pass_through", "parallelism": 3, "args": {"delay.ms": delay_ms},
             "outputs": ["line"], "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "parallelism": sink_tasks, "args": {"path": str(sink)},
             "inputs": [{"from": "slow", "grouping": "shuffle"}]},
        ],
    }
    return topo, sink


@contextmanager
def worker_2_stopped(streamd, proc, sink):
    """Once tuples flow, SIGSTOPs local worker 2 (none of the spout's trees
    has failed yet) and yields its pid; SIGCONTs it on the way out."""
    wait_for(lambda: sink_lines(sink) > 100, 30, what="the flow to start")
    victim = local_worker_pid(proc.pid, 2)
    assert victim, "cannot find worker 2\n" + streamd.result(proc).explain()
    assert spout_failed_in_progress(streamd.stderr_path, "lines") == 0
    os.kill(victim, signal.SIGSTOP)
    try:
        yield victim
    finally:
        os.kill(victim, signal.SIGCONT)


def wait_declared_down(streamd, proc):
    wait_for(lambda: streamd.result(proc).worker_logs().count("peer declared down") >= 2, 10,
             what="both live workers to declare the stopped one down")


def wait_fails_before_timeout(streamd, proc, stopped, timeout, margin):
    """The spout sees failed trees before any could time out (stopped: when
    the worker was stopped; margin: seconds left for the progress lines)."""
    # progress lines come every 5 s, from counters the workers send each second
    wait_for(lambda: spout_failed_in_progress(streamd.stderr_path, "lines") > 0, timeout - margin,
             what="the spout to see failed trees before any could time out")
    assert time.monotonic() - stopped < timeout


def drained_with_every_line(streamd, proc, sink, nlines):
    """Lets the run drain (--until-drained) and checks every input record
    reached the sink; returns the spout's summary."""
    res = streamd.finish(proc, timeout=90)  # --until-drained: every tree completed
    assert res.returncode == 0, res.explain()
    got = {row["line"].split(" ")[1] for row in read_jsonl(sink)}
    assert got == {f"{i:06d}" for i in range(nlines)}, f"{nlines - len(got)} lines lost\n" + res.explain()
    summary = next(json.loads(line[len("summary-json: "):]) for line in res.stdout.splitlines()
                   if line.startswith("summary-json: "))
    return summary["components"]["lines"]


def test_tuples_for_a_down_peer_fail_at_once(streamd, tmp_path):
    """A SIGSTOPped worker is declared down and its small overflow fills: the
    tuples for it are dropped and their trees failed at once, so the spout
    replays them to the live workers long before the message timeout, and
    after SIGCONT every line is in the sink.

    Tasks (file order, acker last), dealt round-robin over 3 workers:
    lines=1, slow=2-4, sink=5-7, acker=8; worker 2 holds slow 3 and sink 6
    only, so the spout and the acker stay reachable. Every tree stuck in the
    stopped worker was made less than a second before the stop or after it,
    so nothing can time out before stop + 15 s: a spout failure seen earlier
    is an immediate fail. (Tuples lost with the connection that is closed,
    in its kernel buffers, do wait for the timeout: 15 s keeps that short.
    Pending is not limited: the trees in those buffers must not hold the
    spout back, so that it keeps sending to the stopped worker; the
    overflow is small, yet big enough that acks to the live workers, which
    may overshoot it twice rather than wait, are not dropped.)"""
    nlines, pending, timeout = 6000, 6000, 15
    topo, sink = three_worker_flow(tmp_path, "downfail", nlines,
                                   {"topology.message.timeout.secs": timeout, "topology.max.spout.pending": pending,
                                    "worker.transfer.max.buffered.bytes": 65536}, delay_ms=1, sink_tasks=3)
    proc = streamd.start(topo)
    with worker_2_stopped(streamd, proc, sink):
        stopped = time.monotonic()
        wait_declared_down(streamd, proc)
        before = sink_lines(sink)
        wait_fails_before_timeout(streamd, proc, stopped, timeout, 3)
        assert sink_lines(sink) > before, "nothing reached the sink while worker 2 was stopped"
    spout = drained_with_every_line(streamd, proc, sink, nlines)
    assert spout["failed"] > 0 and spout["failed_final"] == 0, spout


NLINES, TIMEOUT = 3000, 12


def run_with_worker_2_stopped(streamd, tmp_path, name, sink_tasks, while_stopped):
    """A 3-worker flow (lines -> slow x3 at 5 ms a tuple -> sink, one acker,
    acking on, TIMEOUT s message timeout, peer timeout 1 s, overflow large
    enough that no send is dropped for want of room) long enough to outlast
    the stop; tasks are dealt round-robin, so worker 2 runs slow 3, sink 6
    and, with 4 sink tasks, the acker (task 9). Stops worker 2 once lines
    flow, waits for both live workers to declare it down, checks that the
    spout sees failed trees before any could time out, calls
    while_stopped(worker logs), resumes it and lets the topology drain.
    Checks every line reached the sink and every tree was acked; returns the
    resumed worker's log."""
    topo, sink = three_worker_flow(tmp_path, name, NLINES,
                                   {"topology.message.timeout.secs": TIMEOUT, "topology.max.spout.pending": 1000},
                                   delay_ms=5, sink_tasks=sink_tasks, pad=" " + "x" * 200)
    proc = streamd.start(topo)
    with worker_2_stopped(streamd, proc, sink) as victim:
        victim_log = Path(os.readlink(f"/proc/{victim}/fd/1"))
        stopped = time.monotonic()
        wait_declared_down(streamd, proc)
        wait_fails_before_timeout(streamd, proc, stopped, TIMEOUT, 4)
        while_stopped(lambda: streamd.result(proc).worker_logs())
    spout = drained_with_every_line(streamd, proc, sink, NLINES)
    assert spout["failed"] > 0 and spout["failed_final"] == 0 and spout["acked"] == NLINES, spout
    return victim_log.read_text(errors="replace")


def test_overflow_of_a_down_peer_fails_at_once(streamd, tmp_path):
    """Tuples for a SIGSTOPped worker wait in its overflow once the kernel's
    socket buffers took what they could; when it is declared down, and when
    it stays down for the peer timeout (isolated), what the transport holds
    for it is given up and its trees fail at once, through the acker on a
    live worker. After SIGCONT the resumed worker does not take its own
    pause for its peers' silence, and nothing is lost."""
    def held_for_worker_2(logs):
        wait_for(lambda: "worker 2 still down after 1000 ms: isolated" in logs(), 5,
                 what="the stopped worker to be isolated")
        text = logs()
        held = [int(line.split(" tuples ")[0].rsplit(" ", 1)[1]) for line in text.splitlines()
                if "worker 2 is down: " in line or "worker 2 still down after" in line]
        assert held and max(held) > 0, "nothing was held for the stopped worker\n" + text
    resumed = run_with_worker_2_stopped(streamd, tmp_path, "overflowfail", 3, held_for_worker_2)
    assert "our loop stalled" in resumed, resumed[-4000:]
    assert "peer declared down" not in resumed, "the resumed worker blamed its peers for its own pause\n" + resumed[-4000:]


def test_trees_whose_acker_is_down_fail_at_once(streamd, tmp_path):
    """The only acker runs on the SIGSTOPped worker: when it is declared
    down, the spout fails every tree in flight at once (the acker's table is
    out of reach) instead of waiting for the message timeout; after SIGCONT
    the replays complete and nothing is lost."""
    def no_held_fails_needed(logs):
        # every fail came from the notice: tuples held for worker 2 have
        # their acker there and are only given up
        assert "worker 2 is down: " in logs()
    run_with_worker_2_stopped(streamd, tmp_path, "ackerdown", 4, no_held_fails_needed)


def test_tuple_above_the_frame_limit_is_refused_at_its_emit(streamd, tmp_path):
    """A line longer than a frame (worker.transfer.max.frame.bytes) cannot
    cross to another worker: its emit refuses it, logged with its stream,
    and its tree fails at once (not at the message timeout), so the spout
    replays it up to max.retries and then gives up on it. Every other line
    reaches the sink exactly once.

    Tasks dealt round-robin over 2 workers: lines=1 and sink=3 on worker 0,
    slow=2 and the acker=4 on worker 1, so every line crosses twice."""
    nlines, long_at, timeout = 400, {50, 200, 350}, 60
    src = tmp_path / "input.txt"
    src.write_text("".join(("L" * 9000 if i in long_at else f"line {i:04d}") + "\n" for i in range(nlines)))
    sink = tmp_path / "sink.jsonl"
    topo = {
        "name": "oversize",
        "workers": 2,
        "config": {"topology.acker.executors": 1, "topology.message.timeout.secs": timeout,
                   "worker.transfer.max.frame.bytes": 8192},
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src), "max.retries": 2}}],
        "bolts": [
            {"id": "slow", "class": "pass_through", "outputs": ["line"],
             "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "args": {"path": str(sink)},
             "inputs": [{"from": "slow", "grouping": "shuffle"}]},
        ],
    }
    started = time.monotonic()
    res = streamd.run(topo, timeout=timeout)
    assert res.returncode == 1, res.explain()  # lines were given up on (failed_final)
    assert time.monotonic() - started < timeout, "the long lines' trees waited for the message timeout"
    rows = [row["line"] for row in read_jsonl(sink)]
    want = [f"line {i:04d}" for i in range(nlines) if i not in long_at]
    assert sorted(rows) == want, res.explain()
    # the whole logs (worker_logs() keeps each one's last 4,000 characters)
    logs = "".join(p.read_text(errors="replace") for p in Path(res.local_dir).rglob("*.log"))
    refused = logs.count("exceeds the frame limit (worker.transfer.max.frame.bytes); dropped")
    assert refused == 3 * len(long_at), res.explain()  # the first emit and 2 replays of each
    # 16 bytes of header, one anchor (16), the value's type and length (5), the line
    assert "a 9037-byte tuple on stream 'default'" in logs, res.explain()
    summary = next(json.loads(line[len("summary-json: "):]) for line in res.stdout.splitlines()
                   if line.startswith("summary-json: "))
    spout = summary["components"]["lines"]
    assert spout["failed"] == 3 * len(long_at) and spout["failed_final"] == len(long_at), spout
