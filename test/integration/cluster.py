"""A real cluster for the cluster tests: a private etcd (Debian's etcd-server)
on free loopback ports with a temporary data dir, and real `streamd
--role=master` / `--role=node` processes talking to it. Nothing is mocked.
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import SANITIZER_REPORTS, free_ports, stop_group, to_yaml, wait_for, worker_pids

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


class Etcd:
    """One etcd member; stop() and start() again keep its data."""

    def __init__(self, tmp_path):
        self.data = tmp_path / "etcd-data"
        self.client_port, self.peer_port = free_ports(2)
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.log = tmp_path / "etcd.log"
        self.proc = None

    def start(self):
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [ETCD, "--name", "t", "--data-dir", str(self.data), "--listen-client-urls", self.url,
               "--advertise-client-urls", self.url, "--listen-peer-urls", peer,
               "--initial-advertise-peer-urls", peer, "--initial-cluster", f"t={peer}"]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
        wait_for(self.healthy, 30, what="etcd to answer /health")

    def healthy(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                return json.loads(r.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def get_prefix(self, prefix):
        """{key: value text} for every key under prefix, read with etcdctl."""
        out = subprocess.run([ETCDCTL, "--endpoints", self.url, "get", "--prefix", prefix, "-w", "json"],
                             capture_output=True, text=True, timeout=20, env=dict(os.environ, ETCDCTL_API="3"))
        assert out.returncode == 0, out.stderr
        kvs = json.loads(out.stdout).get("kvs", [])
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode(errors="replace")
                for kv in kvs}

    def get_text(self, prefix):
        """etcdctl's plain output (key line, value line ...) for the prefix."""
        out = subprocess.run([ETCDCTL, "--endpoints", self.url, "get", "--prefix", prefix],
                             capture_output=True, text=True, timeout=20, env=dict(os.environ, ETCDCTL_API="3"))
        assert out.returncode == 0, out.stderr
        return out.stdout


class Proc:
    """A streamd process of the cluster, with its output in files."""

    def __init__(self, name, cmd, tmp_path):
        self.name = name
        self.cmd = cmd
        self.out = tmp_path / f"{name}.out"
        self.popen = None

    def start(self):
        with open(self.out, "a") as o:
            self.popen = subprocess.Popen(self.cmd, stdout=o, stderr=subprocess.STDOUT, text=True,
                                          start_new_session=True)
        return self

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def text(self):
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def kill9(self, with_workers=False):
        victims = worker_pids(self.pid) if with_workers else []
        os.kill(self.pid, signal.SIGKILL)
        for w in victims:
            try:
                os.kill(w, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait(timeout=10)

    def terminate(self, timeout=30):
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                stop_group(self.popen)


class Cluster:
    """masters + nodes on one etcd, under a cluster name of their own."""

    def __init__(self, binary, tmp_path, name="t"):
        self.binary = str(binary)
        self.tmp = tmp_path
        self.name = name
        self.etcd = Etcd(tmp_path)
        self.masters = []
        self.nodes = []
        self.others = []

    def common(self):
        return ["--etcd", self.etcd.url, "--cluster", self.name, "-c", "log.level=info"]

    def add_master(self, ttl=3, extra=()):
        i = len(self.masters)
        (port,) = free_ports(1)
        cmd = [self.binary, "--role=master", *self.common(), "-c", f"master.id=m{i}",
               "-c", f"master.api.listen=127.0.0.1:{port}", "-c", f"master.lease.ttl.secs={ttl}", *extra]
        m = Proc(f"master{i}", cmd, self.tmp).start()
        m.api = f"http://127.0.0.1:{port}"
        self.masters.append(m)
        return m

    def add_node(self, slots=2, ttl=4, extra=()):
        i = len(self.nodes)
        ports = ",".join(str(p) for p in free_ports(slots))
        local = self.tmp / f"node{i}"
        cmd = [self.binary, "--role=node", *self.common(), "--node-id", f"n{i}",
               "-c", f"supervisor.slots.ports={ports}", "-c", f"streamd.local.dir={local}",
               "-c", f"node.lease.ttl.secs={ttl}", "-c", "node.report.interval.secs=1", *extra]
        n = Proc(f"node{i}", cmd, self.tmp).start()
        n.local = local
        self.nodes.append(n)
        return n

    def client(self, *args, timeout=60, extra=()):
        cmd = [self.binary, *args, *self.common(), *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def key(self, rest):
        return f"/streamd/{self.name}/{rest}"

    def leader(self):
        """The leader's id from etcd, or None."""
        kv = self.etcd.get_prefix(self.key("master/leader"))
        v = kv.get(self.key("master/leader"))
        return json.loads(v)["id"] if v else None

    def api(self, path, master=None, method="GET", body=None, headers=None):
        """(status, parsed JSON or text) from a master's API (the leader's by default)."""
        base = (master or self.leader_proc()).api
        req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                data = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            data, status = e.read(), e.code
        try:
            return status, json.loads(data)
        except ValueError:
            return status, data.decode(errors="replace")

    def leader_proc(self):
        lid = self.leader()
        for i, m in enumerate(self.masters):
            if f"m{i}" == lid and m.alive():
                return m
        raise AssertionError(f"no running master is the leader ({lid})")

    def all_output(self):
        out = [f"--- {p.name}\n{p.text()[-6000:]}" for p in self.masters + self.nodes]
        for n in self.nodes:
            for log in sorted(Path(n.local).rglob("*.log")) if Path(n.local).exists() else []:
                out.append(f"--- {log}\n{log.read_text(errors='replace')[-3000:]}")
        if self.etcd.log.exists():
            out.append(f"--- etcd\n{self.etcd.log.read_text(errors='replace')[-2000:]}")
        return "\n".join(out)

    def assert_no_sanitizer_report(self):
        texts = [(p.name, p.text()) for p in self.masters + self.nodes]
        for n in self.nodes:
            for log in sorted(Path(n.local).rglob("*.log")) if Path(n.local).exists() else []:
                texts.append((str(log), log.read_text(errors="replace")))
        for where, text in texts:
            for marker in SANITIZER_REPORTS:
                i = text.find(marker)
                if i >= 0:
                    raise AssertionError(f"sanitizer report in {where}:\n{text[max(0, i - 200):i + 3000]}")

    def close(self):
        for p in self.nodes + self.masters + self.others:
            if p.popen and p.popen.poll() is None:
                stop_group(p.popen)
        for n in self.nodes:  # workers are in sessions of their own
            for pid in _workers_under(n.local):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.etcd.stop()


def _workers_under(local_dir):
    """pids of worker processes whose log is under local_dir (orphans of a killed node)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if b"--role=worker" not in argv:
                continue
            log = os.readlink(f"/proc/{entry}/fd/1")
        except OSError:
            continue
        if log.startswith(str(local_dir)):
            pids.append(int(entry))
    return pids


def workers_of(node):
    """Worker pids of a node (its children, or orphans writing under its dir)."""
    return sorted(set(worker_pids(node.pid) if node.alive() else []) | set(_workers_under(node.local)))


def topology_file(tmp_path, topo, name="topo.yaml"):
    path = tmp_path / name
    path.write_text(to_yaml(topo) + "\n")
    return path


def sink_lines(path):
    try:
        return Path(path).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def now():
    return time.monotonic()


@pytest.fixture
def cluster(streamd_bin, tmp_path):
    """A Cluster with its etcd started; test modules import this fixture."""
    c = Cluster(streamd_bin, tmp_path)
    c.etcd.start()
    yield c
    try:
        c.assert_no_sanitizer_report()
    finally:
        c.close()


def leader_node_count(c):
    """How many nodes the leader's own state holds (its API), or -1."""
    try:
        status, body = c.api("/api/v1/nodes")
    except (AssertionError, OSError):
        return -1
    return len(body["nodes"]) if status == 200 and isinstance(body, dict) else -1


def start_cluster(c, masters=2, nodes=2, slots=2, node_extra=()):
    """Starts masters and nodes and waits for a leader and every node."""
    for _ in range(masters):
        c.add_master()
    for _ in range(nodes):
        c.add_node(slots=slots, extra=node_extra)
    wait_for(lambda: c.leader() is not None, 20, what="a leader")
    wait_for(lambda: len(c.etcd.get_prefix(c.key("nodes/"))) == nodes, 20, what=f"{nodes} nodes registered")
    # registered in etcd is not yet known to the leader (its watch delivers
    # them a little later): a topology submitted before that would be
    # scheduled on the nodes it knows only
    wait_for(lambda: leader_node_count(c) == nodes, 20, what=f"the leader to know {nodes} nodes")
