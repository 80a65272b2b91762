"""The example user library, loaded with dlopen by the workers through the
shipped etc/topologies/examples.yaml."""
import re
from collections import Counter

from conftest import REPO, TOPOLOGIES, read_jsonl


def example_sentences():
    src = (REPO / "src" / "examples" / "sentence_spout.c").read_text()
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
