"""A worker's memory is bounded in bytes, not in tuples: a fast spout in one
worker feeds a slow bolt in the other with large (4 KiB) tuples, acking off,
so only backpressure keeps the receiving worker from buffering everything the
spout makes. Each worker's peak RSS (VmHWM, read from /proc while it runs)
must stay under a bound that a tuple-count limit (tens of thousands of tuples
waiting, times 4 KiB) would blow through. With acking on, the same pressure
loses nothing. The RSS bound holds for the default build only: the sanitizer
build keeps freed memory in quarantine by design, so there only the pipeline
and the acking are checked."""
import json
import time
from pathlib import Path

from conftest import worker_pids

TUPLE_BYTES = 4096
RSS_BOUND_KB = 48 * 1024


def sanitized(binary):
    return b"__asan_init" in Path(binary).read_bytes()


def vm_hwm_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def summary(text):
    for line in text.splitlines():
        if line.startswith("summary-json: "):
            return json.loads(line[len("summary-json: "):])
    return None


def slow_pair(ack, limit=None):
    # tasks dealt round-robin: gen (task 1) in worker 0, slow (task 2) in
    # worker 1, so every tuple crosses; slow takes 1 ms a tuple
    args = {"size": TUPLE_BYTES, "ack": ack}
    if limit:
        args["limit"] = limit
    return {
        "name": "memory",
        "workers": 2,
        "config": {"topology.acker.executors": 1 if ack else 0, "topology.max.spout.pending": 100000},
        "spouts": [{"id": "gen", "class": "bench_spout", "args": args}],
        "bolts": [
            {"id": "slow", "class": "pass_through", "args": {"delay.ms": 1},
             "outputs": ["seq", "payload"], "inputs": [{"from": "gen", "grouping": "shuffle"}]},
            {"id": "sink", "class": "null_sink", "inputs": [{"from": "slow", "grouping": "shuffle"}]},
        ],
    }


def test_worker_rss_bounded_in_bytes_acking_off(streamd, streamd_bin):
    proc = streamd.start(slow_pair(ack=False), until_drained=False, extra=["--duration", "6"])
    peak = {}
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        for pid in worker_pids(proc.pid):
            peak[pid] = max(peak.get(pid, 0), vm_hwm_kb(pid))
        time.sleep(0.05)
    res = streamd.finish(proc, timeout=30)
    assert res.returncode == 0, res.explain()
    assert len(peak) == 2, f"saw workers {sorted(peak)}\n" + res.explain()
    s = summary(res.stdout)
    assert s, res.explain()
    comps = s["components"]
    emitted, consumed = comps["gen"]["emitted"], comps["slow"]["emitted"]
    assert consumed > 500, comps  # the pipeline did run
    # the spout was held back: a few MiB of 4 KiB tuples, not millions
    assert emitted - consumed < 20000, f"spout ran {emitted - consumed} tuples ahead: {comps}"
    if not sanitized(streamd_bin):
        worst = max(peak.values())
        assert worst < RSS_BOUND_KB, f"worker peak RSS {worst} kB over {RSS_BOUND_KB} kB: {peak}"


def test_nothing_lost_under_byte_backpressure_acking_on(streamd):
    n = 3000
    topo = slow_pair(ack=True, limit=n)
    # a small budget so the throttle switches on and off many times
    topo["config"].update({"topology.backpressure.high.watermark.bytes": 262144,
                           "topology.backpressure.low.watermark.bytes": 131072})
    res = streamd.run(topo, timeout=120)
    assert res.returncode == 0, res.explain()
    s = summary(res.stdout)
    assert s, res.explain()
    comps = s["components"]
    assert comps["gen"]["acked"] == n and comps["gen"]["failed"] == 0, comps
    assert comps["sink"]["acked"] == n, comps


def mapped_libraries(pid):
    """base names of the shared objects mapped into process pid."""
    names = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and ".so" in parts[5]:
                names.add(Path(parts[5]).name)
    return names


CONTROL_PLANE_LIBS = ("libcurl", "libmicrohttpd", "libarchive")


def test_workers_map_no_control_plane_library(streamd):
    """A worker is the executable alone: libcurl, libmicrohttpd, libarchive
    and what they pull in live in the roles module, which the local process
    (which does map them) loaded and the workers do not."""
    proc = streamd.start(slow_pair(ack=False), until_drained=False, extra=["--duration", "4"])
    seen = {}
    local_libs = set()
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline and len(seen) < 2:
        try:
            local_libs = mapped_libraries(proc.pid)
            for pid in worker_pids(proc.pid):
                seen[pid] = mapped_libraries(pid)
        except OSError:
            pass  # a process that ended meanwhile
        time.sleep(0.05)
    res = streamd.finish(proc, timeout=30)
    assert res.returncode == 0, res.explain()
    assert len(seen) == 2, f"saw workers {sorted(seen)}\n" + res.explain()
    # the check itself can see these libraries: the local process has them
    assert any(n.startswith("libcurl") for n in local_libs), sorted(local_libs)
    assert "streamd-roles.so" in local_libs, sorted(local_libs)
    for pid, libs in seen.items():
        bad = sorted(n for n in libs if n.startswith(CONTROL_PLANE_LIBS) or n == "streamd-roles.so")
        assert not bad, f"worker {pid} maps {bad}"
