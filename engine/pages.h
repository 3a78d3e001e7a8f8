/* Dropping clean pages of a read-only file mapping from the resident set.
 * Readers that stream through a mapped file once (conversion, quantization,
 * weight packing) use it so their RSS follows what they still need; a page
 * read again later is simply faulted in again from the file. */
#ifndef GPT2C_PAGES_H
#define GPT2C_PAGES_H

#include <stddef.h>

/* Drops the whole pages inside [p, p + n) (pages the range only partly covers
 * stay). Only for read-only mappings of a file: for anonymous or written
 * memory it would discard the contents. Advisory: failure changes nothing. */
void gpt2_drop_file_pages(const void *p, size_t n);

#endif
