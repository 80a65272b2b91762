"""Worker isolation in cluster mode (real etcd, master, node): a spout that
cannot open its input shows its reason, restarts and last exit in
`streamd status NAME`."""
import pytest

from cluster import Cluster, topology_file
from conftest import wait_for


@pytest.fixture
def cluster(streamd_bin, tmp_path):
    c = Cluster(streamd_bin, tmp_path)
    c.etcd.start()
    yield c
    try:
        c.assert_no_sanitizer_report()
    finally:
        c.close()


def start_cluster(c, nodes=1, slots=2, node_extra=()):
    c.add_master()
    for _ in range(nodes):
        c.add_node(slots=slots, extra=node_extra)
    wait_for(lambda: c.leader() is not None, 20, what="a leader")
    wait_for(lambda: len(c.etcd.get_prefix(c.key("nodes/"))) == nodes, 20, what=f"{nodes} nodes registered")


def test_open_failure_in_status(cluster, tmp_path):
    c = cluster
    start_cluster(c, node_extra=("-c", "supervisor.worker.restart.delay.ms=100"))
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
