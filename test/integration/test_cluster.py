"""Cluster mode end to end: a real etcd, real masters and nodes, topologies
submitted with the client; failures of the leader, of a node and of etcd
itself while tuples flow. Every fault test counts the input lines and checks
that each one reached the sink."""
import json
import os
import signal
import time
from collections import Counter

import pytest

from cluster import cluster, now, sink_lines, start_cluster, topology_file, workers_of  # noqa: F401 (fixture)
from conftest import SENTENCES, read_jsonl, split_words, wait_for


def flowing_topology(tmp_path, nlines, workers=2, delay_ms=2, name="flow"):
    """file_lines -> slow pass_through -> file_sink over nlines numbered lines."""
    src = tmp_path / "input.txt"
    src.write_text("".join(f"record {i:06d}\n" for i in range(nlines)))
    sink = tmp_path / "sink.jsonl"
    topo = {
        "name": name,
        "workers": workers,
        "config": {"topology.acker.executors": 2, "topology.message.timeout.secs": 5,
                   "topology.max.spout.pending": 50},
        "spouts": [{"id": "lines", "class": "file_lines", "parallelism": 2, "args": {"path": str(src)}}],
        "bolts": [
            {"id": "slow", "class": "pass_through", "parallelism": 2, "args": {"delay.ms": delay_ms},
             "outputs": ["line"], "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "parallelism": 2, "args": {"path": str(sink)},
             "inputs": [{"from": "slow", "grouping": "shuffle"}]},
        ],
    }
    return topology_file(tmp_path, topo), sink


def assert_all_lines(sink, nlines, c):
    got = {row["line"] for row in read_jsonl(sink)}
    missing = [i for i in range(nlines) if f"record {i:06d}" not in got]
    assert not missing, f"{len(missing)} lines lost, e.g. {missing[:5]}\n" + c.all_output()


def wait_all_lines(sink, nlines, c, timeout):
    def done():
        return len({row["line"] for row in read_jsonl(sink)}) >= nlines
    try:
        wait_for(done, timeout, interval=0.5, what=f"all {nlines} lines in the sink")
    except AssertionError:
        assert_all_lines(sink, nlines, c)
        raise


def submit(c, path):
    res = c.client("submit", str(path))
    assert res.returncode == 0, f"submit failed: {res.stdout}{res.stderr}\n" + c.all_output()
    return res


def all_workers(c):
    return sorted(p for n in c.nodes for p in workers_of(n))


def test_wordcount_two_masters_two_nodes(cluster, tmp_path):
    c = cluster
    start_cluster(c)
    sink = tmp_path / "counts.jsonl"
    topo = {
        "name": "wordcount",
        "workers": 2,
        "spouts": [{"id": "lines", "class": "file_lines", "parallelism": 2, "args": {"path": str(SENTENCES)}}],
        "bolts": [
            # fed by a forward grouping only: each task runs chained into its lines task
            {"id": "relay", "class": "pass_through", "parallelism": 2, "outputs": ["line"],
             "inputs": [{"from": "lines", "grouping": "forward"}]},
            {"id": "split", "class": "split_words", "parallelism": 2,
             "inputs": [{"from": "relay", "grouping": "shuffle"}]},
            {"id": "count", "class": "word_count", "parallelism": 2,
             "inputs": [{"from": "split", "grouping": "fields", "fields": ["word"]}]},
            {"id": "sink", "class": "file_sink", "parallelism": 1, "args": {"path": str(sink)},
             "inputs": [{"from": "count", "grouping": "global"}]},
        ],
    }
    res = submit(c, topology_file(tmp_path, topo))
    assert "wordcount" in res.stdout
    expected = Counter()
    for line in SENTENCES.read_text(encoding="utf-8").split("\n"):
        expected.update(split_words(line))

    def counted():
        final = {}
        for row in read_jsonl(sink):
            final[row["word"]] = max(final.get(row["word"], 0), row["count"])
        return final == dict(expected)
    wait_for(counted, 60, interval=0.5, what="the counts to equal an independent count")

    # the state is readable JSON in etcd
    kv = c.etcd.get_prefix(c.key(""))
    topo_rec = json.loads(kv[c.key("topologies/wordcount")])
    assert topo_rec["status"] == "active"
    assign = json.loads(kv[c.key(f"assignments/{topo_rec['id']}")])
    assert len(assign["workers"]) == 2
    assert {w["node"] for w in assign["workers"]} == {"n0", "n1"}, "two workers should spread over both nodes"
    for n in ("n0", "n1"):
        node = json.loads(kv[c.key(f"nodes/{n}")])
        assert len(node["slots"]) == 2
    text = c.etcd.get_text(c.key("topologies/"))
    assert '"status":"active"' in text.replace(" ", "")

    # client commands
    res = c.client("list")
    assert res.returncode == 0 and "wordcount" in res.stdout, res.stdout + res.stderr
    res = c.client("status", "wordcount", "--json")
    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout)
    assert {comp["id"] for comp in st["components"]} >= {"lines", "relay", "split", "count", "sink"}

    # chaining, from the workers' reports: relay runs inside lines' tasks
    last = {}

    def relay_chained():
        r = c.client("status", "wordcount", "--json")
        last["status"] = r.stdout + r.stderr
        comps = {x["id"]: x for x in json.loads(r.stdout)["components"]} if r.returncode == 0 else {}
        return comps.get("relay", {}).get("chained_into") == "lines" and comps["relay"].get("chained_tasks") == 2
    try:
        wait_for(relay_chained, 30, interval=0.5, what="status to show relay chained into lines")
    except AssertionError as e:
        # the logs say whether reports reached the leader (node: "cannot report
        # to the leader", a leader change) or came without the chained tasks
        raise AssertionError(f"{e}; last status: {last.get('status')}\n{c.all_output()}") from None
    comps = {x["id"]: x for x in json.loads(c.client("status", "wordcount", "--json").stdout)["components"]}
    assert all("chained_into" not in comps[x] for x in ("lines", "split", "count", "sink")), comps
    res = c.client("status", "wordcount")
    assert "chained into lines: 2 of 2 task(s)" in res.stdout, res.stdout
    kill_and_wait_gone(c)


def kill_and_wait_gone(c):
    res = c.client("kill", "wordcount", "--wait", "0")
    assert res.returncode == 0, res.stdout + res.stderr
    wait_for(lambda: not all_workers(c), 30, what="the workers to stop after kill")
    wait_for(lambda: not c.etcd.get_prefix(c.key("topologies/")), 30, what="the topology key to go")
    wait_for(lambda: not c.etcd.get_prefix(c.key("packages/")), 30, what="the package to be deleted")


def test_leader_killed_standby_takes_over(cluster, tmp_path):
    c = cluster
    start_cluster(c)
    nlines = 6000
    path, sink = flowing_topology(tmp_path, nlines)
    submit(c, path)
    wait_for(lambda: len(all_workers(c)) == 2 and sink_lines(sink) >= 100, 60, interval=0.1,
             what="two workers and tuples flowing")
    before = all_workers(c)
    old = c.leader_proc()
    old.kill9()
    t0 = now()
    wait_for(lambda: c.leader() not in (None, f"m{c.masters.index(old)}"), 3 + 2 + 1, interval=0.1,
             what="the standby to lead")
    assert now() - t0 <= 3 + 2, "the standby took longer than the lease TTL + 2 s"
    assert sink_lines(sink) < nlines, "the run was too fast to fail the leader mid-run"
    wait_all_lines(sink, nlines, c, 120)
    assert all_workers(c) == before, "workers were restarted by the failover"
    assert_all_lines(sink, nlines, c)


def test_node_killed_workers_move(cluster, tmp_path):
    c = cluster
    start_cluster(c, slots=2)
    nlines = 6000
    path, sink = flowing_topology(tmp_path, nlines)
    submit(c, path)
    wait_for(lambda: all(workers_of(n) for n in c.nodes) and sink_lines(sink) >= 100, 60, interval=0.1,
             what="a worker on each node and tuples flowing")
    victim, survivor = c.nodes
    victim.kill9(with_workers=True)
    t0 = now()
    wait_for(lambda: len(workers_of(survivor)) == 2, 4 + 5 + 5, interval=0.2,
             what="both workers on the surviving node")
    assert now() - t0 <= 4 + 5, "reassignment took longer than the node lease TTL + 5 s"
    wait_all_lines(sink, nlines, c, 180)
    assert_all_lines(sink, nlines, c)


@pytest.mark.default_pass
def test_etcd_outage_keeps_workers(cluster, tmp_path):
    c = cluster
    start_cluster(c)
    nlines = 20000
    path, sink = flowing_topology(tmp_path, nlines, delay_ms=3)
    submit(c, path)
    wait_for(lambda: len(all_workers(c)) == 2 and sink_lines(sink) >= 100, 60, interval=0.1,
             what="two workers and tuples flowing")
    before = all_workers(c)
    c.etcd.stop()
    during = sink_lines(sink)
    time.sleep(30)  # the outage itself; what follows polls
    assert sink_lines(sink) > during, "workers stopped processing while etcd was down"
    assert all_workers(c) == before, "workers were restarted during the outage"
    c.etcd.start()
    wait_for(lambda: c.leader() is not None, 20, what="a leader after etcd returned")
    wait_for(lambda: len(c.etcd.get_prefix(c.key("nodes/"))) == 2, 20, what="both nodes registered again")
    wait_all_lines(sink, nlines, c, 240)
    assert all_workers(c) == before, "workers were restarted after the outage"
    assert all(p.alive() for p in c.masters + c.nodes)


def test_bad_input(cluster, tmp_path):
    c = cluster
    start_cluster(c, masters=1, nodes=1)
    # an invalid topology over the API: 4xx naming file and line
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nspouts:\n  - id: s\n    class: file_lines\n    parallelism: zero\n")
    res = c.client("submit", str(bad))
    assert res.returncode == 2 and "bad.yaml:5" in res.stderr, res.stdout + res.stderr
    # the same file sent straight to the API, bypassing the client's own check
    status, body = c.api("/api/v1/topologies", method="POST", body=b"not a package",
                         headers={"Content-Type": "application/octet-stream"})
    assert 400 <= status < 500, (status, body)
    # malformed HTTP and an oversized body
    import socket
    host, port = c.masters[0].api[len("http://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"GARBAGE / HTTP/9\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.") and b" 4" in reply.split(b"\r\n")[0], reply[:200]
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"POST /api/v1/topologies HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n")
        reply = s.recv(4096)
    assert b" 413 " in reply.split(b"\r\n")[0], reply[:200]
    status, body = c.api("/api/v1/nope")
    assert status == 404
    # the master is still there
    status, body = c.api("/api/v1/cluster")
    assert status == 200 and body["nodes"] == 1
    # a client against an unreachable etcd says so and exits 1 within its timeout
    (dead,) = __import__("conftest").free_ports(1)
    t0 = now()
    res = c.client("list", extra=["--etcd", f"http://127.0.0.1:{dead}", "-c", "client.timeout.secs=3"])
    assert res.returncode == 1 and "etcd" in res.stderr, res.stdout + res.stderr
    assert now() - t0 < 10


def test_corrupted_package_refused(cluster, tmp_path):
    c = cluster
    start_cluster(c, masters=1, nodes=1)
    nlines = 50
    path, sink = flowing_topology(tmp_path, nlines, workers=1, delay_ms=0)
    # the leader must not run: stop it after it stored the package, corrupt a chunk
    submit(c, path)
    wait_all_lines(sink, nlines, c, 60)
    kv = c.etcd.get_prefix(c.key("packages/"))
    chunk = next(k for k in kv if "/chunk-" in k)
    import subprocess
    from cluster import ETCDCTL
    subprocess.run([ETCDCTL, "--endpoints", c.etcd.url, "put", chunk, "corrupted"], check=True,
                   capture_output=True, env=dict(os.environ, ETCDCTL_API="3"))
    # a new node has no cached copy: it must refuse the package by its hash
    n = c.add_node(slots=1)
    c.nodes[0].kill9(with_workers=True)
    wait_for(lambda: "does not match its hash" in n.text() or "hash" in n.text(), 30,
             what="the new node to refuse the corrupted package")
    assert not workers_of(n), "a worker started from a corrupted package"
    n.popen.send_signal(signal.SIGTERM)
