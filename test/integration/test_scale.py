"""A very large topology: the shipped word count at 10,000 tasks over 2
workers (lines x 1 -> split x 2,000 -> count x 8,000 -> sink x 1). It must
start quickly, drain and count every word exactly, and each worker must stay
within cores + 4 threads (tasks run on a pool, not a thread each) and under
256 MiB RSS, read from /proc while it runs; its heartbeats cost a few bytes
a task. Time and memory bounds hold for
the default build only: the sanitizer build is several times slower and
bigger by design, so there only the counts and threads are checked."""
import json
import os
import re
import time
from collections import Counter
from pathlib import Path

from conftest import SENTENCES, TOPOLOGIES, read_jsonl, split_words, worker_pids

SPLIT, COUNT = 2000, 8000
HEARTBEAT_BYTES_PER_TASK = 40


def proc_status(pid):
    out = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            k, _, v = line.partition(":")
            if k in ("Threads", "VmHWM", "VmRSS"):
                out[k] = int(v.split()[0])
    except (OSError, ValueError):
        pass
    return out


def sanitized(binary):
    return b"__asan_init" in Path(binary).read_bytes()


def wide_wordcount(sink):
    text = (TOPOLOGIES / "wordcount.yaml").read_text()
    text = text.replace("{path: data/sentences.txt}", f"{{path: {SENTENCES}}}")
    text = text.replace("files: [data/sentences.txt]", "").replace("/tmp/streamd-wordcount.jsonl", str(sink))
    for comp, n in (("split_words", SPLIT), ("word_count", COUNT)):
        old = f"class: {comp}\n    parallelism: 2"
        assert old in text, f"wordcount.yaml: {comp} is not as this test expects"
        text = text.replace(old, f"class: {comp}\n    parallelism: {n}")
    return text


def test_wordcount_10000_tasks(streamd, streamd_bin, tmp_path):
    sink = tmp_path / "counts.jsonl"
    asan = sanitized(streamd_bin)
    cores = len(os.sched_getaffinity(0))
    launched = time.monotonic()
    proc = streamd.start(streamd.write(wide_wordcount(sink)), until_drained=True)
    peak = {}  # pid -> (threads, VmHWM kB)
    started_at = None
    deadline = launched + (600 if asan else 120)
    while proc.poll() is None and time.monotonic() < deadline:
        for pid in worker_pids(proc.pid):
            st = proc_status(pid)
            if st:
                th, hwm = peak.get(pid, (0, 0))
                peak[pid] = (max(th, st.get("Threads", 0)), max(hwm, st.get("VmHWM", 0)))
        if started_at is None:
            logs = [p.read_text(errors="replace") for p in streamd.local_dir.rglob("*.log")]
            if sum(len(re.findall(r"worker started: \d+ tasks", t)) for t in logs) >= 2:
                started_at = time.monotonic()
        time.sleep(0.05)
    res = streamd.finish(proc, timeout=30)
    assert res.returncode == 0, res.explain()
    assert '"drained":true' in res.stdout.replace(" ", ""), res.explain()

    # exact counts, as in test_wordcount
    expected = Counter()
    for line in SENTENCES.read_text(encoding="utf-8").split("\n"):
        expected.update(split_words(line))
    final = {}
    for row in read_jsonl(sink):
        final[row["word"]] = max(final.get(row["word"], 0), row["count"])
    assert final == dict(expected), f"{len(set(final) ^ set(expected))} words differ"

    # both workers seen, each with its tasks on a few threads
    assert len(peak) == 2, peak
    logs = "\n".join(p.read_text(errors="replace") for p in streamd.local_dir.rglob("*.log"))
    ntasks = sorted(int(n) for n in re.findall(r"worker started: (\d+) tasks", logs))
    assert sum(ntasks) == 1 + SPLIT + COUNT + 1 + 1, ntasks  # + the acker
    for pid, (threads, hwm_kb) in peak.items():
        assert 0 < threads <= cores + 4, f"worker {pid}: {threads} threads with {cores} cores"
        if not asan:
            assert hwm_kb < 256 * 1024, f"worker {pid}: peak RSS {hwm_kb} kB"
    # heartbeats scale with tasks: each worker's last one (the run's final
    # counts) costs a few bytes a task (it was ~200 with a JSON object per task)
    beats = [(int(b), int(n)) for b, n in re.findall(r"last heartbeat: (\d+) bytes for (\d+) tasks", logs)]
    assert len(beats) == 2, beats
    for nbytes, n in beats:
        assert n > 0 and nbytes <= HEARTBEAT_BYTES_PER_TASK * n, f"heartbeat of {nbytes} bytes for {n} tasks"
    assert started_at is not None, "the workers never logged that they started"
    if not asan:
        assert started_at - launched < 5, f"workers started {started_at - launched:.1f} s after launch"


def test_ticks_and_acks_not_starved_on_one_thread(streamd, tmp_path):
    """One executor thread, a spout flooding a pipeline as fast as it can
    (acking on, trees failing after 3 s): the acker and a bolt that only
    gets tick tuples must still have their turns, so no tree times out and
    ticks arrive about once a second."""
    sink = tmp_path / "ticks.jsonl"
    topo = {
        "name": "starve",
        "workers": 1,
        "config": {"worker.executor.threads": 1, "topology.tick.tuple.freq.secs": 1,
                   "topology.message.timeout.secs": 3, "topology.max.spout.pending": 50000},
        "spouts": [{"id": "gen", "class": "bench_spout", "args": {"ack": True}},
                   {"id": "one", "class": "bench_spout", "args": {"limit": 1, "ack": False}}],
        "bolts": [
            {"id": "relay", "class": "pass_through", "outputs": ["seq", "payload"],
             "inputs": [{"from": "gen", "grouping": "shuffle"}]},
            {"id": "sink", "class": "null_sink", "inputs": [{"from": "relay", "grouping": "shuffle"}]},
            {"id": "ticked", "class": "file_sink", "args": {"path": str(sink), "ticks": True},
             "inputs": [{"from": "one", "grouping": "shuffle"}]},
        ],
    }
    res = streamd.run(topo, until_drained=False, extra=["--duration", "6"], timeout=60)
    assert res.returncode == 0, res.explain()
    assert "on 1 executor threads" in res.worker_logs(), res.explain()
    line = next(l for l in res.stdout.splitlines() if l.startswith("summary-json: "))
    comps = json.loads(line[len("summary-json: "):])["components"]
    assert comps["gen"]["acked"] > 10000, comps  # the flood ran, and its acks came back
    assert comps["gen"]["failed"] == 0, comps    # no tree waited 3 s for the acker
    ticks = [r for r in read_jsonl(sink) if r.get("__tick")]
    assert 3 <= len(ticks) <= 7, f"{len(ticks)} ticks in 6 s"


def test_workers_on_one_host_share_its_cpus(streamd, tmp_path):
    """Without worker.executor.threads, a topology's workers on one host
    split its CPUs among their pools (more threads than cores would only
    wait for one another); a worker alone on its host takes them all."""
    cpus = len(os.sched_getaffinity(0))
    forced = os.environ.get("STREAMD_EXECUTOR_THREADS")  # tools/test --threads
    for workers in (1, 2):
        topo = {
            "name": f"share{workers}",
            "workers": workers,
            "spouts": [{"id": "gen", "class": "bench_spout", "parallelism": workers,
                        "args": {"limit": 1000, "ack": True}}],
            "bolts": [{"id": "sink", "class": "null_sink", "parallelism": workers,
                       "inputs": [{"from": "gen", "grouping": "shuffle"}]}],
        }
        res = streamd.run(topo, timeout=60)
        assert res.returncode == 0, res.explain()
        logs = "".join(p.read_text(errors="replace") for p in Path(res.local_dir).rglob("*.log"))
        counts = [m.group(1) for line in logs.splitlines() if f"topology=share{workers}-" in line
                  for m in [re.search(r"worker started: \d+ tasks on (\d+) executor threads", line)] if m]
        expect = int(forced) if forced else max(1, cpus // workers)
        assert counts == [str(expect)] * workers, f"{workers} worker(s) on {cpus} CPUs: {counts}\n{res.explain()}"
