"""Operator chaining (topology.chaining): bolts fed only by a forward
grouping from a task of the same worker run inside that task's slices,
without a queue. The word count gives the same exact counts with chaining
on and off, every tuple is executed by the same components either way, and
the worker says how many tasks it chained."""
import json
from collections import Counter
from pathlib import Path

from conftest import SENTENCES, read_jsonl, split_words

PYTHON = "/usr/bin/python3"
ML_DIR = Path(__file__).resolve().parent / "multilang"


def topology(sink, chaining, workers=1, relay_grouping="forward"):
    return {
        "name": "chained",
        "workers": workers,
        "config": {"topology.chaining": chaining, "topology.max.spout.pending": 500},
        "spouts": [{"id": "lines", "class": "file_lines", "parallelism": 2, "args": {"path": str(SENTENCES)}}],
        "bolts": [
            {"id": "relay", "class": "pass_through", "parallelism": 2, "outputs": ["line"],
             "inputs": [{"from": "lines", "grouping": relay_grouping}]},
            {"id": "split", "class": "split_words", "parallelism": 2,
             "inputs": [{"from": "relay", "grouping": "forward"}]},
            {"id": "count", "class": "word_count", "parallelism": 2,
             "inputs": [{"from": "split", "grouping": "fields", "fields": ["word"]}]},
            {"id": "sink", "class": "file_sink", "args": {"path": str(sink)},
             "inputs": [{"from": "count", "grouping": "shuffle"}]},
        ],
    }


def components(res):
    """the per-component figures of local mode's summary-json line"""
    line = next(l for l in res.stdout.splitlines() if l.startswith("summary-json: "))
    return json.loads(line[len("summary-json: "):])["components"]


def run_counts(streamd, tmp_path, chaining, workers=1, relay_grouping="forward"):
    sink = tmp_path / f"counts-{chaining}-{workers}-{relay_grouping}.jsonl"
    res = streamd.run(topology(sink, chaining, workers, relay_grouping), timeout=120)
    assert res.returncode == 0, res.explain()
    final = {}
    for row in read_jsonl(sink):
        final[row["word"]] = max(final.get(row["word"], 0), row["count"])
    return final, components(res), res.worker_logs()


def test_chaining_on_and_off_count_the_same(streamd, tmp_path):
    expected = Counter()
    for line in SENTENCES.read_text(encoding="utf-8").split("\n"):
        expected.update(split_words(line))
    # off first: both runs' worker logs stay in the same local dir
    off, comps_off, logs_off = run_counts(streamd, tmp_path, False)
    assert "run chained" not in logs_off
    on, comps_on, logs_on = run_counts(streamd, tmp_path, True)
    assert off == dict(expected)
    assert on == dict(expected)
    # relay and split (2 tasks each) chained to the spout tasks when on
    assert "4 tasks run chained" in logs_on, logs_on
    # the summary says which component runs inside which, only when on
    assert comps_on["relay"].get("chained_into") == "lines", comps_on["relay"]
    assert comps_on["split"].get("chained_into") == "relay", comps_on["split"]
    assert comps_on["relay"]["chained_tasks"] == 2 and comps_on["split"]["chained_tasks"] == 2
    assert all("chained_into" not in comps_on[c] for c in ("lines", "count", "sink")), comps_on
    assert all("chained_into" not in c for c in comps_off.values()), comps_off
    for comp in ("lines", "relay", "split", "count"):
        assert comps_on[comp]["acked"] == comps_off[comp]["acked"], (comp, comps_on[comp], comps_off[comp])
        assert comps_on[comp]["failed"] == 0 and comps_off[comp]["failed"] == 0


def test_forward_across_workers(streamd, tmp_path):
    """Over two workers the pairs of a forward grouping that fall in
    different workers go through the transport; the counts stay exact."""
    expected = Counter()
    for line in SENTENCES.read_text(encoding="utf-8").split("\n"):
        expected.update(split_words(line))
    counts, _, _ = run_counts(streamd, tmp_path, True, workers=2)
    assert counts == dict(expected)


def test_local_or_shuffle_chained_one_to_one(streamd, tmp_path):
    """local_or_shuffle chains where each worker runs as many relay tasks as
    lines tasks (paired 1:1, every tuple still goes to a task of its own
    worker): in one worker and over two (one pair in each), with the same
    exact counts as without chaining."""
    expected = Counter()
    for line in SENTENCES.read_text(encoding="utf-8").split("\n"):
        expected.update(split_words(line))
    for workers in (1, 2):
        counts, comps, logs = run_counts(streamd, tmp_path, True, workers, "local-or-shuffle")
        assert counts == dict(expected), workers
        assert comps["relay"].get("chained_into") == "lines", (workers, comps["relay"])
        assert comps["relay"]["chained_tasks"] == 2, (workers, comps["relay"])
        assert comps["relay"]["acked"] == comps["lines"]["acked"] and comps["relay"]["failed"] == 0, comps


def test_chain_without_ackers(streamd, tmp_path):
    """With acking off, a chain hands each tuple on by its shortest path
    (no grouping, batch or anchors). A word count through it counts
    exactly; an emit whose values do not fit the stream is refused there
    with the stream named and delivers nothing, and a multi-lang bolt in
    the chain gets the chained task as its emits' task ids."""
    expected = Counter()
    for line in SENTENCES.read_text(encoding="utf-8").split("\n"):
        expected.update(split_words(line))
    topo = topology(tmp_path / "counts.jsonl", True)
    topo["config"]["topology.acker.executors"] = 0
    res = streamd.run(topo, timeout=120)
    assert res.returncode == 0, res.explain()
    final = {}
    for row in read_jsonl(tmp_path / "counts.jsonl"):
        final[row["word"]] = max(final.get(row["word"], 0), row["count"])
    assert final == dict(expected)
    assert "4 tasks run chained" in res.worker_logs()

    src = tmp_path / "input.txt"
    src.write_text("".join(f"line {i:04d}\n" for i in range(500)))
    rep = tmp_path / "report.jsonl"
    res = streamd.run({
        "name": "chained-ml",
        "workers": 1,
        "config": {"topology.acker.executors": 0},
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [
            {"id": "relay", "command": [PYTHON, "chained_bolt.py", str(rep)], "resources": str(ML_DIR),
             "outputs": ["line"], "inputs": [{"from": "lines", "grouping": "forward"}]},
            {"id": "sink", "class": "file_sink", "args": {"path": str(tmp_path / "sink.jsonl")},
             "inputs": [{"from": "relay", "grouping": "forward"}]},
        ],
    }, timeout=120)
    assert res.returncode == 0, res.explain()
    got = sorted(row["line"] for row in read_jsonl(tmp_path / "sink.jsonl"))
    assert got == [f"line {i:04d}" for i in range(500)]
    rows = read_jsonl(rep)
    assert [r["ids"] for r in rows if r["kind"] == "ids"] == [[3]], rows[:5]  # sink: task 3
    refused = [r for r in rows if r["kind"] == "refused"]
    assert len(refused) == 50 and all(r["ids"] == [] for r in refused), refused[:3]
    comps = components(res)
    assert comps["relay"].get("chained_into") == "lines" and comps["sink"].get("chained_into") == "relay", comps
    logs = "".join(p.read_text(errors="replace") for p in Path(res.local_dir).rglob("*.log") if "chained-ml" in str(p))
    assert logs.count("emit of 2 values on stream 'default' that declares 1 fields") == 50


def test_chained_bolt_keeps_its_input(streamd, examples_lib, tmp_path):
    """A chained bolt that keeps its input past the callback
    (`batch_relay`: sd_tuple_retain, a hundred at a time) hands on every
    line intact. With acking off a chained task's input borrows the
    emitter's values (file_lines' read buffer, refilled every 64 KiB), so
    a kept one must get data of its own; with acking on the same topology
    acks every line."""
    src = tmp_path / "input.txt"
    lines = [f"line {i:05d} " + "abcdefghij"[i % 10] * (40 + i % 23) for i in range(4000)]
    src.write_text("".join(l + "\n" for l in lines))
    assert src.stat().st_size > 3 * 65536
    for ackers in (0, 1):
        sink = tmp_path / f"sink-{ackers}.jsonl"
        res = streamd.run({
            "name": f"keeps-{ackers}",
            "workers": 1,
            "library": str(examples_lib),
            "config": {"topology.acker.executors": ackers, "topology.max.spout.pending": 1000},
            "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
            "bolts": [
                {"id": "hold", "class": "batch_relay", "args": {"batch": 100},
                 "inputs": [{"from": "lines", "grouping": "forward"}]},
                {"id": "sink", "class": "file_sink", "args": {"path": str(sink)},
                 "inputs": [{"from": "hold", "grouping": "forward"}]},
            ],
        }, timeout=120)
        assert res.returncode == 0, res.explain()
        assert [row["line"] for row in read_jsonl(sink)] == lines, ackers
        comps = components(res)
        assert comps["hold"].get("chained_into") == "lines" and comps["sink"].get("chained_into") == "hold", comps
        if ackers:
            assert comps["lines"]["acked"] == len(lines) and comps["lines"]["failed"] == 0, comps["lines"]


def test_chained_failures_are_replayed(streamd, examples_lib, tmp_path):
    """With acking on, a chain whose first bolt fails a fifth of its input
    (`fail_randomly`) and whose second keeps what passes for a while
    (`batch_relay`, acked after the call that handed it over): every
    failed line is replayed by the spout, and every line reaches the sink
    and is acked once its tree completes."""
    src = tmp_path / "input.txt"
    lines = [f"row {i:05d}" for i in range(3000)]
    src.write_text("".join(l + "\n" for l in lines))
    sink = tmp_path / "sink.jsonl"
    res = streamd.run({
        "name": "chain-replay",
        "workers": 1,
        "library": str(examples_lib),
        "config": {"topology.max.spout.pending": 200, "topology.message.timeout.secs": 30},
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [
            {"id": "flaky", "class": "fail_randomly", "args": {"rate": 0.2}, "outputs": ["line"],
             "inputs": [{"from": "lines", "grouping": "forward"}]},
            {"id": "hold", "class": "batch_relay", "args": {"batch": 10},
             "inputs": [{"from": "flaky", "grouping": "forward"}]},
            {"id": "sink", "class": "file_sink", "args": {"path": str(sink)},
             "inputs": [{"from": "hold", "grouping": "forward"}]},
        ],
    }, timeout=120)
    assert res.returncode == 0, res.explain()
    got = [row["line"] for row in read_jsonl(sink)]
    assert sorted(set(got)) == lines
    comps = components(res)
    assert [comps[c].get("chained_into") for c in ("flaky", "hold", "sink")] == ["lines", "flaky", "hold"], comps
    assert comps["lines"]["acked"] == len(lines) and comps["lines"]["failed_final"] == 0, comps["lines"]
    assert comps["lines"]["failed"] > 300, comps["lines"]  # replays happened: about a fifth failed
    assert len(got) == len(lines), len(got)  # a line that reached the sink was never failed after it
