"""Worker isolation in cluster mode (real etcd, master, node): a spout that
cannot open its input shows its reason, restarts and last exit in
`streamd status NAME`."""

import json
import os

import pytest

from cluster import cluster, sink_lines, start_cluster, topology_file, workers_of  # noqa: F401 (fixture)
from conftest import wait_for


def test_open_failure_in_status(cluster, tmp_path):
    c = cluster
    start_cluster(c, masters=1, nodes=1, node_extra=("-c", "supervisor.worker.restart.delay.ms=100"))
    missing = tmp_path / "missing-input.txt"
    topo = {
        "name": "broken",
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(missing)}}],
        "bolts": [{"id": "sink", "class": "file_sink", "args": {"path": str(tmp_path / "out.jsonl")},
                   "inputs": [{"from": "lines", "grouping": "shuffle"}]}],
    }
    res = c.client("submit", str(topology_file(tmp_path, topo)))
    assert res.returncode == 0, res.stdout + res.stderr
    want = f"file_lines: cannot open {missing}: No such file or directory"

    def shown():
        r = c.client("status", "broken")
        return r.returncode == 0 and want in r.stdout and "last exit: status 1" in r.stdout and r.stdout
    out = wait_for(shown, 60, interval=1, what="the error in streamd status")
    assert "restarts" in out
    res = c.client("kill", "broken", "--wait", "0")
    assert res.returncode == 0, res.stdout + res.stderr


def marker_topology(tmp_path, name, workers=2):
    src = tmp_path / "input.txt"
    src.write_text("".join(f"record {i:06d}\n" for i in range(100000)))
    sink, marker = tmp_path / "sink.jsonl", tmp_path / "cleanup.marker"
    topo = {
        "name": name,
        "workers": workers,
        "config": {"topology.acker.executors": workers},
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [
            {"id": "slow", "class": "pass_through", "parallelism": workers,
             "args": {"delay.ms": 2, "cleanup.marker": str(marker)},
             "outputs": ["line"], "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "parallelism": workers, "args": {"path": str(sink)},
             "inputs": [{"from": "slow", "grouping": "shuffle"}]},
        ],
    }
    return topology_file(tmp_path, topo), sink, marker


def test_kill_wait_runs_cleanup(cluster, tmp_path):
    c = cluster
    start_cluster(c, masters=1, nodes=1)
    path, sink, marker = marker_topology(tmp_path, "gkill")
    res = c.client("submit", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    wait_for(lambda: sink_lines(sink) > 200, 60, what="tuples in the sink")
    res = c.client("kill", "gkill", "--wait", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    # deactivated at once: the sink stops growing within the wait
    wait_for(lambda: not workers_of(c.nodes[0]), 30, what="the workers to stop after the wait")
    assert marker.exists(), c.all_output()
    assert len(marker.read_text().split()) == 2, marker.read_text()
    assert "killing it" not in c.nodes[0].text(), c.all_output()


def test_node_stop_runs_cleanup(cluster, tmp_path):
    c = cluster
    start_cluster(c, masters=1, nodes=1)
    path, sink, marker = marker_topology(tmp_path, "gstop")
    res = c.client("submit", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    wait_for(lambda: sink_lines(sink) > 200, 60, what="tuples in the sink")
    workers = workers_of(c.nodes[0])
    assert len(workers) == 2
    c.nodes[0].terminate(timeout=30)
    assert not c.nodes[0].alive()
    assert not workers_of(c.nodes[0]), "workers outlived their node"
    assert len(marker.read_text().split()) == 2, c.all_output()


def test_loglevel_on_a_running_topology(cluster, tmp_path):
    c = cluster
    start_cluster(c, masters=1, nodes=1)
    path, sink, _ = marker_topology(tmp_path, "levels", workers=1)
    res = c.client("submit", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    wait_for(lambda: sink_lines(sink) > 50, 60, what="tuples in the sink")
    [pid] = workers_of(c.nodes[0])
    logs = list(c.nodes[0].local.rglob("worker-*.log"))
    assert len(logs) == 1
    assert " DEBUG [" not in logs[0].read_text()
    res = c.client("loglevel", "levels", "debug")
    assert res.returncode == 0 and "log level debug" in res.stdout, res.stdout + res.stderr
    wait_for(lambda: "log level now debug" in logs[0].read_text(), 30, what="the worker at debug")
    res = c.client("loglevel", "levels", "default")
    assert res.returncode == 0, res.stdout + res.stderr
    wait_for(lambda: "log level now info" in logs[0].read_text(), 30, what="the worker back at info")
    assert workers_of(c.nodes[0]) == [pid], "the worker was restarted"
    res = c.client("loglevel", "levels", "loud")
    assert res.returncode != 0
    res = c.client("kill", "levels", "--wait", "0")
    assert res.returncode == 0, res.stdout + res.stderr


def test_node_log_file_rotated(cluster, tmp_path):
    c = cluster
    log = tmp_path / "node.log"
    start_cluster(c, masters=1, nodes=1, node_extra=("-c", f"log.file={log}", "-c", "log.rotate.bytes=600", "-c", "log.rotate.keep=2"))
    path, sink, _ = marker_topology(tmp_path, "nlog", workers=2)
    res = c.client("submit", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    wait_for(lambda: sink_lines(sink) > 50, 60, what="tuples in the sink")
    res = c.client("kill", "nlog", "--wait", "0")
    assert res.returncode == 0, res.stdout + res.stderr
    wait_for(lambda: not workers_of(c.nodes[0]), 30, what="the workers to stop")
    c.nodes[0].terminate()
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("node.log"))
    assert names == ["node.log", "node.log.1", "node.log.2"], names
    text = "".join((tmp_path / n).read_text() for n in names)
    assert "worker=n0]" in text and "started worker" in text
    assert "started worker" not in c.nodes[0].text()  # not on stderr


def test_kill_wait_then_resubmit_covers_every_line(cluster, tmp_path):
    """file_lines with position.file: `kill --wait` mid-stream, submit again:
    the two runs' sinks together hold every input line."""
    c = cluster
    start_cluster(c, masters=1, nodes=1)
    n = 4000
    src = tmp_path / "input.txt"
    src.write_text("".join(f"record {i:06d}\n" for i in range(n)))
    pos = tmp_path / "lines.pos"

    def submit(sink):
        topo = {
            "name": "resume",
            "workers": 2,
            "config": {"topology.acker.executors": 2},
            "spouts": [{"id": "lines", "class": "file_lines",
                        "args": {"path": str(src), "position.file": str(pos), "position.interval.ms": 200}}],
            "bolts": [
                {"id": "slow", "class": "pass_through", "parallelism": 2, "args": {"delay.ms": 2},
                 "outputs": ["line"], "inputs": [{"from": "lines", "grouping": "shuffle"}]},
                {"id": "sink", "class": "file_sink", "parallelism": 2, "args": {"path": str(sink)},
                 "inputs": [{"from": "slow", "grouping": "shuffle"}]},
            ],
        }
        res = c.client("submit", str(topology_file(tmp_path, topo, name=f"{sink.stem}.yaml")))
        assert res.returncode == 0, res.stdout + res.stderr

    sinks = [tmp_path / "sink1.jsonl", tmp_path / "sink2.jsonl"]
    submit(sinks[0])
    wait_for(lambda: sink_lines(sinks[0]) > 300, 60, what="tuples in the sink")
    res = c.client("kill", "resume", "--wait", "1")
    assert res.returncode == 0, res.stdout + res.stderr
    wait_for(lambda: not workers_of(c.nodes[0]), 30, what="the workers to stop")
    assert 0 < int(pos.read_text().split()[0]) < src.stat().st_size, pos.read_text()
    submit(sinks[1])
    want = {f"record {i:06d}" for i in range(n)}

    def seen():
        return {json.loads(x)["line"] for s in sinks if s.exists() for x in s.read_text().splitlines() if x}
    wait_for(lambda: seen() >= want, 90, interval=0.5, what="every line in one of the sinks")
    assert sink_lines(sinks[1]) < n, "the second run read the whole file again"
    res = c.client("kill", "resume", "--wait", "0")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.isdir("/sys/fs/cgroup/cpu"), reason="needs root and v1 cgroups")
def test_refused_worker_shows_the_reason_in_status(cluster, tmp_path):
    """supervisor.cgroup.required and a cgroup the kernel rejects (a cpu
    quota beyond its maximum): `streamd status` shows why the worker was
    refused as its last exit, not the SIGKILL that ended it."""
    c = cluster
    start_cluster(c, masters=1, nodes=1, node_extra=(
        "-c", "supervisor.cgroup.mode=v1", "-c", "supervisor.cgroup.required=true",
        "-c", "supervisor.worker.restart.delay.ms=100"))
    src = tmp_path / "input.txt"
    src.write_text("a\nb\n")
    topo = {
        "name": "refused",
        "config": {"topology.worker.cpu.cores": 1000000000},
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [{"id": "sink", "class": "file_sink", "args": {"path": str(tmp_path / "out.jsonl")},
                   "inputs": [{"from": "lines", "grouping": "shuffle"}]}],
    }
    res = c.client("submit", str(topology_file(tmp_path, topo)))
    assert res.returncode == 0, res.stdout + res.stderr

    def shown():
        r = c.client("status", "refused")
        return r.returncode == 0 and "last exit: refused: no cgroup (supervisor.cgroup.required)" in r.stdout \
            and r.stdout
    out = wait_for(shown, 60, interval=1, what="the refusal in streamd status")
    assert "signal 9" not in out, out
    res = c.client("kill", "refused", "--wait", "0")
    assert res.returncode == 0, res.stdout + res.stderr
