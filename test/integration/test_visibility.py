"""Only the public API (include/streamd/) is exported by the streamd binary:
a component library that defines functions named like streamd internals
(queue_new, conf_int, now_ns) must call its own definitions."""
import subprocess
from pathlib import Path

from conftest import read_jsonl


def test_library_with_internal_names(streamd, streamd_bin, tmp_path):
    lib = Path(streamd_bin).parent / "test" / "unit" / "libclash.so"
    assert lib.exists(), f"{lib} is not built"
    src = tmp_path / "input.txt"
    src.write_text("".join(f"line {i}\n" for i in range(200)))
    sink = tmp_path / "out.jsonl"
    topo = {
        "name": "clash",
        "library": str(lib),
        "workers": 2,
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [
            {"id": "check", "class": "clash_check", "parallelism": 2,
             "inputs": [{"from": "lines", "grouping": "shuffle"}]},
            {"id": "sink", "class": "file_sink", "args": {"path": str(sink)},
             "inputs": [{"from": "check", "grouping": "shuffle"}]},
        ],
    }
    res = streamd.run(topo, timeout=120)
    assert res.returncode == 0, res.explain()
    rows = read_jsonl(sink)
    assert {r["line"] for r in rows} == {f"line {i}" for i in range(200)}
    wrong = [r for r in rows if r["result"] != "own"]
    assert not wrong, f"{len(wrong)} calls bound to streamd's internals, e.g. {wrong[:2]}"


def test_only_public_symbols_exported(streamd_bin):
    out = subprocess.run(["nm", "-D", "--defined-only", str(streamd_bin)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    names = [line.split()[-1] for line in out.stdout.splitlines() if line.split()[1] in "TDBRVW"]
    # the linker's own symbols and copy-relocated libc variables (name@VERSION) are not ours
    linker = {"data_start", "_edata", "_end", "__bss_start", "_IO_stdin_used", "__data_start", "_init", "_fini", "_start"}
    # "__" names belong to the compiler's runtime (e.g. the sanitizers')
    internal = [n for n in names if not n.startswith(("sd_", "streamd_", "__")) and "@" not in n and n not in linker]
    assert sum(n.startswith("sd_") for n in names) >= 30, "the public API is not exported"
    assert not internal, f"{len(internal)} internal symbols exported, e.g. {internal[:10]}"
