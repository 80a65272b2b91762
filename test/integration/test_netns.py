"""Several hosts: three network namespaces on one bridge (etcd and a master in
the first, a node in each of the others), a topology whose workers span both
nodes; then one node's link is cut at the bridge. The master must move that
node's workers to the other node, and the cut-off node must stop its own
workers before its lease runs out, so that no worker runs twice. Every
input line still reaches the sink (the file system is shared by the
namespaces). Skipped, never failed, where network namespaces are not
permitted."""
import os
import subprocess
import time
import uuid

import pytest

from cluster import ETCD, Proc, _workers_under, sink_lines
from conftest import read_jsonl, to_yaml, wait_for

NET = "10.251.{}.{}"


def sh(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)


def netns_permitted():
    name = "sdprobe" + uuid.uuid4().hex[:6]
    try:
        ok = sh("ip", "netns", "add", name, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
    if ok:
        sh("ip", "netns", "del", name, check=False)
    return ok


class Hosts:
    """sw: a namespace holding the bridge; h1..h3 the hosts, 10.251.X.1..3."""

    def __init__(self):
        tag = uuid.uuid4().hex[:5]
        self.sub = int(tag, 16) % 200 + 20
        self.sw = f"sd{tag}sw"
        self.hosts = [f"sd{tag}h{i}" for i in (1, 2, 3)]
        self.ifs = []

    def ip(self, i):
        return NET.format(self.sub, i + 1)

    def up(self):
        sh("ip", "netns", "add", self.sw)
        sh("ip", "-n", self.sw, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.sw, "link", "set", "br0", "up")
        for i, h in enumerate(self.hosts):
            sh("ip", "netns", "add", h)
            sh("ip", "-n", h, "link", "set", "lo", "up")
            host_if, sw_if = f"v{i}", f"p{i}"
            sh("ip", "-n", h, "link", "add", host_if, "type", "veth", "peer", "name", sw_if, "netns", self.sw)
            sh("ip", "-n", self.sw, "link", "set", sw_if, "master", "br0")
            sh("ip", "-n", self.sw, "link", "set", sw_if, "up")
            sh("ip", "-n", h, "addr", "add", self.ip(i) + "/24", "dev", host_if)
            sh("ip", "-n", h, "link", "set", host_if, "up")
            self.ifs.append(sw_if)

    def cut(self, i):
        sh("ip", "-n", self.sw, "link", "set", self.ifs[i], "down")

    def down(self):
        for h in self.hosts + [self.sw]:
            sh("ip", "netns", "del", h, check=False)

    def exec(self, i):
        return ["ip", "netns", "exec", self.hosts[i]]


@pytest.fixture
def hosts():
    if os.geteuid() != 0 or not netns_permitted():
        pytest.skip("network namespaces are not permitted here (needs root and `ip netns`)")
    h = Hosts()
    try:
        h.up()
    except subprocess.CalledProcessError as e:
        h.down()
        pytest.skip(f"cannot build the test network: {e.stderr.strip()}")
    yield h
    h.down()


def test_cut_node_stops_its_workers(hosts, streamd_bin, tmp_path):
    h = hosts
    procs = []
    etcd_url = f"http://{h.ip(0)}:2379"
    try:
        etcd = Proc("etcd", h.exec(0) + [ETCD, "--name", "n", "--data-dir", str(tmp_path / "etcd"),
                                         "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                                         "--listen-peer-urls", f"http://{h.ip(0)}:2380",
                                         "--initial-advertise-peer-urls", f"http://{h.ip(0)}:2380",
                                         "--initial-cluster", f"n=http://{h.ip(0)}:2380"], tmp_path).start()
        procs.append(etcd)
        common = ["--etcd", etcd_url, "--cluster", "ns", "-c", "log.level=info"]
        ttl = 6
        master = Proc("master", h.exec(0) + [str(streamd_bin), "--role=master", *common, "-c", "master.id=m0",
                                             "-c", f"master.api.listen={h.ip(0)}:6627"], tmp_path).start()
        procs.append(master)
        nodes = []
        for i in (1, 2):
            local = tmp_path / f"node{i}"
            n = Proc(f"node{i}", h.exec(i) + [str(streamd_bin), "--role=node", *common, "--node-id", f"n{i}",
                                              "-c", "supervisor.slots.ports=6700,6701", "-c", f"worker.host={h.ip(i)}",
                                              "-c", f"streamd.local.dir={local}", "-c", f"node.lease.ttl.secs={ttl}"],
                     tmp_path).start()
            n.local = local
            nodes.append(n)
            procs.append(n)

        nlines = 8000
        src = tmp_path / "input.txt"
        src.write_text("".join(f"record {i:06d}\n" for i in range(nlines)))
        sink = tmp_path / "sink.jsonl"
        topo = {
            "name": "spread", "workers": 2,
            "config": {"topology.acker.executors": 2, "topology.message.timeout.secs": 5,
                       "topology.max.spout.pending": 50,
                       # the namespaces share this machine's memory and /proc,
                       # which separate hosts would not: their workers would
                       # pass batches through shared memory around the cut link
                       "worker.transfer.shared.memory": False},
            "spouts": [{"id": "lines", "class": "file_lines", "parallelism": 2, "args": {"path": str(src)}}],
            "bolts": [
                {"id": "slow", "class": "pass_through", "parallelism": 2, "args": {"delay.ms": 2},
                 "outputs": ["line"], "inputs": [{"from": "lines", "grouping": "shuffle"}]},
                {"id": "sink", "class": "file_sink", "parallelism": 2, "args": {"path": str(sink)},
                 "inputs": [{"from": "slow", "grouping": "shuffle"}]},
            ],
        }
        path = tmp_path / "spread.yaml"
        path.write_text(to_yaml(topo) + "\n")

        def nodes_known():
            # the master's own state, not etcd's: a node registered in etcd
            # reaches the leader through its watch a little later, and a
            # topology submitted before that is placed on the nodes it knows
            code = ("import json, urllib.request; "
                    f"print(len(json.load(urllib.request.urlopen('http://{h.ip(0)}:6627/api/v1/nodes', timeout=5))['nodes']))")
            r = subprocess.run(h.exec(0) + ["/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=30)
            return r.returncode == 0 and r.stdout.strip() == "2"
        wait_for(nodes_known, 30, interval=0.5, what="the master to know both nodes")

        def submit():
            r = subprocess.run(h.exec(0) + [str(streamd_bin), "submit", str(path), *common],
                               capture_output=True, text=True, timeout=30)
            return r.returncode == 0 or None
        wait_for(submit, 30, interval=1, what="a leader to accept the topology")
        wait_for(lambda: all(_workers_under(n.local) for n in nodes) and sink_lines(sink) >= 100, 60,
                 interval=0.1, what="a worker on each node and tuples flowing")
        cut, other = nodes
        cut_workers = _workers_under(cut.local)
        h.cut(1)
        t0 = time.monotonic()
        wait_for(lambda: not _workers_under(cut.local), ttl, interval=0.1,
                 what="the cut node to stop its workers before its lease TTL")
        stopped_after = time.monotonic() - t0
        assert stopped_after < ttl, f"the cut node's workers ran {stopped_after:.1f} s, past the TTL"
        assert all(not os.path.exists(f"/proc/{p}") for p in cut_workers)
        wait_for(lambda: len(_workers_under(other.local)) == 2, ttl + 10, interval=0.2,
                 what="both workers on the node still connected")
        wait_for(lambda: len({r["line"] for r in read_jsonl(sink)}) >= nlines, 180, interval=0.5,
                 what="every line in the sink")
        got = {r["line"] for r in read_jsonl(sink)}
        missing = [i for i in range(nlines) if f"record {i:06d}" not in got]
        assert not missing, f"{len(missing)} lines lost"
        assert cut.alive(), "the cut node must keep running, and register again when the link is back"
    except AssertionError:
        for p in procs:
            print(f"--- {p.name}\n{p.text()[-4000:]}")
        raise
    finally:
        for p in procs:
            p.terminate(timeout=15)
        for n in (tmp_path / "node1", tmp_path / "node2"):
            for pid in _workers_under(n):
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
