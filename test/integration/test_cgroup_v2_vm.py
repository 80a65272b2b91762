"""Worker cgroups on a real cgroup2 hierarchy with the cpu and memory
controllers, in a guest booted by tools/vm-cgroup2 (this host's cgroup2 mount
has neither controller: they are bound to v1).

The same cases as test_cgroups.py's v1 ones: the worker's /proc/<pid>/cgroup
names <node's cgroup>/streamd/<topology-id>/<port>, cpu.weight, cpu.max and
memory.max hold the largest of the topology's and the component's limits, and
the cgroup is gone after the run; a bolt that allocates without bound under a
64 MB limit is OOM-killed, the node records the cause from memory.events and
restarts it, and no line is lost; supervisor.cgroup.mode auto picks v2 there.
One guest boot runs the three cases.
"""
import hashlib
import os
import re
import subprocess
import time

import pytest

from conftest import REPO, slow_topology, to_yaml

# qemu and busybox missing is a failure (tools/setup installs them), not a skip
# the guest boots under emulation here (about a minute): once, in the default
# pass; the sanitizer pass covers the same cgroup code on v1
pytestmark = [pytest.mark.skipif(not os.path.exists("/dev/kvm"), reason="/dev/kvm is absent: no guest to boot"),
              pytest.mark.default_pass]


def lines_file(case, n, tag):
    (case / "input.txt").write_text("".join(f"{tag} line {i:05d}\n" for i in range(n)))
    return [f"{tag} line {i:05d}" for i in range(n)]


def topology(name, case, config, limits=None, delay_ms=3, workers=1):
    """slow_topology with the guest's paths (/cases/<case>)."""
    g = f"/cases/{case.name}"
    return slow_topology(name, f"{g}/input.txt", f"{g}/sink.jsonl", config, limits, delay_ms, workers)


def write_case(cases, name, topo, conf, probe):
    case = cases / name
    (case / "topo.yaml").write_text(to_yaml(topo) + "\n")
    (case / "args").write_text("".join(f"-c\n{k}={v}\n" for k, v in conf.items()))
    if probe:
        (case / "probe").touch()


class Guest:
    """What the guest printed: {case: {key: [values]}}, and the whole console."""

    def __init__(self, console, stderr, seconds):
        self.console = console
        self.stderr = stderr
        self.seconds = seconds
        self.seen = {}
        for line in console.splitlines():
            m = re.match(r"VM (\S+) (\S+) ?(.*)$", line.rstrip("\r"))
            if m:
                self.seen.setdefault(m[1], {}).setdefault(m[2], []).append(m[3])

    def get(self, case, key):
        vals = self.seen.get(case, {}).get(key)
        assert vals, f"the guest printed no {key} for {case}\n{self.explain()}"
        return vals[0]

    def all(self, case, key):
        return self.seen.get(case, {}).get(key, [])

    def explain(self):
        return f"--- console (last 6000 chars)\n{self.console[-6000:]}\n--- vm-cgroup2 stderr\n{self.stderr[-2000:]}"


@pytest.fixture(scope="module")
def guest(streamd_bin, tmp_path_factory):
    cases = tmp_path_factory.mktemp("vmcases")
    for name in ("a_limits", "b_oom", "c_auto"):
        (cases / name).mkdir()
    want_limits = lines_file(cases / "a_limits", 1500, "cg")
    write_case(cases, "a_limits",
               topology("cgv2", cases / "a_limits",
                        {"topology.worker.cpu.weight": 200, "topology.worker.cpu.cores": 1.5,
                         "topology.worker.memory.mb": 256},
                        limits={"memory.mb": 300, "cpu.weight": 150}),
               {"supervisor.cgroup.mode": "v2"}, probe=True)
    want_oom = lines_file(cases / "b_oom", 2000, "oom")
    oom = topology("cgoom", cases / "b_oom",
                   {"topology.worker.memory.mb": 64, "topology.acker.executors": 2,
                    "topology.message.timeout.secs": 3, "topology.max.spout.pending": 50},
                   delay_ms=1, workers=2)
    oom["bolts"][0]["args"].update({"alloc.after": 100, "alloc.marker": "/cases/b_oom/allocated"})
    write_case(cases, "b_oom", oom, {"supervisor.cgroup.mode": "v2"}, probe=False)
    want_auto = lines_file(cases / "c_auto", 200, "auto")
    write_case(cases, "c_auto", topology("cgauto", cases / "c_auto", {"topology.worker.memory.mb": 128}),
               {"supervisor.cgroup.mode": "auto"}, probe=True)
    t0 = time.monotonic()
    res = subprocess.run([str(REPO / "tools" / "vm-cgroup2"), "--binary", str(streamd_bin), "--timeout", "300",
                          str(cases)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         errors="replace", timeout=330)
    g = Guest(res.stdout, res.stderr, time.monotonic() - t0)
    g.want = {"a_limits": want_limits, "b_oom": want_oom, "c_auto": want_auto}
    print(f"guest run: {g.seconds:.1f}s; {res.stderr.strip()}")
    assert res.returncode == 0, f"vm-cgroup2 exited {res.returncode}\n{g.explain()}"
    assert g.all("-", "done"), f"the guest did not finish its cases\n{g.explain()}"
    return g


def no_sanitizer_report(g, case):
    bad = [e for e in g.all(case, "event") + g.all(case, "worker_log")
           if "Sanitizer" in e or "runtime error:" in e]
    assert not bad, f"sanitizer report in the guest: {bad}\n{g.explain()}"


def test_guest_has_cgroup2_with_cpu_and_memory(guest):
    assert guest.get("-", "kernel"), guest.explain()
    ctls = guest.get("-", "root_controllers").split()
    assert "cpu" in ctls and "memory" in ctls, guest.explain()


def test_v2_worker_cgroup_holds_the_limits(guest):
    c = "a_limits"
    path = guest.get(c, "worker_cgroup")
    node = guest.get(c, "node_cgroup")
    # the node moved itself into a leaf of the cgroup it was started in, so
    # that cgroup may delegate controllers (v2 has no processes in inner nodes)
    assert node == "/node-a_limits/supervisor", guest.explain()
    assert path.startswith("/node-a_limits/streamd/"), guest.explain()
    tid, port = path.rsplit("/", 2)[1:]
    assert tid.startswith("cgv2") and port.isdigit(), path
    assert guest.get(c, "worker_pid") in guest.get(c, "cgroup_procs").split(), guest.explain()
    assert guest.get(c, "parent_subtree_control").split() == ["cpu", "memory"], guest.explain()
    # the largest of topology (200, 256 MB) and the component (150, 300 MB)
    assert guest.get(c, "cpu.weight") == "200", guest.explain()
    assert guest.get(c, "cpu.max") == "150000 100000", guest.explain()
    assert guest.get(c, "memory.max") == str(300 * 1024 * 1024), guest.explain()
    assert guest.get(c, "memory.swap.max") == "0", guest.explain()
    assert guest.get(c, "exit") == "0", guest.explain()
    want = guest.want[c]
    assert guest.get(c, "sink_lines") == str(len(want)), guest.explain()
    assert guest.get(c, "missing") == "0", guest.explain()
    md5 = hashlib.md5("".join(x + "\n" for x in sorted(want)).encode()).hexdigest()
    assert guest.get(c, "sorted_md5") == md5, guest.explain()
    assert guest.get(c, "leaf_left") == "no", "cgroup left behind\n" + guest.explain()
    assert guest.get(c, "topology_dir_left") == "no", "topology cgroup left behind\n" + guest.explain()
    assert guest.get(c, "leftover") == "", guest.explain()
    assert guest.get(c, "node_oom_kill") == "0", guest.explain()
    no_sanitizer_report(guest, c)


def test_v2_oom_kill_recorded_and_restarted(guest):
    c = "b_oom"
    assert guest.get(c, "exit") == "0", guest.explain()
    assert guest.get(c, "allocated") == "yes", "the bolt never allocated\n" + guest.explain()
    events = guest.all(c, "event")
    assert any("OOM killed" in e for e in events), guest.explain()
    assert any("restarting worker" in e for e in events), guest.explain()
    # the kernel counted the kill in the node's subtree
    assert int(guest.get(c, "node_oom_kill")) >= 1, guest.explain()
    assert guest.get(c, "missing") == "0", f"lines lost\n{guest.explain()}"
    assert int(guest.get(c, "sink_distinct")) == len(guest.want[c]), guest.explain()
    assert guest.get(c, "leftover") == "", "cgroups left behind\n" + guest.explain()
    no_sanitizer_report(guest, c)


def test_auto_mode_picks_v2_with_defaults(guest):
    """supervisor.cgroup.mode auto on a unified hierarchy that has cpu and
    memory: v2; no cpu limit and the default weight."""
    c = "c_auto"
    assert any("worker cgroups: v2 at" in e for e in guest.all(c, "event")), guest.explain()
    assert guest.get(c, "worker_cgroup").startswith("/node-c_auto/streamd/cgauto"), guest.explain()
    assert guest.get(c, "cpu.weight") == "100", guest.explain()
    assert guest.get(c, "cpu.max") == "max 100000", guest.explain()
    assert guest.get(c, "memory.max") == str(128 * 1024 * 1024), guest.explain()
    assert guest.get(c, "exit") == "0", guest.explain()
    assert guest.get(c, "missing") == "0" and guest.get(c, "sink_lines") == "200", guest.explain()
    assert guest.get(c, "leaf_left") == "no", guest.explain()
    no_sanitizer_report(guest, c)
