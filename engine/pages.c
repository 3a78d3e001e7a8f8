/* See pages.h. */
#include "pages.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

void gpt2_drop_file_pages(const void *p, size_t n)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    if (n == 0 || page == 0 || (page & (page - 1)) != 0)
        return;
    const uintptr_t b = ((uintptr_t)p + page - 1) & ~(page - 1);
    const uintptr_t e = ((uintptr_t)p + n) & ~(page - 1);
    if (e > b)
        madvise((void *)b, e - b, MADV_DONTNEED);
}

void *gpt2_map_huge(size_t bytes, size_t *mapped)
{
    const size_t huge = (size_t)2 << 20;
    const size_t len = bytes ? (bytes + huge - 1) & ~(huge - 1) : huge;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE); /* advisory */
#endif
    *mapped = len;
    return p;
}
