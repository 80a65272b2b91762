"""Multi-lang components (Storm's multi-lang protocol over a child's stdin and
stdout): the shipped word count with its split step in Python must count
exactly what the all-C word count counts."""
from collections import Counter

from conftest import SENTENCES, TOPOLOGIES, read_jsonl, split_words

PYTHON = "/usr/bin/python3"


def final_counts(sink):
    final = {}
    for row in read_jsonl(sink):
        assert set(row) == {"word", "count"}, row
        final[row["word"]] = max(final.get(row["word"], 0), row["count"])
    return final


def shipped(name, sink):
    """A shipped topology's text, reading the sample text and writing sink."""
    text = (TOPOLOGIES / name).read_text()
    assert "{path: data/sentences.txt}" in text
    text = text.replace("{path: data/sentences.txt}", f"{{path: {SENTENCES}}}")
    text = text.replace("resources: multilang", f"resources: {TOPOLOGIES / 'multilang'}")
    text = text.replace("/tmp/streamd-wordcount-python.jsonl", str(sink))
    text = text.replace("/tmp/streamd-wordcount.jsonl", str(sink))
    lines = [ln for ln in text.splitlines() if not ln.startswith("files:")]
    return "\n".join(lines) + "\n"


def test_python_split_counts_as_c(streamd, tmp_path):
    py_text = shipped("wordcount-python.yaml", tmp_path / "py.jsonl")
    assert f"command: [{PYTHON}, split_words.py]" in py_text
    res = streamd.run(streamd.write(py_text, "py.yaml"), timeout=180)
    assert res.returncode == 0, res.explain()
    c_res = streamd.run(streamd.write(shipped("wordcount.yaml", tmp_path / "c.jsonl"), "c.yaml"), timeout=180)
    assert c_res.returncode == 0, c_res.explain()

    py, c = final_counts(tmp_path / "py.jsonl"), final_counts(tmp_path / "c.jsonl")
    expected = Counter()
    for line in SENTENCES.read_text(encoding="utf-8").split("\n"):
        expected.update(split_words(line))
    assert len(expected) > 50
    assert c == dict(expected), "the all-C word count itself is off"
    diff = {w: (py.get(w), c.get(w)) for w in set(py) | set(c) if py.get(w) != c.get(w)}
    assert not diff, f"(python, C) counts differ for {len(diff)} words, e.g. {list(diff.items())[:10]}"
