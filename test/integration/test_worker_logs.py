"""Worker logs: the worker's own lines, tagged, go to
<local dir>/logs/<topology-id>/worker-<port>.log whatever
worker.stdout.redirect says; what components write to stdout/stderr goes to
that log (log), to worker-<port>.out (file) or nowhere (null)."""
import pytest

from conftest import read_jsonl

NLINES = 50


def print_topology(tmp_path):
    src = tmp_path / "input.txt"
    src.write_text("".join(f"text {i}\n" for i in range(NLINES)))
    return {
        "name": "printer",
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [
            {"id": "say", "class": "pass_through", "args": {"print": True}, "outputs": ["line"],
             "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "args": {"path": str(tmp_path / "sink.jsonl")},
             "inputs": [{"from": "say", "grouping": "shuffle"}]},
        ],
    }


def files(local_dir, suffix):
    return sorted((local_dir / "logs").rglob(f"worker-*{suffix}"))


@pytest.mark.parametrize("mode", ["log", "file", "null"])
def test_stdout_redirect(streamd, tmp_path, mode):
    res = streamd.run(print_topology(tmp_path), conf={"worker.stdout.redirect": mode})
    assert res.returncode == 0, res.explain()
    assert len(read_jsonl(tmp_path / "sink.jsonl")) == NLINES
    [log] = files(streamd.local_dir, ".log")
    text = log.read_text()
    # the worker's own lines are in its log in every mode, with their tags
    assert "worker started" in text
    assert " INFO [cluster=default host=" in text and "topology=printer-" in text and "worker=127.0.0.1:" in text
    outs = files(streamd.local_dir, ".out")
    printed = [f"stdout: text {i}" for i in range(NLINES)]
    if mode == "log":
        assert all(p in text for p in printed) and "stderr: task" in text
        assert not outs
    elif mode == "file":
        [out] = outs
        assert out.name == log.name.replace(".log", ".out")
        otext = out.read_text()
        assert all(p in otext for p in printed) and "stderr: task" in otext
        assert "stdout:" not in text and "stderr: task" not in text
    else:
        assert "stdout:" not in text and "stderr: task" not in text
        assert not outs
