/* Getting ready to write a model file (gpt2c-convert, gpt2c-quantize).
 *
 * The engine's writer writes "<out>.tmp.<pid>", fsyncs it and renames it over
 * <out>, so <out> is either absent, the old file, or the complete new one. A
 * process killed outright (SIGKILL, power loss) cannot remove its temporary:
 * the next run for the same <out> removes those whose process is gone. */
#ifndef GPT2C_OUT_FILE_H
#define GPT2C_OUT_FILE_H

/* Before writing out: removes stale "<out>.tmp.<pid>" files of processes
 * that no longer exist (a notice on stderr for each), makes a file-size limit
 * (RLIMIT_FSIZE) an EFBIG write error instead of SIGXFSZ killing the program
 * with its temporary in place, and removes the temporary on SIGINT, SIGTERM
 * and SIGHUP (cli_remove_tmp_on_signal). */
void out_file_prepare(const char *prog, const char *out);

#endif
