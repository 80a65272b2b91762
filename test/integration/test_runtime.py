"""Worker runtime behaviour seen from outside: tick tuples, and backpressure
that stops the spouts instead of dropping or growing without bound, inside
one worker (bounded queues) and across workers (throttle frames)."""
import json
import socket

from conftest import read_jsonl


def summary(res):
    for line in res.stdout.splitlines():
        if line.startswith("summary-json: "):
            return json.loads(line[len("summary-json: "):])
    raise AssertionError("no summary-json line\n" + res.explain())


def test_tick_tuples_reach_every_bolt_task(streamd, tmp_path):
    sink = tmp_path / "ticks.jsonl"
    topo = {
        "name": "ticks",
        "workers": 2,
        "config": {"topology.tick.tuple.freq.secs": 1},
        "spouts": [{"id": "gen", "class": "bench_spout", "args": {"limit": 1, "ack": False}}],
        "bolts": [{"id": "sink", "class": "file_sink", "parallelism": 2,
                   "args": {"path": str(sink), "ticks": True},
                   "inputs": [{"from": "gen", "grouping": "shuffle"}]}],
    }
    res = streamd.run(topo, until_drained=False, extra=["--duration", "5"], timeout=60)
    assert res.returncode == 0, res.explain()
    ticks = [r for r in read_jsonl(sink) if r.get("__tick")]
    per_task = {}
    for r in ticks:
        per_task[r["__task"]] = per_task.get(r["__task"], 0) + 1
    assert len(per_task) == 2, f"ticks per task: {per_task}"
    # 5 s at one tick a second, minus start-up and the stop
    assert all(2 <= n <= 6 for n in per_task.values()), f"ticks per task: {per_task}"


def slow_pipeline(workers, conf):
    # a spout with no acking and no limit feeding a bolt that takes 1 ms a
    # tuple: only backpressure keeps the spout from running away
    return {
        "name": "slow",
        "workers": workers,
        "config": dict({"topology.acker.executors": 0}, **conf),
        "spouts": [{"id": "gen", "class": "bench_spout", "args": {"ack": False}}],
        "bolts": [
            {"id": "slow", "class": "pass_through", "args": {"delay.ms": 1},
             "outputs": ["seq", "payload"], "inputs": [{"from": "gen", "grouping": "shuffle"}]},
            {"id": "sink", "class": "null_sink", "inputs": [{"from": "slow", "grouping": "shuffle"}]},
        ],
    }


def assert_spout_held_back(res, bound):
    s = summary(res)["components"]
    emitted, consumed = s["gen"]["emitted"], s["slow"]["emitted"]
    assert consumed > 500, s  # the pipeline did run
    # what the spout got ahead of the slow bolt is bounded by the buffers
    assert emitted - consumed <= bound, f"spout ran {emitted - consumed} tuples ahead: {s}"


def test_backpressure_inside_one_worker(streamd):
    res = streamd.run(slow_pipeline(1, {"topology.executor.receive.buffer.size": 1024}),
                      until_drained=False, extra=["--duration", "4"], timeout=60)
    assert res.returncode == 0, res.explain()
    # the bolt's ring holds 1024 tuples; add the spout's own batch
    assert_spout_held_back(res, 1024 + 2 * 64)


def test_backpressure_across_workers(streamd):
    conf = {
        "topology.executor.receive.buffer.size": 1024,
        "topology.backpressure.high.watermark": 2000,
        "topology.backpressure.low.watermark": 500,
        "worker.transfer.max.buffered.bytes": 65536,
    }
    # gen is task 1 (worker 0), slow task 2 (worker 1): every tuple crosses
    res = streamd.run(slow_pipeline(2, conf), until_drained=False, extra=["--duration", "5"], timeout=60)
    assert res.returncode == 0, res.explain()
    logs = res.worker_logs()
    assert "backpressure on" in logs, "the receiving worker never asked the spouts to pause"
    # ring + watermark + sender buffer + what the kernel's loopback socket
    # buffers (several MB, ~150 bytes a tuple) held before the throttle
    # frame arrived; unthrottled, the spout makes millions in 5 s
    assert_spout_held_back(res, 200000)


def counted_pipeline(tmp_path, workers, n):
    sink = tmp_path / "sink.jsonl"
    return sink, {
        "name": "hosts",
        "workers": workers,
        "config": {"topology.acker.executors": 1},
        "spouts": [{"id": "gen", "class": "bench_spout", "args": {"limit": n}}],
        "bolts": [{"id": "sink", "class": "file_sink", "parallelism": 2, "args": {"path": str(sink)},
                   "inputs": [{"from": "gen", "grouping": "shuffle"}]}],
    }


def test_worker_host_may_be_a_name(streamd, tmp_path):
    # two workers that listen on and dial this machine's name (resolved by
    # each worker; "localhost" alone was special-cased before): every tuple
    # crosses between them
    sink, topo = counted_pipeline(tmp_path, 2, 2000)
    res = streamd.run(topo, conf={"worker.host": socket.gethostname()}, timeout=60)
    assert res.returncode == 0, res.explain()
    assert sorted(r["seq"] for r in read_jsonl(sink)) == list(range(2000))


def test_worker_host_that_does_not_resolve_is_refused(streamd, tmp_path):
    _, topo = counted_pipeline(tmp_path, 2, 10)
    res = streamd.run(topo, conf={"worker.host": "no-such-host.invalid"}, timeout=30)
    assert res.returncode != 0, res.explain()
    assert "worker.host 'no-such-host.invalid' does not resolve" in res.stderr, res.explain()
    assert "started worker" not in res.stderr, res.explain()


def test_worker_with_a_stuck_task_exits_non_zero(streamd, tmp_path):
    # the bolt sleeps in execute far past task.cleanup.timeout.sec: the
    # worker leaves it behind at the stop and says so in its exit status
    topo = {
        "name": "stuck",
        "workers": 1,
        "config": {"topology.acker.executors": 0, "task.cleanup.timeout.sec": 1},
        "spouts": [{"id": "gen", "class": "bench_spout", "args": {"ack": False, "limit": 5}}],
        "bolts": [{"id": "stuck", "class": "pass_through", "args": {"delay.ms": 600000},
                   "outputs": ["seq", "payload"], "inputs": [{"from": "gen", "grouping": "shuffle"}]}],
    }
    res = streamd.run(topo, until_drained=False, extra=["--duration", "2"], timeout=60)
    assert "exited with status 3" in res.stderr, res.explain()
    assert "did not stop; exiting without it" in res.worker_logs(), res.explain()
