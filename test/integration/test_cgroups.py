"""Worker cgroups on this machine's real cgroup hierarchies (needs root).

v1: each worker runs in <node's cgroup>/streamd/<topology-id>/<port> of the
cpu and memory hierarchies; the files hold the configured weight, quota and
memory limit (a component's limits: raise them); the cgroups are gone
after the run. A bolt that allocates without bound under a 64 MB limit is
OOM-killed, the node records the cause and restarts it, and no line is lost.
v2: on a unified hierarchy whose controllers are bound to v1 the worker is
still placed in its own cgroup there; supervisor.cgroup.required then makes
the node refuse to run workers with a clear error.
"""
import os
import signal
from pathlib import Path

import pytest

from conftest import Runner, read_jsonl, slow_topology, stop_group, wait_for, worker_pids

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root")


def own_cgroups(pid):
    """{controller or '' for v2: path} from /proc/<pid>/cgroup."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctls, path = line.split(":", 2)
        for c in ctls.split(",") if ctls else [""]:
            out[c] = path
    return out


def mount_of(fstype, option=None):
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, post = line.split(" - ", 1)
        f = pre.split()
        typ, _src, opts = (post.split() + [""])[:3]
        if typ == fstype and (option is None or option in opts.split(",")):
            return f[4], f[3]
    return None, None


def cg_dir(fstype, option, path):
    mnt, root = mount_of(fstype, option)
    assert mnt, f"no {fstype} {option} mount"
    rel = path[len(root):] if root != "/" and path.startswith(root) else path
    return Path(mnt + rel)


def lines_file(tmp_path, n, tag):
    src = tmp_path / "input.txt"
    src.write_text("".join(f"{tag} line {i:05d}\n" for i in range(n)))
    return src, [f"{tag} line {i:05d}" for i in range(n)]


def v1_available():
    return mount_of("cgroup", "cpu")[0] and mount_of("cgroup", "memory")[0]


@pytest.mark.skipif(not v1_available(), reason="no v1 cpu and memory hierarchies")
def test_v1_worker_cgroup_holds_the_limits(streamd, tmp_path):
    src, want = lines_file(tmp_path, 1500, "cg")
    sink = tmp_path / "sink.jsonl"
    topo = slow_topology("cgv1", src, sink,
                         {"topology.worker.cpu.weight": 200, "topology.worker.cpu.cores": 1.5,
                          "topology.worker.memory.mb": 256},
                         limits={"memory.mb": 300, "cpu.weight": 150})
    proc = streamd.start(topo, conf={"supervisor.cgroup.mode": "v1"})
    pid = wait_for(lambda: worker_pids(proc.pid) and worker_pids(proc.pid)[0], 30, what="a worker")
    cgs = wait_for(lambda: own_cgroups(pid) if "/streamd/" in own_cgroups(pid).get("memory", "") else None, 10,
                   what="the worker in its cgroup")
    node_cgs = own_cgroups(proc.pid)
    for ctl in ("cpu", "memory"):
        path = cgs[ctl]
        parent = node_cgs[ctl].rstrip("/")
        assert path.startswith(parent + "/streamd/"), (ctl, path, parent)
        assert path.rsplit("/", 2)[1].startswith("cgv1"), path  # <topology-id>/<port>
        assert path.rsplit("/", 1)[1].isdigit(), path
    cpu = cg_dir("cgroup", "cpu", cgs["cpu"])
    mem = cg_dir("cgroup", "memory", cgs["memory"])
    # the largest of topology (200, 256 MB) and the component (150, 300 MB)
    assert (cpu / "cpu.shares").read_text().strip() == str(200 * 1024 // 100)
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "150000"
    assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
    assert (mem / "memory.limit_in_bytes").read_text().strip() == str(300 * 1024 * 1024)
    res = streamd.finish(proc, timeout=120)
    assert res.returncode == 0, res.explain()
    assert sorted(r["line"] for r in read_jsonl(sink)) == want
    assert not cpu.exists() and not mem.exists(), "cgroups left behind"


@pytest.mark.skipif(not v1_available(), reason="no v1 cpu and memory hierarchies")
def test_v1_oom_kill_recorded_and_restarted(streamd, tmp_path):
    src, want = lines_file(tmp_path, 2000, "oom")
    sink = tmp_path / "sink.jsonl"
    marker = tmp_path / "allocated"
    topo = slow_topology("cgoom", src, sink,
                         {"topology.worker.memory.mb": 64, "topology.acker.executors": 2,
                          "topology.message.timeout.secs": 3, "topology.max.spout.pending": 50},
                         delay_ms=1, workers=2)
    topo["bolts"][0]["args"].update({"alloc.after": 100, "alloc.marker": str(marker)})
    res = streamd.run(topo, timeout=180, conf={"supervisor.cgroup.mode": "v1"})
    assert res.returncode == 0, res.explain()
    assert marker.exists(), "the bolt never allocated"
    assert "OOM killed" in res.stderr, res.explain()
    assert "restarting worker" in res.stderr, res.explain()
    got = {r["line"] for r in read_jsonl(sink)}
    missing = [x for x in want if x not in got]
    assert not missing, f"{len(missing)} lines lost, e.g. {missing[:3]}"


def test_v2_unified_hierarchy_placement(streamd, tmp_path):
    mnt, _ = mount_of("cgroup2")
    if not mnt:
        pytest.skip("no cgroup2 mount")
    src, want = lines_file(tmp_path, 800, "v2")
    sink = tmp_path / "sink.jsonl"
    topo = slow_topology("cgv2", src, sink, {"topology.worker.memory.mb": 128})
    proc = streamd.start(topo, conf={"supervisor.cgroup.mode": "v2"})
    pid = wait_for(lambda: worker_pids(proc.pid) and worker_pids(proc.pid)[0], 30, what="a worker")
    path = wait_for(lambda: "/streamd/" in own_cgroups(pid).get("", "") and own_cgroups(pid)[""], 10,
                    what="the worker in its v2 cgroup")
    d = cg_dir("cgroup2", None, path)
    assert d.is_dir()
    ctls = (d.parent / "cgroup.controllers").read_text().split()
    if "memory" in ctls:  # a kernel with the controllers on v2
        assert (d / "memory.max").read_text().strip() == str(128 * 1024 * 1024)
    res = streamd.finish(proc, timeout=120)
    assert res.returncode == 0, res.explain()
    assert sorted(r["line"] for r in read_jsonl(sink)) == want
    assert not d.exists(), "cgroup left behind"
    if "memory" not in ctls:
        assert "without cpu or memory limits" in res.stderr, res.explain()


def test_v2_required_without_controllers_refuses(streamd, tmp_path):
    mnt, _ = mount_of("cgroup2")
    if not mnt:
        pytest.skip("no cgroup2 mount")
    if "memory" in Path(mnt, "cgroup.controllers").read_text().split():
        pytest.skip("this machine's v2 hierarchy has the controllers")
    src, _ = lines_file(tmp_path, 10, "req")
    topo = slow_topology("cgreq", src, tmp_path / "sink.jsonl", {})
    res = streamd.run(topo, timeout=60, conf={"supervisor.cgroup.mode": "v2", "supervisor.cgroup.required": True})
    assert res.returncode != 0, res.explain()
    assert "supervisor.cgroup.required is set but worker cgroups cannot be used" in res.stderr, res.explain()


@pytest.mark.skipif(not v1_available(), reason="no v1 cpu and memory hierarchies")
def test_v1_required_worker_refused_shows_the_reason(streamd, tmp_path):
    """A cgroup the kernel will not take (a cpu quota beyond its maximum) with
    supervisor.cgroup.required: the worker is refused and its last exit says
    why, not the SIGKILL that ends it."""
    src, _ = lines_file(tmp_path, 10, "refused")
    topo = slow_topology("cgrefused", src, tmp_path / "sink.jsonl", {"topology.worker.cpu.cores": 1000000000})
    res = streamd.run(topo, timeout=90, conf={"supervisor.cgroup.mode": "v1", "supervisor.cgroup.required": True,
                                              "supervisor.worker.restart.delay.ms": 50})
    assert res.returncode != 0, res.explain()
    out = res.stdout + res.stderr
    assert "last exit refused: no cgroup (supervisor.cgroup.required)" in out, res.explain()
    assert "last exit signal 9" not in out, res.explain()



def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_leftover_worker_of_an_earlier_run_is_killed_at_start(streamd, streamd_bin, tmp_path, mode):
    """A worker that outlived its node (stopped, so it cannot notice the node
    is gone) is SIGKILLed and its cgroup removed when a node with the same
    local dir starts; a live run with another local dir keeps its worker."""
    if mode == "v1" and not v1_available():
        pytest.skip("no v1 cpu and memory hierarchies")
    if mode == "v2" and not mount_of("cgroup2")[0]:
        pytest.skip("no cgroup2 mount")
    key = "cpu" if mode == "v1" else ""
    fstype, option = ("cgroup", "cpu") if mode == "v1" else ("cgroup2", None)
    src, want = lines_file(tmp_path, 3000, "left")
    conf = {"supervisor.cgroup.mode": mode}
    first = streamd.start(slow_topology("cgleft", src, tmp_path / "sink1.jsonl", {}, delay_ms=20), conf=conf)
    pid = wait_for(lambda: worker_pids(first.pid) and worker_pids(first.pid)[0], 30, what="a worker")
    path = wait_for(lambda: "/streamd/" in own_cgroups(pid).get(key, "") and own_cgroups(pid)[key], 10,
                    what="the worker in its cgroup")
    leftover_cg = cg_dir(fstype, option, path)
    os.kill(pid, signal.SIGSTOP)  # it cannot see its node go
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert alive(pid) and leftover_cg.is_dir()

    other = Runner(streamd_bin, tmp_path / "other")
    (tmp_path / "other").mkdir()
    osrc, _ = lines_file(tmp_path / "other", 3000, "other")
    live = other.start(slow_topology("cglive", osrc, tmp_path / "other" / "sink.jsonl", {}, delay_ms=20), conf=conf)
    try:
        live_pid = wait_for(lambda: worker_pids(live.pid) and worker_pids(live.pid)[0], 30, what="a live worker")
        wait_for(lambda: "/streamd/" in own_cgroups(live_pid).get(key, ""), 10, what="the live worker's cgroup")
        small, small_want = lines_file(tmp_path, 50, "again")
        res = streamd.run(slow_topology("cgagain", small, tmp_path / "sink2.jsonl", {}, delay_ms=0), timeout=60,
                          conf=conf)
        assert res.returncode == 0, res.explain()
        assert "an earlier run left 1 worker cgroups with 1 processes" in res.stderr, res.explain()
        wait_for(lambda: not alive(pid), 5, what="the leftover worker to die")
        assert not leftover_cg.exists(), "the leftover cgroup is still there"
        assert sorted(r["line"] for r in read_jsonl(tmp_path / "sink2.jsonl")) == small_want
        assert alive(live_pid), "a live run of another node lost its worker"
    finally:
        stop_group(live)
