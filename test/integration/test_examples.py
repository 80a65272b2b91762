"""The example user library, loaded with dlopen by the workers through the
shipped etc/topologies/examples.yaml."""
import re
from collections import Counter

from conftest import REPO, TOPOLOGIES, read_jsonl


def example_sentences():
    src = (REPO / "examples" / "sentence_spout.c").read_text()
    block = re.search(r"sentences\[\] = \{(.*?)\};", src, re.S).group(1)
    return re.findall(r'"([^"]*)"', block)


def test_examples_topology(streamd, examples_lib, tmp_path):
    sink = tmp_path / "examples.jsonl"
    text = (TOPOLOGIES / "examples.yaml").read_text()
    text, n = re.subn(r"(?m)^library: .*$", f"library: {examples_lib}", text)
    assert n == 1
    assert "/tmp/streamd-examples.jsonl" in text
    text = text.replace("/tmp/streamd-examples.jsonl", str(sink))
    count = int(re.search(r"count: (\d+)", text).group(1))
    res = streamd.run(streamd.write(text), timeout=120)
    assert res.returncode == 0, res.explain()

    sentences = example_sentences()
    assert len(sentences) >= 2
    got = Counter(row["sentence"] for row in read_jsonl(sink))
    expected = Counter(sentences[k % len(sentences)].upper() for k in range(count))
    assert not (expected - got), f"missing from the sink: {expected - got}"
    assert set(got) <= set(expected), f"unexpected sentences: {set(got) - set(expected)}"


def test_direct_grouping(streamd, examples_lib, tmp_path):
    """direct_router picks the task of each tuple itself (emit_direct); every
    tuple must arrive at exactly the task it was addressed to, across workers."""
    src = tmp_path / "input.txt"
    src.write_text("".join(f"value {i}\n" for i in range(300)))
    sink = tmp_path / "direct.jsonl"
    topo = {
        "name": "direct",
        "library": str(examples_lib),
        "workers": 2,
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [
            {"id": "router", "class": "direct_router", "parallelism": 2, "args": {"to": "sink"},
             "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "parallelism": 3,
             "args": {"path": str(sink), "task_field": True},
             "inputs": [{"from": "router", "stream": "routed", "grouping": "direct"}]},
        ],
    }
    res = streamd.run(topo, timeout=120)
    assert res.returncode == 0, res.explain()
    rows = read_jsonl(sink)
    assert {r["value"] for r in rows} == {f"value {i}" for i in range(300)}
    misrouted = [r for r in rows if r["target"] != r["__task"]]
    assert not misrouted, f"{len(misrouted)} tuples reached another task than addressed: {misrouted[:3]}"
    assert len({r["__task"] for r in rows}) == 3  # the router used every sink task
