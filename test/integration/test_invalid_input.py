"""Bad input is refused before anything starts: exit status 2 and one line
on stderr, "streamd: FILE:LINE: message" naming the key or value.

Runs the real binary (STREAMD_BIN, default /work/main/build/streamd) on the
fixtures in test/data: every topo_bad/*.yaml and conf_bad/*.yaml starts with
"# expect: LINE: message" (the unit tests read the same line).
"""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "test" / "data"
STREAMD = os.environ.get("STREAMD_BIN", "/work/main/build/streamd")
TIMEOUT = 20  # seconds; invalid input must be refused long before this


def expect_of(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path}: no '# expect: ' line"
    return first[len("# expect: "):]


def run(*args):
    if not os.access(STREAMD, os.X_OK):
        pytest.skip(f"{STREAMD} not built")
    return subprocess.run([STREAMD, *args], capture_output=True, text=True, timeout=TIMEOUT,
                          cwd="/tmp")


def assert_refused(proc, want):
    assert proc.returncode == 2, f"status {proc.returncode}, stderr:\n{proc.stderr}"
    lines = [line for line in proc.stderr.splitlines() if line.startswith("streamd: ")]
    assert len(lines) == 1, f"expected one 'streamd:' line, stderr:\n{proc.stderr}"
    assert lines[0].startswith("streamd: " + want), f"\n got:  {lines[0]}\n want: streamd: {want}..."


TOPO_BAD = sorted((DATA / "topo_bad").glob("*.yaml"))
CONF_BAD = sorted((DATA / "conf_bad").glob("*.yaml"))
GOOD_TOPOLOGY = DATA / "wordcount.yaml"


@pytest.mark.asan
@pytest.mark.parametrize("path", TOPO_BAD, ids=lambda p: p.stem)
def test_invalid_topology(path):
    proc = run("--role=local", str(path), "--until-drained")
    assert_refused(proc, f"{path}:{expect_of(path)}")


@pytest.mark.asan
@pytest.mark.parametrize("path", CONF_BAD, ids=lambda p: p.stem)
def test_invalid_config_file(path):
    proc = run("--role=local", "--config", str(path), str(GOOD_TOPOLOGY), "--until-drained")
    assert_refused(proc, f"{path}:{expect_of(path)}")


@pytest.mark.asan
@pytest.mark.parametrize("kv,want", [
    ("topology.workers=abc", "-c: key 'topology.workers': expected an integer, got 'abc'"),
    ("topology.workers=0", "-c: key 'topology.workers': expected an integer from 1 to 65535, got '0'"),
    ("log.level=loud", "-c: key 'log.level': expected one of debug, info, warn, error, got 'loud'"),
    ("topology.debug=maybe", "-c: key 'topology.debug': expected true or false, got 'maybe'"),
    ("topology.workers", "-c: expected KEY=VALUE, got 'topology.workers'"),
])
def test_invalid_command_line(kv, want):
    proc = run("--role=local", "-c", kv, str(GOOD_TOPOLOGY), "--until-drained")
    assert_refused(proc, want)


@pytest.mark.asan
def test_missing_topology_file(tmp_path):
    path = tmp_path / "nope.yaml"
    proc = run("--role=local", str(path), "--until-drained")
    assert_refused(proc, f"{path}: cannot open: No such file or directory")


@pytest.mark.asan
def test_class_not_in_library(tmp_path):
    """A real user library that loads but lacks the class."""
    lib = pathlib.Path(STREAMD).resolve().parent / "examples" / "libstreamd_examples.so"
    if not lib.exists():
        pytest.skip(f"{lib} not built")
    topo = tmp_path / "t.yaml"
    topo.write_text(f"name: t\nlibrary: {lib}\nspouts:\n  - id: s\n    class: no_such_spout\n")
    proc = run("--role=local", str(topo), "--until-drained")
    assert_refused(proc, f"{topo}:5: spout 's': no component class 'no_such_spout' (not built in, not in {lib})")


@pytest.mark.asan
def test_library_component_resolves(tmp_path):
    """The same library's real class passes validation (the run itself is
    not this test's business: --duration stops it quickly)."""
    lib = pathlib.Path(STREAMD).resolve().parent / "examples" / "libstreamd_examples.so"
    if not lib.exists():
        pytest.skip(f"{lib} not built")
    topo = tmp_path / "t.yaml"
    topo.write_text(f"name: t\nlibrary: {lib}\nconfig: {{topology.acker.executors: 0}}\n"
                    "spouts:\n  - id: s\n    class: sentence_spout\n    args: {count: 1}\n")
    proc = run("--role=local", str(topo), "--duration", "1",
               "-c", f"streamd.local.dir={tmp_path / 'state'}")
    assert proc.returncode != 2, proc.stderr


def test_command_line_beats_topology_config(tmp_path):
    """-c wins over the topology's config: everywhere, workers included: the
    file turns acking on, -c turns it off, and every process must agree on
    the task layout (no __acker) for the run to drain."""
    topo = DATA / "precedence_run.yaml"
    if not os.access(STREAMD, os.X_OK):
        pytest.skip(f"{STREAMD} not built")
    proc = subprocess.run([STREAMD, "--role=local", str(topo), "--until-drained",
                           "-c", "topology.acker.executors=0",
                           "-c", f"streamd.local.dir={tmp_path}"],
                          capture_output=True, text=True, timeout=30, cwd="/tmp")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "drained" in proc.stdout
    assert "__acker" not in proc.stdout


@pytest.mark.asan
@pytest.mark.parametrize("args,want", [
    ([], "--role=worker needs --control-fd"),
    (["--control-fd=x"], "--control-fd: expected an fd"),
    (["--control-fd=3", "--log-format=xml"], "--log-format: expected text or json"),
    (["--control-fd=3", "--until-drained"], "--role=worker takes only --control-fd, --log-fd and --log-format"),
    (["--control-fd=3", "topo.yaml"], "--role=worker takes no operands"),
])
def test_invalid_worker_command_line(args, want):
    assert_refused(run("--role=worker", *args), want)


def test_executable_without_its_roles_module(tmp_path):
    """The executable alone runs the worker role (it checks a worker's
    command line) but no other: those name the module it could not load."""
    if not os.access(STREAMD, os.X_OK):
        pytest.skip(f"{STREAMD} not built")
    alone = tmp_path / "streamd"
    alone.write_bytes(pathlib.Path(STREAMD).read_bytes())
    alone.chmod(0o755)
    worker = subprocess.run([str(alone), "--role=worker"], capture_output=True, text=True, timeout=TIMEOUT)
    assert_refused(worker, "--role=worker needs --control-fd")
    proc = subprocess.run([str(alone), "--version"], capture_output=True, text=True, timeout=TIMEOUT)
    if proc.returncode == 0:
        # an installed module (<libdir>/streamd/) was found instead
        pytest.skip(f"a streamd-roles.so is installed: {proc.stdout}")
    assert proc.returncode == 1, proc.stderr
    assert "streamd: cannot load the roles module" in proc.stderr, proc.stderr
    assert "streamd-roles.so" in proc.stderr, proc.stderr
