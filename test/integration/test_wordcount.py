"""Word count end to end: the shipped etc/topologies/wordcount.yaml (2 workers,
acking on) over the shipped sample text; the final count of every word must
equal the count computed here with the same split rule."""
from collections import Counter

from conftest import SENTENCES, TOPOLOGIES, read_jsonl, split_words


def test_wordcount_matches_python(streamd, tmp_path):
    sink = tmp_path / "wordcount.jsonl"
    text = (TOPOLOGIES / "wordcount.yaml").read_text()
    assert "{path: data/sentences.txt}" in text and "/tmp/streamd-wordcount.jsonl" in text
    text = text.replace("{path: data/sentences.txt}", f"{{path: {SENTENCES}}}")
    text = text.replace("files: [data/sentences.txt]", "").replace("/tmp/streamd-wordcount.jsonl", str(sink))
    res = streamd.run(streamd.write(text), timeout=180)
    assert res.returncode == 0, res.explain()

    expected = Counter()
    for line in SENTENCES.read_text(encoding="utf-8").split("\n"):
        expected.update(split_words(line))
    assert len(expected) > 50  # the sample text is not trivial

    final = {}
    for row in read_jsonl(sink):
        assert set(row) == {"word", "count"}, row
        final[row["word"]] = max(final.get(row["word"], 0), row["count"])
    missing = sorted(set(expected) - set(final))
    extra = sorted(set(final) - set(expected))
    assert not missing and not extra, f"missing {missing[:10]}, unexpected {extra[:10]}"
    wrong = {w: (final[w], expected[w]) for w in expected if final[w] != expected[w]}
    assert not wrong, f"(got, expected) for {len(wrong)} words, e.g. {list(wrong.items())[:10]}"
