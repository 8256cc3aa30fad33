// CRC-32C for record checksums: the SSE4.2 `crc32` instruction (8 bytes per instruction, three
// cycles of latency) when the CPU has it, a byte-wise table otherwise. Both give identical results.

#include "sheaf_decode.h"

#include <string.h>

#if defined(__x86_64__)
#define SHEAF_CRC_X86 1
#include <immintrin.h>
#else
#define SHEAF_CRC_X86 0
#endif

static uint32_t sheaf_crc_table[256];
static int sheaf_crc_table_ready = 0;

static void sheaf_crc_make_table(void) {
    if (__atomic_load_n(&sheaf_crc_table_ready, __ATOMIC_ACQUIRE)) return;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        sheaf_crc_table[i] = c;  // racing initialisers write identical values
    }
    __atomic_store_n(&sheaf_crc_table_ready, 1, __ATOMIC_RELEASE);
}

static uint32_t portable_crc(uint32_t c, const unsigned char *p, size_t n) {
    sheaf_crc_make_table();
    for (size_t i = 0; i < n; i++) c = sheaf_crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c;
}

#if SHEAF_CRC_X86
__attribute__((target("sse4.2"))) static uint32_t sse42_crc(uint32_t c, const unsigned char *p, size_t n) {
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);  // unaligned load
        c64 = _mm_crc32_u64(c64, w);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c64;
    while (n > 0) {
        c32 = _mm_crc32_u8(c32, *p++);
        n--;
    }
    return c32;
}
#endif

static int sheaf_crc_detected = 0;  // 0 = unknown
// Per thread, so a test that forces the portable path does not change what concurrent work computes.
static _Thread_local int sheaf_crc_forced = 0;

int sheaf_crc32c_isa(void) {
    if (sheaf_crc_forced == 1) return 1;
    int d = __atomic_load_n(&sheaf_crc_detected, __ATOMIC_RELAXED);
    if (d == 0) {
#if SHEAF_CRC_X86
        __builtin_cpu_init();
        d = __builtin_cpu_supports("sse4.2") ? 2 : 1;
#else
        d = 1;
#endif
        __atomic_store_n(&sheaf_crc_detected, d, __ATOMIC_RELAXED);
    }
    return d;
}

void sheaf_crc32c_force_isa(int isa) { sheaf_crc_forced = isa == 1 ? 1 : 0; }

uint32_t sheaf_crc32c(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    uint32_t c = ~crc;
#if SHEAF_CRC_X86
    if (sheaf_crc32c_isa() == 2) return ~sse42_crc(c, p, n);
#endif
    return ~portable_crc(c, p, n);
}
