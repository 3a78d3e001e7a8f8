#include "out_file.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "cli.h"

/* 1 when name is "<base>.tmp.<digits>" and the process <digits> is gone. */
static int is_stale_tmp(const char *name, const char *base)
{
    size_t bl = strlen(base);
    if (strncmp(name, base, bl) != 0 || strncmp(name + bl, ".tmp.", 5) != 0)
        return 0;
    const char *digits = name + bl + 5;
    char *end;
    errno = 0;
    long pid = strtol(digits, &end, 10);
    if (!*digits || *end || errno || pid <= 0 || (pid_t)pid != pid)
        return 0;
    /* ESRCH: no such process. EPERM means one exists (another user's): keep. */
    return pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static void remove_stale_tmps(const char *prog, const char *out)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    const char *base = out;
    if (slash) {
        base = out + (slash - dir) + 1;
        if (slash == dir)
            slash[1] = '\0'; /* "/x": the root */
        else
            *slash = '\0';
    } else {
        snprintf(dir, sizeof dir, ".");
    }
    DIR *d = opendir(dir);
    if (!d)
        return; /* the write will say what is wrong with the folder */
    struct dirent *de;
    while ((de = readdir(d)))
        if (is_stale_tmp(de->d_name, base)) {
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            if (unlink(path) == 0)
                fprintf(stderr, "%s: removed %s, left by an earlier run that did not finish\n", prog,
                        path);
            else
                fprintf(stderr, "%s: cannot remove %s, left by an earlier run: %s\n", prog, path,
                        strerror(errno));
        }
    closedir(d);
}

void out_file_prepare(const char *prog, const char *out)
{
    remove_stale_tmps(prog, out);
    signal(SIGXFSZ, SIG_IGN);
    cli_remove_tmp_on_signal(out);
}
