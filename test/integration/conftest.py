"""Fixtures for the integration tests: they drive the real `streamd` binary in
local mode (`--role=local`), with real worker processes, on 127.0.0.1 only.

STREAMD_BIN names the binary (default: <repo>/build/streamd); the example
library is looked up next to it (<builddir>/examples/).
"""
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOPOLOGIES = REPO / "etc" / "topologies"
SENTENCES = TOPOLOGIES / "data" / "sentences.txt"


# ---- a tiny YAML writer: enough for topologies, no PyYAML needed ---------

def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    # YAML double-quoted scalars accept JSON string escapes
    return json.dumps(str(v))


def to_yaml(obj, indent=0):
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 2))
            elif isinstance(v, (dict, list)):
                out.append(f"{pad}{k}: {'{}' if isinstance(v, dict) else '[]'}")
            else:
                out.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict) and v:
                body = to_yaml(v, indent + 2).splitlines()
                out.append(f"{pad}- {body[0].lstrip()}")
                out.extend(body[1:])
            elif isinstance(v, list):
                out.append(f"{pad}- [{', '.join(_scalar(x) for x in v)}]")
            else:
                out.append(f"{pad}- {_scalar(v)}")
    else:
        out.append(pad + _scalar(obj))
    return "\n".join(out)


# ---- helpers --------------------------------------------------------------

def free_ports(n):
    """n distinct ports that were free on 127.0.0.1 a moment ago."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def read_jsonl(path):
    """Every JSON object line of a sink file (missing file: no lines)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                raise AssertionError(f"{path}:{n}: not a JSON line ({e}): {line!r}")
    return rows


def wait_for(cond, timeout, interval=0.1, what="condition"):
    """Polls cond() until it returns a true value (returned) or the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def process_exited(pid):
    """True when pid has exited: gone, or a zombie its parent has not reaped
    (it may be reaped between any check and a read of /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return stat[stat.rindex(")") + 2:].split()[0] == "Z"
    except (OSError, ValueError):
        return True


def worker_pids(local_pid):
    """pids of live `--role=worker` processes whose parent is local_pid."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            # the command name may contain spaces: fields follow the last ')'
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid != local_pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            continue  # exited meanwhile
        if b"--role=worker" in argv:
            pids.append(int(entry))
    return sorted(pids)


SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "WARNING: ThreadSanitizer")


class Result:
    def __init__(self, returncode, stdout, stderr, local_dir):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.local_dir = local_dir
        self.assert_no_sanitizer_report()

    def assert_no_sanitizer_report(self):
        """With the sanitizer build a report in streamd or in any worker (which
        the node would just restart) fails the test."""
        texts = [("stdout", self.stdout or ""), ("stderr", self.stderr or "")]
        for p in sorted(Path(self.local_dir).rglob("*.log")) if Path(self.local_dir).exists() else []:
            texts.append((str(p), p.read_text(errors="replace")))
        for where, text in texts:
            for marker in SANITIZER_REPORTS:
                i = text.find(marker)
                if i >= 0:
                    raise AssertionError(f"sanitizer report in {where}:\n{text[max(0, i - 200):i + 3000]}")

    def worker_logs(self):
        """Text of every worker log under the local dir (for diagnostics)."""
        out = []
        for p in sorted(Path(self.local_dir).rglob("*.log")):
            try:
                out.append(f"--- {p}\n{p.read_text(errors='replace')[-4000:]}")
            except OSError:
                pass
        return "\n".join(out)

    def explain(self):
        return (f"exit {self.returncode}\n--- stdout\n{self.stdout[-4000:]}\n"
                f"--- stderr\n{self.stderr[-4000:]}\n{self.worker_logs()}")


class Runner:
    """Writes topologies into tmp_path and runs them in local mode."""

    def __init__(self, binary, tmp_path):
        self.binary = binary
        self.tmp_path = tmp_path
        self.local_dir = tmp_path / "local"

    def write(self, topo, name="T.yaml"):
        path = self.tmp_path / name
        path.write_text(topo if isinstance(topo, str) else to_yaml(topo) + "\n")
        return path

    def command(self, topo_path, until_drained=True, conf=None, nports=4, extra=()):
        ports = ",".join(str(p) for p in free_ports(nports))
        cmd = [str(self.binary), "--role=local", str(topo_path)]
        if until_drained:
            cmd.append("--until-drained")
        cmd += ["-c", f"streamd.local.dir={self.local_dir}", "-c", f"supervisor.slots.ports={ports}"]
        for k, v in (conf or {}).items():
            text = ("true" if v else "false") if isinstance(v, bool) else str(v)
            cmd += ["-c", f"{k}={text}"]
        return cmd + list(extra)

    def run(self, topo, timeout=120, **kw):
        """Runs to completion (--until-drained by default); kills it at timeout."""
        path = topo if isinstance(topo, Path) else self.write(topo)
        proc = subprocess.Popen(self.command(path, **kw), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            out, err = proc.communicate()
            raise AssertionError(f"streamd did not finish within {timeout}s\n"
                                 + Result(None, out, err, self.local_dir).explain())
        return Result(proc.returncode, out, err, self.local_dir)

    def start(self, topo, **kw):
        """Starts in the background; the caller must finish() it."""
        path = topo if isinstance(topo, Path) else self.write(topo)
        self.stdout_path = self.tmp_path / "streamd.stdout"
        self.stderr_path = self.tmp_path / "streamd.stderr"
        # files, not pipes: nobody reads them while the test polls
        with open(self.stdout_path, "w") as o, open(self.stderr_path, "w") as e:
            return subprocess.Popen(self.command(path, **kw), stdout=o, stderr=e, text=True,
                                    start_new_session=True)

    def finish(self, proc, timeout=120):
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            raise AssertionError(f"streamd did not finish within {timeout}s\n" + self.result(proc).explain())
        return self.result(proc)

    def result(self, proc):
        return Result(proc.returncode, self.stdout_path.read_text(errors="replace"),
                      self.stderr_path.read_text(errors="replace"), self.local_dir)


def stop_group(proc):
    """Kills streamd and its workers (its own process group) and reaps it."""
    for pid in worker_pids(proc.pid):  # in case a worker left the group
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


@pytest.fixture(scope="session")
def streamd_bin():
    path = Path(os.environ.get("STREAMD_BIN", REPO / "build" / "streamd")).resolve()
    if not os.access(path, os.X_OK):
        pytest.fail(f"streamd binary not found at {path} (build it, or set STREAMD_BIN)")
    return path


@pytest.fixture(scope="session")
def examples_lib(streamd_bin):
    path = streamd_bin.parent / "examples" / "libstreamd_examples.so"
    if not path.exists():
        pytest.fail(f"example library not found at {path} (build it with ninja)")
    return path


@pytest.fixture
def streamd(streamd_bin, tmp_path):
    runner = Runner(streamd_bin, tmp_path)
    procs = []
    orig_start = runner.start

    def start(*a, **kw):
        p = orig_start(*a, **kw)
        procs.append(p)
        return p

    runner.start = start
    yield runner
    for p in procs:  # never leave a local cluster behind a failed test
        if p.poll() is None:
            stop_group(p)


def split_words(line, lowercase=False):
    """The split rule of the split_words built-in: runs of ASCII whitespace."""
    if lowercase:
        line = "".join(c.lower() if c.isascii() else c for c in line)
    words, cur = [], []
    for c in line:
        if c in " \t\n\v\f\r":
            if cur:
                words.append("".join(cur))
                cur = []
        else:
            cur.append(c)
    if cur:
        words.append("".join(cur))
    return words


def slow_topology(name, src, sink, config, limits=None, delay_ms=3, workers=1):
    """lines (file_lines over src) -> slow (pass_through, delay_ms a tuple,
    with the given limits) -> sink (file_sink to sink), workers tasks each."""
    bolt = {"id": "slow", "class": "pass_through", "parallelism": workers, "args": {"delay.ms": delay_ms},
            "outputs": ["line"], "inputs": [{"from": "lines", "grouping": "shuffle"}]}
    if limits:
        bolt["limits"] = limits
    return {
        "name": name,
        "workers": workers,
        "config": config,
        "spouts": [{"id": "lines", "class": "file_lines", "args": {"path": str(src)}}],
        "bolts": [bolt, {"id": "sink", "class": "file_sink", "parallelism": workers, "args": {"path": str(sink)},
                         "inputs": [{"from": "slow", "grouping": "shuffle"}]}],
    }
