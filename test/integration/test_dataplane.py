"""The data plane facing a hostile network: a peer that passes the handshake
(it reads the assignment from etcd and the topology file, as a real worker
does) sends forged tuples; each one closes that peer's connection, is logged
with its address, and the worker keeps running with every input line
reaching the sink."""
import json
import subprocess
from pathlib import Path

import pytest

from cluster import Cluster
from conftest import wait_for
from test_cluster import all_workers, flowing_topology, start_cluster, submit, wait_all_lines


@pytest.fixture
def cluster(streamd_bin, tmp_path):
    c = Cluster(streamd_bin, tmp_path)
    c.etcd.start()
    yield c
    try:
        c.assert_no_sanitizer_report()
    finally:
        c.close()


def worker_logs(c):
    return "\n".join(p.read_text(errors="replace") for n in c.nodes for p in sorted(Path(n.local).rglob("*.log")))


def running_flow(c, tmp_path, nlines, name="flow"):
    """One node with two slots, a two-worker topology flowing; returns (topology file, sink, assignment file)."""
    start_cluster(c, masters=1, nodes=1, slots=2)
    path, sink = flowing_topology(tmp_path, nlines, name=name)
    submit(c, path)

    def assignment():
        kv = c.etcd.get_prefix(c.key("assignments/"))
        return json.loads(next(iter(kv.values()))) if kv else None
    wait_for(lambda: assignment() and len(all_workers(c)) == 2, 30, what="two workers running")
    wait_for(lambda: "transport: connected to worker" in worker_logs(c), 30, what="the workers to connect")
    afile = tmp_path / "assignment.json"
    afile.write_text(json.dumps(assignment()))
    return path, sink, afile


def wire_peer(streamd_bin, afile, topo, kind, to=1, claim=0, secs=10):
    exe = Path(streamd_bin).parent / "test" / "unit" / "wire_peer"
    res = subprocess.run([str(exe), str(afile), str(topo), str(to), str(claim), kind, str(secs)],
                         capture_output=True, text=True, timeout=secs + 30)
    return res.stdout.strip(), res.stderr


def test_forged_tuples_close_only_that_connection(cluster, streamd_bin, tmp_path):
    c = cluster
    nlines = 3000
    topo, sink, afile = running_flow(c, tmp_path, nlines)
    pids = all_workers(c)
    reasons = {"ack_init": "__ack_init names another spout task",
               "unsubscribed": "stream not subscribed by the destination's component",
               "fields": "value count differs from the stream's fields"}
    for kind, reason in reasons.items():
        out, err = wire_peer(streamd_bin, afile, topo, kind)
        assert out == "closed", f"{kind}: the worker kept a forging peer's connection ({out} {err})\n" + c.all_output()
        wait_for(lambda: reason in worker_logs(c), 10, what=f"the rejection of {kind} in the worker log")
        assert all_workers(c) == pids, f"a worker died after a forged {kind}\n" + c.all_output()
    log = worker_logs(c)
    assert "rejecting tuple from 127.0.0.1:" in log
    wait_all_lines(sink, nlines, c, 90)
    assert all_workers(c) == pids
