"""The graceful stop sequence: on Ctrl-C every task's cleanup runs (a bolt's
cleanup writes a marker) and every line acked by the spout is in the sink;
a bolt whose cleanup never returns does not keep its worker alive beyond
task.cleanup.timeout.sec plus 2 s."""
import json
import os
import signal
import time

from conftest import read_jsonl, wait_for, worker_pids


def marker_topology(src, sink, marker, workers=2, hang=False, config=None):
    args = {"delay.ms": 2, "cleanup.marker": str(marker)}
    if hang:
        args["cleanup.hang"] = True
    return {
        "name": "graceful",
        "workers": workers,
        "config": {"topology.acker.executors": workers, **(config or {})},
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [
            {"id": "slow", "class": "pass_through", "parallelism": workers, "args": args,
             "outputs": ["line"], "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "parallelism": workers, "args": {"path": str(sink)},
             "inputs": [{"from": "slow", "grouping": "shuffle"}]},
        ],
    }


def summary(stdout):
    for line in stdout.splitlines():
        if line.startswith("summary-json: "):
            return json.loads(line[len("summary-json: "):])
    raise AssertionError("no summary-json line in:\n" + stdout)


def test_ctrl_c_runs_cleanup_and_loses_nothing_acked(streamd, tmp_path):
    src = tmp_path / "input.txt"
    src.write_text("".join(f"line {i}\n" for i in range(100000)))
    sink, marker = tmp_path / "sink.jsonl", tmp_path / "cleanup.marker"
    proc = streamd.start(marker_topology(src, sink, marker), until_drained=False)
    wait_for(lambda: len(worker_pids(proc.pid)) == 2, 30, what="two workers")
    wait_for(lambda: sink.exists() and sink.stat().st_size > 2000, 30, what="tuples in the sink")
    os.kill(proc.pid, signal.SIGINT)
    res = streamd.finish(proc, timeout=60)
    assert res.returncode == 0, res.explain()
    # every pass_through task ran its cleanup (task ids, one line each)
    assert marker.exists(), res.explain()
    assert len(marker.read_text().split()) == 2, marker.read_text()
    # every tree the spout saw complete was written by the sink first
    acked = summary(res.stdout)["components"]["lines"]["acked"]
    lines = {r["line"] for r in read_jsonl(sink)}
    assert 0 < acked <= len(lines), (acked, len(lines))
    assert lines <= {f"line {i}" for i in range(100000)}


def test_cleanup_that_never_returns_is_cut_off(streamd, tmp_path):
    src = tmp_path / "input.txt"
    src.write_text("".join(f"line {i}\n" for i in range(100000)))
    sink, marker = tmp_path / "sink.jsonl", tmp_path / "cleanup.marker"
    timeout_secs = 2
    proc = streamd.start(marker_topology(src, sink, marker, hang=True,
                                         config={"task.cleanup.timeout.sec": timeout_secs}),
                         until_drained=False)
    workers = wait_for(lambda: len(worker_pids(proc.pid)) == 2 and worker_pids(proc.pid), 30, what="two workers")
    wait_for(lambda: sink.exists() and sink.stat().st_size > 2000, 30, what="tuples in the sink")
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)

    def gone():
        return all(not os.path.exists(f"/proc/{p}") or open(f"/proc/{p}/stat").read().split()[2] == "Z"
                   for p in workers)
    wait_for(gone, timeout_secs + 10, interval=0.05, what="the workers gone")
    took = time.monotonic() - t0
    assert took <= timeout_secs + 2, f"workers gone after {took:.1f} s"
    res = streamd.finish(proc, timeout=30)
    assert marker.exists(), res.explain()  # the cleanup did start
    assert "did not finish their cleanup in time" in res.worker_logs(), res.explain()
