// Allocator settings for training loops (see SheafNN.Memory.retainFreedBuffers).
#include "sheaf_nn.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

int sheaf_retain_freed_buffers(void) {
#if defined(__GLIBC__)
    // Large blocks from the heap (not fresh mappings), and freed memory kept for reuse.
    int a = mallopt(M_MMAP_THRESHOLD, 1 << 30);
    int b = mallopt(M_TRIM_THRESHOLD, 0x7FFFFFFF);
    return a == 1 && b == 1;
#else
    return 0;
#endif
}
