/* Page-level memory helpers.
 *
 * Dropping clean pages of a read-only file mapping from the resident set:
 * readers that stream through a mapped file once (conversion, quantization,
 * weight packing) use it so their RSS follows what they still need; a page
 * read again later is simply faulted in again from the file.
 *
 * Anonymous memory in transparent huge pages, for what the kernels stream
 * through every token (packed weights, the KV cache): with 4 KiB pages that is
 * a TLB miss every 4 KiB. */
#ifndef GPT2C_PAGES_H
#define GPT2C_PAGES_H

#include <stddef.h>

/* Drops the whole pages inside [p, p + n) (pages the range only partly covers
 * stay). Only for read-only mappings of a file: for anonymous or written
 * memory it would discard the contents. Advisory: failure changes nothing. */
void gpt2_drop_file_pages(const void *p, size_t n);

/* An anonymous read-write mapping of at least bytes, rounded up to whole 2
 * MiB pages (its length in *mapped, for munmap), advised MADV_HUGEPAGE where
 * the system has it. Untouched: pages become resident when first written.
 * NULL if the system refuses. */
void *gpt2_map_huge(size_t bytes, size_t *mapped);

#endif
