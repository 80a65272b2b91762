"""Multi-lang components (Storm's multi-lang protocol over a child's stdin and
stdout): the shipped word count with its split step in Python must count
exactly what the all-C word count counts."""
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import SENTENCES, TOPOLOGIES, read_jsonl, split_words, wait_for

PYTHON = "/usr/bin/python3"


def final_counts(sink):
    final = {}
    for row in read_jsonl(sink):
        assert set(row) == {"word", "count"}, row
        final[row["word"]] = max(final.get(row["word"], 0), row["count"])
    return final


def shipped(name, sink):
    """A shipped topology's text, reading the sample text and writing sink."""
    text = (TOPOLOGIES / name).read_text()
    assert "{path: data/sentences.txt}" in text
    text = text.replace("{path: data/sentences.txt}", f"{{path: {SENTENCES}}}")
    text = text.replace("resources: multilang", f"resources: {TOPOLOGIES / 'multilang'}")
    text = text.replace("/tmp/streamd-wordcount-python.jsonl", str(sink))
    text = text.replace("/tmp/streamd-wordcount.jsonl", str(sink))
    lines = [ln for ln in text.splitlines() if not ln.startswith("files:")]
    return "\n".join(lines) + "\n"


def test_python_split_counts_as_c(streamd, tmp_path):
    py_text = shipped("wordcount-python.yaml", tmp_path / "py.jsonl")
    assert f"command: [{PYTHON}, split_words.py]" in py_text
    res = streamd.run(streamd.write(py_text, "py.yaml"), timeout=180)
    assert res.returncode == 0, res.explain()
    c_res = streamd.run(streamd.write(shipped("wordcount.yaml", tmp_path / "c.jsonl"), "c.yaml"), timeout=180)
    assert c_res.returncode == 0, c_res.explain()

    py, c = final_counts(tmp_path / "py.jsonl"), final_counts(tmp_path / "c.jsonl")
    expected = Counter()
    for line in SENTENCES.read_text(encoding="utf-8").split("\n"):
        expected.update(split_words(line))
    assert len(expected) > 50
    assert c == dict(expected), "the all-C word count itself is off"
    diff = {w: (py.get(w), c.get(w)) for w in set(py) | set(c) if py.get(w) != c.get(w)}
    assert not diff, f"(python, C) counts differ for {len(diff)} words, e.g. {list(diff.items())[:10]}"


# ---- the protocol, spoken message by message by a child of the suite --------

HERE = Path(__file__).resolve().parent / "multilang"
NLINES = 300


def proto_topology(tmp_path, mode=None, at=0, timeout_secs=30, parallelism=2, tick_secs=0):
    src = tmp_path / "input.txt"
    src.write_text("".join(f"line {i:04d}\n" for i in range(NLINES)))
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    cmd = [PYTHON, str(HERE / "proto_bolt.py"), str(tmp_path / "report.jsonl"), str(state)]
    if mode:
        cmd += [mode, str(at)]
    return {
        "name": "proto",
        "workers": 1,
        "config": {
            "topology.acker.executors": 1,
            "topology.message.timeout.secs": 10,
            "topology.max.spout.pending": 20,
            "topology.subprocess.timeout.secs": timeout_secs,
            "topology.tick.tuple.freq.secs": tick_secs,
        },
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [
            {"id": "proto", "command": cmd, "parallelism": parallelism,
             "outputs": {"default": ["line"], "lens": {"fields": ["line", "n"], "direct": True}},
             "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "args": {"path": str(tmp_path / "sink.jsonl")},
             "inputs": [{"from": "proto", "grouping": "shuffle"}]},
            {"id": "direct", "class": "file_sink", "parallelism": 2,
             "args": {"path": str(tmp_path / "direct.jsonl"), "task_field": True},
             "inputs": [{"from": "proto", "stream": "lens", "grouping": "direct"}]},
        ],
    }


def report(tmp_path):
    return read_jsonl(tmp_path / "report.jsonl")


def assert_all_lines(tmp_path):
    want = {f"line {i:04d}" for i in range(NLINES)}
    got = {row["line"] for row in read_jsonl(tmp_path / "sink.jsonl")}
    assert not want - got, f"{len(want - got)} lines lost, e.g. {sorted(want - got)[:5]}"
    assert got <= want
    direct = read_jsonl(tmp_path / "direct.jsonl")
    assert {row["line"] for row in direct} >= want
    assert all(row["n"] == len(row["line"]) for row in direct)
    return got


def worker_log(res):
    return res.worker_logs() + res.stdout + res.stderr


def test_protocol_message_by_message(streamd, tmp_path):
    res = streamd.run(proto_topology(tmp_path, "ticks", tick_secs=1), timeout=120)
    assert res.returncode == 0, res.explain()
    assert_all_lines(tmp_path)
    rows = report(tmp_path)
    assert not [r for r in rows if r["kind"] == "violation"], [r for r in rows if r["kind"] == "violation"]
    hs = [r for r in rows if r["kind"] == "handshake"]
    assert len(hs) == 2 and all(r["pidfile"] for r in hs)
    assert sorted(r["taskid"] for r in hs) == [2, 3] and {r["component"] for r in hs} == {"proto"}
    assert hs[0]["outputs"] == {"default": ["line"], "lens": ["line", "n"]}
    assert hs[0]["inputs"] == {"lines": {"default": {"type": "shuffle"}}}
    assert hs[0]["timeout"] == 30 and hs[0]["direct_tasks"] == [5, 6]
    # the every-50th inputs are acked late: streamd asked with a heartbeat
    assert [r for r in rows if r["kind"] == "heartbeat"]
    failed = [r["line"] for r in rows if r["kind"] == "failed"]
    # every line ending in 7 failed (once per child that saw it), replayed, then in the sink
    assert set(failed) == {f"line {i:04d}" for i in range(NLINES) if i % 10 == 7}
    ticks = [r for r in rows if r["kind"] == "tick"]
    assert ticks and all(r["comp"] == "__system" and r["id"].startswith("tick-") for r in ticks), ticks
    # both direct sink tasks got lines: the task ids were honoured
    assert {row["__task"] for row in read_jsonl(tmp_path / "direct.jsonl")} == {5, 6}
    log = worker_log(res)
    for level in (2, 3, 4):  # 0 and 1 (trace, debug) are below the default log.level
        assert f"proto_bolt log level {level}" in log
    assert "proto_bolt log level 1" not in log
    assert "proto_bolt reports an error" in log
    assert "restarting it" not in log  # nothing here is a reason to restart the child


@pytest.mark.parametrize("mode,expect", [
    ("die", "the child exited"),
    ("badjson", "not JSON"),
    ("unknown", "unknown command 'frobnicate'"),
    ("badack", "ack for an unknown tuple id"),
])
def test_protocol_abuse_restarts_the_child(streamd, tmp_path, mode, expect):
    res = streamd.run(proto_topology(tmp_path, mode, at=40, parallelism=1), timeout=120)
    assert res.returncode == 0, res.explain()
    log = worker_log(res)
    assert expect in log and "restarting it" in log, log[-3000:]
    assert "0 restart(s)" in res.stdout  # the worker itself did not crash
    rows = report(tmp_path)
    assert len([r for r in rows if r["kind"] == "handshake"]) == 2
    assert_all_lines(tmp_path)


def test_message_end_line_in_separate_writes(streamd, tmp_path):
    """A child that writes a message, its newline, "end" and the last newline
    in separate writes (Storm's storm.py under Python 2 does, with print)
    is read correctly: no timeout, no restart, every line through."""
    res = streamd.run(proto_topology(tmp_path, "pieces", at=0, timeout_secs=5, parallelism=1), timeout=120)
    assert res.returncode == 0, res.explain()
    log = worker_log(res)
    assert "restarting it" not in log, log[-3000:]
    rows = report(tmp_path)
    assert len([r for r in rows if r["kind"] == "handshake"]) == 1
    assert not [r for r in rows if r["kind"] == "violation"]
    assert_all_lines(tmp_path)


def test_hung_child_detected_within_timeout(streamd, tmp_path):
    res = streamd.run(proto_topology(tmp_path, "hang", at=40, timeout_secs=2, parallelism=1), timeout=120)
    assert res.returncode == 0, res.explain()
    assert "no answer within topology.subprocess.timeout.secs" in worker_log(res)
    rows = report(tmp_path)
    hung = next(r for r in rows if r["kind"] == "abuse")
    restarted = [r for r in rows if r["kind"] == "handshake" and r["t"] > hung["t"]]
    assert restarted, "no new child after the hang"
    # detected after the 2 s timeout, restarted well before twice that
    assert 1.5 <= restarted[0]["t"] - hung["t"] < 6, restarted[0]["t"] - hung["t"]
    assert_all_lines(tmp_path)


def test_child_hung_while_idle_detected_within_timeout(streamd, tmp_path):
    """The child keeps one input unacked, then hangs at a heartbeat while no
    input flows: the idle heartbeat finds it within the subprocess timeout
    (not at the next input, nor after the message timeout), a new child
    gets the replayed input, and every line reaches the sink."""
    topo = proto_topology(tmp_path, "idlehang", at=40, timeout_secs=2, parallelism=1)
    topo["config"]["topology.message.timeout.secs"] = 120  # a replay must come from the restart
    t0 = time.monotonic()
    res = streamd.run(topo, timeout=120)
    took = time.monotonic() - t0
    assert res.returncode == 0, res.explain()
    assert "no answer within topology.subprocess.timeout.secs" in worker_log(res)
    rows = report(tmp_path)
    hung = next(r for r in rows if r["kind"] == "idle_hang")
    assert len(hung["held"]) == 1, hung
    restarted = [r for r in rows if r["kind"] == "handshake" and r["t"] > hung["t"]]
    assert restarted, "no new child after the hang"
    assert 1.5 <= restarted[0]["t"] - hung["t"] < 6, restarted[0]["t"] - hung["t"]
    assert took < 60, f"the run took {took:.0f} s: the held input waited for the message timeout"
    assert_all_lines(tmp_path)


def test_spout_that_ignores_activate_and_deactivate(streamd, tmp_path):
    """A spout child that never answers activate or deactivate (Storm's
    storm.js does not) is not failed for it: after a short grace it is not
    sent them again, every record is acked, and Ctrl-C stops the run
    without waiting for an answer that never comes."""
    n = 100
    rep = tmp_path / "report.jsonl"
    topo = {
        "name": "quiet",
        "config": {"topology.acker.executors": 1, "topology.subprocess.timeout.secs": 30},
        "spouts": [{"id": "records", "command": [PYTHON, str(HERE / "quiet_spout.py"), str(n), str(rep)],
                    "outputs": {"default": ["rec"]}}],
        "bolts": [{"id": "sink", "class": "file_sink", "args": {"path": str(tmp_path / "sink.jsonl")},
                   "inputs": [{"from": "records", "grouping": "shuffle"}]}],
    }
    t0 = time.monotonic()
    proc = streamd.start(topo, until_drained=False)
    wait_for(lambda: [r for r in read_jsonl(rep) if r["kind"] == "done"] or proc.poll() is not None, 20,
             interval=0.2, what="every record acked")
    assert proc.poll() is None, streamd.result(proc).explain()
    assert time.monotonic() - t0 < 15, "the spout waited for the subprocess timeout"
    os.kill(proc.pid, signal.SIGINT)
    res = streamd.finish(proc, timeout=30)
    assert res.returncode == 0, res.explain()
    log = worker_log(res)
    assert "did not answer 'activate'" in log, log[-3000:]
    assert "restarting it" not in log and "did not finish their cleanup" not in log, log[-3000:]
    commands = [r["command"] for r in read_jsonl(rep) if r["kind"] == "command"]
    assert commands.count("activate") == 1 and "deactivate" not in commands, commands
    assert {r["rec"] for r in read_jsonl(tmp_path / "sink.jsonl")} == {f"rec {i}" for i in range(n)}


# ---- a spout and a bolt written with the project's Python module -------------

def py_topology(tmp_path, n, rep, spout_extra=()):
    return {
        "name": "pyboth",
        "workers": 2,
        "config": {"topology.acker.executors": 1, "topology.message.timeout.secs": 10,
                   "topology.max.spout.pending": 50},
        "spouts": [{"id": "records", "command": [PYTHON, str(HERE / "py_spout.py"), str(n), str(rep)]
                    + list(spout_extra),
                    "outputs": {"default": ["rec"], "odd": ["rec", "n"]}}],
        "bolts": [
            {"id": "work", "command": [PYTHON, "py_bolt.py", str(rep)], "resources": str(HERE),
             "parallelism": 1,
             "outputs": {"default": ["rec"], "direct": {"fields": ["rec", "task"], "direct": True}},
             "inputs": [{"from": "records", "grouping": "shuffle"},
                        {"from": "records", "stream": "odd", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "args": {"path": str(tmp_path / "sink.jsonl")},
             "inputs": [{"from": "work", "grouping": "shuffle"}]},
            {"id": "direct", "class": "file_sink", "parallelism": 2,
             "args": {"path": str(tmp_path / "direct.jsonl"), "task_field": True},
             "inputs": [{"from": "work", "stream": "direct", "grouping": "direct"}]},
        ],
    }


def test_python_spout_and_bolt_replay(streamd, tmp_path):
    n = 400
    rep = tmp_path / "report.jsonl"
    proc = streamd.start(py_topology(tmp_path, n, rep), until_drained=False)
    done = wait_for(lambda: [r for r in read_jsonl(rep) if r["kind"] == "done"] or proc.poll() is not None, 90,
                    interval=0.2, what="every record acked by the spout")
    assert proc.poll() is None, streamd.result(proc).explain()
    os.kill(proc.pid, signal.SIGINT)
    res = streamd.finish(proc, timeout=60)
    want = {"rec %04d" % i for i in range(n)}
    got = {row["rec"] for row in read_jsonl(tmp_path / "sink.jsonl")}
    assert got == want, f"lost {sorted(want - got)[:5]}"
    direct = read_jsonl(tmp_path / "direct.jsonl")
    assert {r["rec"] for r in direct} == want
    assert all(r["task"] == r["__task"] for r in direct)  # each went to the task it was sent to
    rows = read_jsonl(rep)
    failed = [r for r in rows if r["kind"] == "failed"]
    assert {r["rec"] for r in failed} == {"rec %04d" % i for i in range(0, n, 5)}
    assert {r["stream"] for r in failed} == {"default", "odd"}
    assert done[0]["failed"] == len(failed)  # each failure came back to the spout, which replayed it
    ids = [r["ids"] for r in rows if r["kind"] == "task_ids"]
    assert ids == [[3]], ids  # tasks: records 1, work 2, sink 3, direct 4-5, acker 6
    assert "restarting it" not in res.worker_logs()


def test_python_spout_that_dies_is_restarted(streamd, tmp_path):
    """The spout's child exits mid-stream: the error is logged, a new child
    starts (this one starts over from record 0: it keeps no state), the
    worker goes on, and every record reaches the sink."""
    n = 300
    rep = tmp_path / "report.jsonl"
    topo = py_topology(tmp_path, n, rep, [str(150), str(tmp_path / "died")])
    proc = streamd.start(topo, until_drained=False)
    wait_for(lambda: [r for r in read_jsonl(rep) if r["kind"] == "done"] or proc.poll() is not None, 90,
             interval=0.2, what="every record acked by the new spout child")
    assert proc.poll() is None, streamd.result(proc).explain()
    os.kill(proc.pid, signal.SIGINT)
    res = streamd.finish(proc, timeout=60)
    log = worker_log(res)
    assert "multi-lang spout 'records'" in log and "the child exited" in log, log[-3000:]
    rows = read_jsonl(rep)
    assert [r["kind"] for r in rows].count("start") == 2 and [r for r in rows if r["kind"] == "dying"]
    assert "0 restart(s)" in res.stdout
    want = {"rec %04d" % i for i in range(n)}
    got = {row["rec"] for row in read_jsonl(tmp_path / "sink.jsonl")}
    assert got == want, f"lost {sorted(want - got)[:5]}"


def test_bytes_that_are_not_utf8_reach_the_child(streamd, tmp_path):
    src = tmp_path / "input.txt"
    src.write_bytes(b"caf\xe9 ok\n" * 20 + b"plain words\n")
    topo = {
        "name": "latin1",
        "config": {"topology.acker.executors": 1},
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [
            {"id": "split", "command": [PYTHON, "split_words.py"], "resources": str(TOPOLOGIES / "multilang"),
             "outputs": ["word"], "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "args": {"path": str(tmp_path / "sink.jsonl")},
             "inputs": [{"from": "split", "grouping": "shuffle"}]},
        ],
    }
    res = streamd.run(topo, timeout=120)
    assert res.returncode == 0, res.explain()
    assert "restarting it" not in worker_log(res)
    words = Counter(row["word"] for row in read_jsonl(tmp_path / "sink.jsonl"))
    assert words == {"caf\ufffd": 20, "ok": 20, "plain": 1, "words": 1}, words
