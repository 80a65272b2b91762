"""The graceful stop sequence: on Ctrl-C every task's cleanup runs (a bolt's
cleanup writes a marker) and every line acked by the spout is in the sink;
a bolt whose cleanup never returns does not keep its worker alive beyond
task.cleanup.timeout.sec plus 2 s."""
import json
import os
import signal
import time

from conftest import process_exited, read_jsonl, wait_for, worker_pids


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
        return all(process_exited(p) for p in workers)
    wait_for(gone, timeout_secs + 10, interval=0.05, what="the workers gone")
    took = time.monotonic() - t0
    assert took <= timeout_secs + 2, f"workers gone after {took:.1f} s"
    res = streamd.finish(proc, timeout=30)
    assert marker.exists(), res.explain()  # the cleanup did start
    assert "did not finish their cleanup in time" in res.worker_logs(), res.explain()


def test_ctrl_c_then_rerun_covers_every_line_with_a_durable_position(streamd, tmp_path):
    """file_lines with position.file: Ctrl-C mid-stream, run again until
    drained: the two runs' sinks together hold every input line, and the
    second run resumed (it did not read the whole file again)."""
    n = 6000
    src = tmp_path / "input.txt"
    src.write_text("".join(f"line {i}\n" for i in range(n)))
    pos = tmp_path / "lines.pos"
    sinks = [tmp_path / "sink1.jsonl", tmp_path / "sink2.jsonl"]

    def topo(sink):
        t = marker_topology(src, sink, tmp_path / "cleanup.marker")
        t["spouts"][0]["args"].update({"position.file": str(pos), "position.interval.ms": 200})
        return t
    proc = streamd.start(topo(sinks[0]), until_drained=False)
    wait_for(lambda: sinks[0].exists() and sinks[0].stat().st_size > 20000, 30, what="tuples in the sink")
    os.kill(proc.pid, signal.SIGINT)
    res = streamd.finish(proc, timeout=60)
    assert res.returncode == 0, res.explain()
    first = {r["line"] for r in read_jsonl(sinks[0])}
    off, line_no = (int(x) for x in pos.read_text().split())
    assert 0 < off < src.stat().st_size and 0 < line_no < n, (off, line_no)
    below = {f"line {i}" for i in range(line_no)}
    assert below <= first, "the position passed lines that never reached the sink"
    res = streamd.run(topo(sinks[1]), timeout=120)
    assert res.returncode == 0, res.explain()
    assert "resuming at byte" in res.worker_logs(), res.explain()
    second = [r["line"] for r in read_jsonl(sinks[1])]
    want = {f"line {i}" for i in range(n)}
    missing = want - first - set(second)
    assert not missing, f"{len(missing)} lines lost, e.g. {sorted(missing)[:3]}"
    assert len(second) < n, "the second run read the whole file again"
    assert pos.read_text().split() == [str(src.stat().st_size), str(n)]
