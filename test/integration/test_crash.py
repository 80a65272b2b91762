"""Crash handling that reaches the user: a spout that cannot open its input
restarts a few times, then the run ends non-zero (--until-drained) with the
reason (the component's own error line) on the console; a worker that hangs
after it has heartbeated is killed after worker.heartbeat.timeout.secs, not
that plus the start timeout."""
import os
import signal
import time

from conftest import wait_for, worker_pids


def test_spout_open_failure_reaches_the_console(streamd, tmp_path):
    missing = tmp_path / "no-such-input.txt"
    topo = {
        "name": "openfail",
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(missing)}}],
        "bolts": [{"id": "sink", "class": "file_sink", "args": {"path": str(tmp_path / "out.jsonl")},
                   "inputs": [{"from": "lines", "grouping": "shuffle"}]}],
    }
    res = streamd.run(topo, timeout=120, conf={"supervisor.worker.restart.delay.ms": 50})
    assert res.returncode != 0, res.explain()
    assert "keeps failing" in res.stderr, res.explain()
    want = f"file_lines: cannot open {missing}: No such file or directory"
    assert want in res.stderr, res.explain()
    # shown once per failing worker in the final report, not only as it happened
    tail = res.stderr[res.stderr.index("keeps failing"):]
    assert want in tail, res.explain()


def test_hung_worker_killed_after_heartbeat_timeout(streamd, tmp_path):
    src = tmp_path / "input.txt"
    src.write_text("".join(f"hang {i}\n" for i in range(200000)))
    topo = {
        "name": "hang",
        "config": {"worker.heartbeat.timeout.secs": 3},
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [{"id": "slow", "class": "pass_through", "args": {"delay.ms": 1}, "outputs": ["line"],
                   "inputs": [{"from": "lines", "grouping": "shuffle"}]},
                  {"id": "sink", "class": "file_sink", "args": {"path": str(tmp_path / "out.jsonl")},
                   "inputs": [{"from": "slow", "grouping": "shuffle"}]}],
    }
    # the default start timeout (30 s) must not be added to the 3 s
    proc = streamd.start(topo, until_drained=False)
    pid = wait_for(lambda: worker_pids(proc.pid) and worker_pids(proc.pid)[0], 30, what="a worker")
    log = streamd.local_dir / "logs"
    out = tmp_path / "out.jsonl"
    wait_for(lambda: out.exists() and out.stat().st_size > 0, 30, what="tuples flowing")
    time.sleep(1.5)  # heartbeats go every second: the node has heard from it
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    wait_for(lambda: pid not in worker_pids(proc.pid), 20, interval=0.1, what="the hung worker killed")
    took = time.monotonic() - stopped
    assert took < 3 + 2.5, f"killed after {took:.1f} s"
    wait_for(lambda: worker_pids(proc.pid), 20, what="a restarted worker")
    proc.send_signal(signal.SIGINT)
    res = streamd.finish(proc, timeout=60)
    assert "killed: hung: no heartbeat" in res.stderr or "no heartbeat for" in res.stderr, res.explain()
    assert log.exists()
