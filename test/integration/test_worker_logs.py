"""Worker logs: the worker's own lines, tagged, go to
<local dir>/logs/<topology-id>/worker-<port>.log whatever
worker.stdout.redirect says; what components write to stdout/stderr goes to
that log (log), to worker-<port>.out (file) or nowhere (null)."""
import pytest

from conftest import read_jsonl

NLINES = 50


def print_topology(tmp_path):
    src = tmp_path / "input.txt"
    src.write_text("".join(f"text {i}\n" for i in range(NLINES)))
    return {
        "name": "printer",
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [
            {"id": "say", "class": "pass_through", "args": {"print": True}, "outputs": ["line"],
             "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "args": {"path": str(tmp_path / "sink.jsonl")},
             "inputs": [{"from": "say", "grouping": "shuffle"}]},
        ],
    }


def files(local_dir, suffix):
    return sorted((local_dir / "logs").rglob(f"worker-*{suffix}"))


@pytest.mark.parametrize("mode", ["log", "file", "null"])
def test_stdout_redirect(streamd, tmp_path, mode):
    res = streamd.run(print_topology(tmp_path), conf={"worker.stdout.redirect": mode})
    assert res.returncode == 0, res.explain()
    assert len(read_jsonl(tmp_path / "sink.jsonl")) == NLINES
    [log] = files(streamd.local_dir, ".log")
    text = log.read_text()
    # the worker's own lines are in its log in every mode, with their tags
    assert "worker started" in text
    assert " INFO [cluster=default host=" in text and "topology=printer-" in text and "worker=127.0.0.1:" in text
    outs = files(streamd.local_dir, ".out")
    printed = [f"stdout: text {i}" for i in range(NLINES)]
    if mode == "log":
        assert all(p in text for p in printed) and "stderr: task" in text
        assert not outs
    elif mode == "file":
        [out] = outs
        assert out.name == log.name.replace(".log", ".out")
        otext = out.read_text()
        assert all(p in otext for p in printed) and "stderr: task" in otext
        assert "stdout:" not in text and "stderr: task" not in text
    else:
        assert "stdout:" not in text and "stderr: task" not in text
        assert not outs


def test_log_level_changes_at_run_time(streamd, tmp_path):
    import os
    import signal

    from conftest import wait_for, worker_pids
    src = tmp_path / "input.txt"
    src.write_text("".join(f"text {i}\n" for i in range(100000)))
    topo = {
        "name": "levels",
        "config": {"log.level": "info"},
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [{"id": "slow", "class": "pass_through", "args": {"delay.ms": 1}, "outputs": ["line"],
                   "inputs": [{"from": "lines", "grouping": "shuffle"}]}],
    }
    proc = streamd.start(topo, until_drained=False)
    pid = wait_for(lambda: worker_pids(proc.pid) and worker_pids(proc.pid)[0], 30, what="a worker")
    log = wait_for(lambda: files(streamd.local_dir, ".log") and files(streamd.local_dir, ".log")[0], 10,
                   what="the worker log")
    wait_for(lambda: "worker started" in log.read_text(), 20, what="the worker to start")
    assert " DEBUG [" not in log.read_text()
    os.kill(proc.pid, signal.SIGUSR1)
    wait_for(lambda: " DEBUG [" in log.read_text() and "log level now debug" in log.read_text(), 20,
             what="debug lines in the worker log")
    os.kill(proc.pid, signal.SIGUSR2)
    wait_for(lambda: "log level now info" in log.read_text(), 20, what="the level back to info")
    assert worker_pids(proc.pid) == [pid], "the worker was restarted"
    proc.send_signal(signal.SIGINT)
    res = streamd.finish(proc, timeout=60)
    assert res.returncode == 0, res.explain()
    assert "log level now debug" in res.stderr


def test_json_log_lines(streamd, tmp_path):
    import json
    topo = print_topology(tmp_path)
    topo["bolts"][0]["args"] = {}
    res = streamd.run(topo, conf={"log.format": "json"})
    assert res.returncode == 0, res.explain()
    [log] = files(streamd.local_dir, ".log")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert rows and all({"time", "level", "cluster", "host", "topology", "worker", "msg"} <= r.keys() for r in rows)
    assert any(r["msg"].startswith("worker started") for r in rows)
    # tagged from the moment the worker knows its assignment
    start = next(i for i, r in enumerate(rows) if r["msg"].startswith("worker started"))
    assert all(r["topology"].startswith("printer-") and r["worker"].startswith("127.0.0.1:") for r in rows[start:])
    # streamd's own lines on stderr are JSON too
    own = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    assert own and all(r["worker"] == "local" for r in own)
    assert not [line for line in res.stderr.splitlines() if line and not line.startswith("{")]


def test_rotation_keeps_the_configured_files(streamd, tmp_path):
    src = tmp_path / "input.txt"
    src.write_text("".join(f"a line of text number {i:06d}\n" for i in range(4000)))
    topo = {
        "name": "rotate",
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [{"id": "say", "class": "pass_through", "args": {"print": True, "delay.ms": 2}, "outputs": ["line"],
                   "inputs": [{"from": "lines", "grouping": "shuffle"}]}],
    }
    res = streamd.run(topo, conf={"log.rotate.bytes": 8000, "log.rotate.keep": 2})
    assert res.returncode == 0, res.explain()
    [log] = files(streamd.local_dir, ".log")
    rotated = sorted(p.name for p in log.parent.iterdir() if p.name.startswith(log.name + "."))
    assert rotated == [log.name + ".1", log.name + ".2"], rotated
    for p in [log] + [log.parent / r for r in rotated]:
        # checked at least every second: at most about a second of output past the limit
        assert p.stat().st_size < 8000 + 40000, (p, p.stat().st_size)
    # the newest rotated file continues where the next older one stopped
    assert "stdout: a line of text number" in (log.parent / (log.name + ".1")).read_text()
