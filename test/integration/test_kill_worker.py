"""Worker crash: kill -9 one of two workers mid-run. The node must start a new
worker, and acking must replay whatever the dead one lost: at the end every
input line is in the sink (file_sink acks only after write(2), so nothing
acked can be lost with the process)."""
import os
import signal
from pathlib import Path

import pytest

from conftest import read_jsonl, wait_for, worker_pids

NLINES = 4000


def sink_lines(path):
    # counts complete lines only: the sink may be mid-append while we look
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("shared_memory", [True, False], ids=["ring", "tcp"])
def test_kill_one_worker(streamd, tmp_path, shared_memory):
    src = tmp_path / "input.txt"
    src.write_text("".join(f"record {i:05d} of the kill test\n" for i in range(NLINES)))
    sink = tmp_path / "sink.jsonl"
    topo = {
        "name": "killworker",
        "workers": 2,
        "config": {
            "topology.acker.executors": 2,
            "topology.message.timeout.secs": 3,
            "topology.max.spout.pending": 50,
            # the two workers share a host: their batches go through
            # shared-memory rings unless this is off
            "worker.transfer.shared.memory": shared_memory,
        },
        "spouts": [{"id": "lines", "class": "file_lines", "parallelism": 2, "args": {"path": str(src)}}],
        "bolts": [
            # 2 ms a tuple on two tasks: about 4 s of work, time enough to kill
            {"id": "slow", "class": "pass_through", "parallelism": 2, "args": {"delay.ms": 2},
             "outputs": ["line"], "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "parallelism": 2, "args": {"path": str(sink)},
             "inputs": [{"from": "slow", "grouping": "shuffle"}]},
        ],
    }
    proc = streamd.start(topo)
    first = wait_for(lambda: len(worker_pids(proc.pid)) == 2 and worker_pids(proc.pid), 30,
                     what="two worker processes")
    # kill once tuples flow, well before the input is done
    wait_for(lambda: sink_lines(sink) >= 100 or proc.poll() is not None, 60, interval=0.05,
             what="the first 100 lines in the sink")
    assert proc.poll() is None, "streamd ended before the kill:\n" + streamd.result(proc).explain()
    assert sink_lines(sink) < NLINES, "the run was too fast to kill a worker mid-run"
    victim = first[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: any(p not in first for p in worker_pids(proc.pid)), 30, interval=0.05,
             what="a restarted worker")

    res = streamd.finish(proc, timeout=180)
    assert res.returncode == 0, res.explain()
    got = {row["line"] for row in read_jsonl(sink)}
    missing = [f"record {i:05d} of the kill test" for i in range(NLINES)
               if f"record {i:05d} of the kill test" not in got]
    assert not missing, f"{len(missing)} lines lost, e.g. {missing[:3]}"
    logs = "".join(p.read_text(errors="replace") for p in Path(res.local_dir).rglob("*.log"))
    rings = logs.count("sends us its batches through shared memory")
    # each way of the first pair and of the pair with the restarted worker
    assert (rings >= 4) if shared_memory else (rings == 0), res.explain()
