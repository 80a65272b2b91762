"""Local mode's lifecycle: Ctrl-C stops gracefully (spouts deactivated, tasks
cleaned up, every worker exits on its own) and --duration stops in time."""
import os
import signal
import time

from conftest import read_jsonl, wait_for, worker_pids


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
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z", \
            f"worker {pid} outlived streamd"
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
