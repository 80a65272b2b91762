#!/bin/sh
# cpu_relax (src/base/cpu.h) compiles for each architecture and emits that
# architecture's spin hint (or builds with the plain fallback). Needs clang,
# which cross-compiles to an object without a sysroot.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)/src
command -v clang >/dev/null || { echo "clang not found: skipped"; exit 77; }
fail=0
check() { # target, regex the assembly must match
    asm=$(printf '#include "base/cpu.h"\nvoid spin(void) { cpu_relax(); }\n' |
          clang --target="$1" -ffreestanding -std=gnu11 -Wall -Wextra -Werror -O2 -I"$src" -S -o - -x c -) || {
        echo "FAIL $1: does not compile"; fail=1; return; }
    if printf '%s\n' "$asm" | grep -Eq "$2"; then echo "ok $1"; else echo "FAIL $1: no '$2' in the assembly"; fail=1; fi
}
check x86_64-linux-gnu '\bpause\b'
check i686-linux-gnu '\bpause\b'
check aarch64-linux-gnu '\byield\b'
check armv7a-linux-gnueabihf '\byield\b'
check riscv64-linux-gnu '\.insn|\bpause\b'
check powerpc64le-linux-gnu 'or 27, ?27, ?27|mr\s+27, ?27'
check s390x-linux-gnu 'spin'   # fallback: only a compiler barrier, it must build
check mips64el-linux-gnuabi64 'spin'
exit $fail
