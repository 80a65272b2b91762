"""Install layout and the systemd units: `meson install` into a staging
directory puts the binary, its roles module where the binary looks for
it, the public header, the example config and both
units in place, and `systemd-analyze verify` accepts the units (pointed at
the built binary)."""
import os
import shutil
import subprocess

import pytest

from conftest import REPO


def test_meson_install_layout(streamd_bin, tmp_path):
    build = os.environ.get("STREAMD_BUILD", str(streamd_bin.parent))
    dest = tmp_path / "stage"
    res = subprocess.run(["meson", "install", "-C", build, "--no-rebuild", "--destdir", str(dest)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    files = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    for want in ("bin/streamd", "include/streamd/component.h", "etc/streamd/streamd.yaml",
                 "lib/systemd/system/streamd-master.service", "lib/systemd/system/streamd-node.service",
                 "share/streamd/python/streamd_multilang.py"):
        assert any(f.endswith(want) for f in files), f"{want} not installed; got {sorted(files)}"
    # the roles module, where the installed binary looks for it
    modules = [f for f in files if f.endswith("/streamd/streamd-roles.so")]
    assert len(modules) == 1, f"roles module not installed; got {sorted(files)}"
    module_dir = "/" + modules[0][:-len("/streamd-roles.so")]
    binary = (dest / next(f for f in files if f.endswith("bin/streamd"))).read_bytes()
    assert module_dir.encode() + b"\0" in binary, f"the installed binary does not name {module_dir}"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_units_verify(streamd_bin, tmp_path):
    for unit in ("streamd-master.service", "streamd-node.service"):
        text = (REPO / "systemd" / unit).read_text()
        assert "ExecStart=/usr/local/bin/streamd " in text
        if unit == "streamd-node.service":
            assert "Delegate=yes" in text
        (tmp_path / unit).write_text(text.replace("/usr/local/bin/streamd", str(streamd_bin)))
    res = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / u) for u in
                                                         ("streamd-master.service", "streamd-node.service"))],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
