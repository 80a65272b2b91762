"""Privilege drop: a node running as root with worker.user set runs its
workers as that user and group, with no capabilities and no_new_privs; such
a worker cannot read the node's config file (mode 0600)."""
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import read_jsonl, to_yaml, wait_for, worker_pids

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
USER = "nobody"


@pytest.fixture
def public_dir():
    """A directory the worker user can read and write (pytest's own is 0700)."""
    d = Path(tempfile.mkdtemp(prefix="sd-priv-", dir="/tmp"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def status_fields(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.split()
    return out


def write_topology(d, spout_path, sink):
    topo = {
        "name": "priv",
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(spout_path)}}],
        "bolts": [
            {"id": "slow", "class": "pass_through", "args": {"delay.ms": 1}, "outputs": ["line"],
             "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "args": {"path": str(sink)},
             "inputs": [{"from": "slow", "grouping": "shuffle"}]},
        ],
    }
    path = d / "priv.yaml"
    path.write_text(to_yaml(topo) + "\n")
    path.chmod(0o644)
    return path


def node_config(d):
    conf = d / "streamd.yaml"
    conf.write_text(f"worker.user: {USER}\nstore.etcd.password: secret\n")
    conf.chmod(0o600)
    return conf


def test_worker_runs_as_worker_user(streamd, public_dir):
    pw = pwd.getpwnam(USER)
    src = public_dir / "input.txt"
    src.write_text("".join(f"row {i}\n" for i in range(3000)))
    src.chmod(0o644)
    sink = public_dir / "sink.jsonl"
    conf = node_config(public_dir)
    proc = streamd.start(write_topology(public_dir, src, sink), extra=["--config", str(conf)])
    pid = wait_for(lambda: worker_pids(proc.pid) and worker_pids(proc.pid)[0], 30, what="a worker")
    st = wait_for(lambda: status_fields(pid) if status_fields(pid)["Uid"][0] != "0" else None, 10,
                  what="the worker's uid")
    assert st["Uid"] == [str(pw.pw_uid)] * 4, st["Uid"]
    assert st["Gid"] == [str(pw.pw_gid)] * 4, st["Gid"]
    assert st["Groups"] == [] or st["Groups"] == [str(pw.pw_gid)], st["Groups"]
    assert st["CapEff"] == ["0000000000000000"] and st["CapPrm"] == ["0000000000000000"], st
    wait_for(lambda: status_fields(pid)["NoNewPrivs"] == ["1"], 10, what="no_new_privs")
    res = streamd.finish(proc, timeout=120)
    assert res.returncode == 0, res.explain()
    assert len(read_jsonl(sink)) == 3000
    assert sink.stat().st_uid == pw.pw_uid


def test_worker_cannot_read_node_config(streamd, public_dir):
    conf = node_config(public_dir)
    sink = public_dir / "sink.jsonl"
    res = streamd.run(write_topology(public_dir, conf, sink), extra=["--config", str(conf)], timeout=120,
                      conf={"supervisor.worker.restart.delay.ms": 50})
    assert res.returncode != 0, res.explain()
    assert f"cannot open {conf}: Permission denied" in res.stderr, res.explain()
