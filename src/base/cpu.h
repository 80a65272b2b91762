/*
 * cpu: cpu_relax, the hint a thread spinning on a shared variable gives the
 * CPU (fewer wasted cycles and memory-order flushes, and the sibling
 * hyper-thread runs). Used by the queue's producers waiting for a slot.
 * Header only, and needing nothing but the compiler, so that
 * test/unit/check_cpu_relax.sh can compile it for every architecture.
 */
#ifndef SD_CPU_H
#define SD_CPU_H

#include <stdatomic.h>

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
    __asm__ __volatile__("yield" ::: "memory");
#elif defined(__riscv)
    __asm__ __volatile__(".insn i 0x0F, 0, x0, x0, 0x010" ::: "memory"); /* pause (Zihintpause; a no-op fence without it) */
#elif defined(__powerpc__) || defined(__powerpc64__)
    __asm__ __volatile__("or 27,27,27" ::: "memory"); /* low thread priority for a moment */
#else
    /* no hint known: at least a compiler barrier, so the loop reloads */
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

#endif
