"""Local mode's lifecycle: Ctrl-C stops gracefully (spouts deactivated, tasks
cleaned up, every worker exits on its own) and --duration stops in time."""
import os
import signal
import time

from conftest import process_exited, read_jsonl, wait_for, worker_pids


def slow_topology(src, sink):
    return {
        "name": "lifecycle",
        "workers": 2,
        "config": {"topology.max.spout.pending": 20},
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [
            {"id": "slow", "class": "pass_through", "args": {"delay.ms": 2},
             "outputs": ["line"], "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "args": {"path": str(sink)},
             "inputs": [{"from": "slow", "grouping": "shuffle"}]},
        ],
    }


def test_ctrl_c_stops_gracefully(streamd, tmp_path):
    src = tmp_path / "input.txt"
    src.write_text("".join(f"line {i}\n" for i in range(100000)))
    sink = tmp_path / "sink.jsonl"
    proc = streamd.start(slow_topology(src, sink), until_drained=False)
    workers = wait_for(lambda: len(worker_pids(proc.pid)) == 2 and worker_pids(proc.pid), 30,
                       what="two workers")
    wait_for(lambda: sink.exists() and sink.stat().st_size > 1000, 30, what="tuples in the sink")
    os.kill(proc.pid, signal.SIGINT)
    res = streamd.finish(proc, timeout=30)
    assert res.returncode == 0, res.explain()
    for pid in workers:
        assert process_exited(pid), f"worker {pid} outlived streamd"
    logs = res.worker_logs()
    # each worker was asked to stop, drained, and ended on its own (no SIGKILL)
    assert logs.count("stopping (asked by the node)") == 2, logs
    assert logs.count("worker stopped") == 2, logs
    assert "killing it" not in res.stderr, res.explain()
    rows = read_jsonl(sink)  # every line complete JSON
    assert 0 < len(rows) < 100000


def test_duration_stops_in_time(streamd, tmp_path):
    src = tmp_path / "input.txt"
    src.write_text("".join(f"line {i}\n" for i in range(100000)))
    start = time.monotonic()
    res = streamd.run(slow_topology(src, tmp_path / "sink.jsonl"), until_drained=False,
                      extra=["--duration", "3"], timeout=60)
    took = time.monotonic() - start
    assert res.returncode == 0, res.explain()
    assert "duration reached" in res.stderr, res.explain()
    # 3 s, then a graceful stop well inside task.cleanup.timeout.sec
    assert 3 <= took < 3 + 5 + 5, took


def summary(res):
    import json
    for line in res.stdout.splitlines():
        if line.startswith("summary-json: "):
            return json.loads(line[len("summary-json: "):])
    raise AssertionError("no summary-json line\n" + res.explain())


def test_until_drained_waits_for_a_slow_bolt_without_acking(streamd):
    # no acking: nothing is "pending", so draining must look at the queues
    # and at the tuple inside execute()
    topo = {
        "name": "slowdrain",
        "workers": 1,
        "config": {"topology.acker.executors": 0},
        "spouts": [{"id": "gen", "class": "bench_spout", "args": {"ack": False, "limit": 5}}],
        "bolts": [
            {"id": "slow", "class": "pass_through", "args": {"delay.ms": 2500},
             "outputs": ["seq", "payload"], "inputs": [{"from": "gen", "grouping": "shuffle"}]},
            {"id": "sink", "class": "null_sink", "inputs": [{"from": "slow", "grouping": "shuffle"}]},
        ],
    }
    res = streamd.run(topo, timeout=90)
    assert res.returncode == 0, res.explain()
    assert summary(res)["components"]["sink"]["acked"] == 5, res.explain()


def test_until_drained_with_tick_tuples(streamd, tmp_path):
    # ticks keep arriving after the input is done: they must not count as work
    src = tmp_path / "input.txt"
    src.write_text("".join(f"line {i}\n" for i in range(50)))
    topo = slow_topology(src, tmp_path / "sink.jsonl")
    topo["config"]["topology.tick.tuple.freq.secs"] = 1
    res = streamd.run(topo, timeout=60)
    assert res.returncode == 0, res.explain()
    assert len(read_jsonl(tmp_path / "sink.jsonl")) == 50


def test_worker_that_cannot_start_ends_the_run(streamd):
    topo = {
        "name": "cannotstart",
        "workers": 1,
        "spouts": [{"id": "gen", "class": "bench_spout", "args": {"size": -1}}],
        "bolts": [{"id": "sink", "class": "null_sink", "inputs": [{"from": "gen", "grouping": "shuffle"}]}],
    }
    res = streamd.run(topo, timeout=120)
    assert res.returncode == 1, res.explain()
    assert "keeps exiting before its first heartbeat" in res.stderr, res.explain()


def test_stopped_node_does_not_freeze_workers(streamd, tmp_path):
    """SIGSTOP the process that runs the node while two workers move tuples
    between them: heartbeats every 5 ms fill the control socket within a
    second, and the workers keep only the latest one (they say so) while
    tuples keep reaching the sink. After SIGCONT every line arrives."""
    nlines = 6000
    src = tmp_path / "input.txt"
    src.write_text("".join(f"line {i}\n" for i in range(nlines)))
    sink = tmp_path / "sink.jsonl"
    topo = slow_topology(src, sink)
    topo["config"]["topology.max.spout.pending"] = 50
    for b in topo["bolts"]:
        b["parallelism"] = 2  # shuffled over both workers: most tuples cross the wire
    proc = streamd.start(topo, conf={"worker.heartbeat.interval.ms": 5})
    wait_for(lambda: len(read_jsonl(sink)) > 200, 30, what="tuples in the sink")

    def logs():
        return [p.read_text(errors="replace") for p in streamd.local_dir.rglob("worker-*.log")]
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: sum("not reading the control channel" in t for t in logs()) == 2, 15,
                 what="both workers to notice the node stopped reading")
        before = len(read_jsonl(sink))
        time.sleep(1.5)
        during = len(read_jsonl(sink))
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert during > before, f"the workers froze with their node ({before} -> {during})"
    res = streamd.finish(proc, timeout=60)
    assert res.returncode == 0, res.explain()
    assert len(read_jsonl(sink)) == nlines, res.explain()
    assert "killing it" not in res.stderr, res.explain()
    # once the node read again, each worker said so
    assert sum("reads the control channel again" in t for t in logs()) == 2, res.explain()
