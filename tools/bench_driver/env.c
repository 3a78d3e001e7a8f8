#include "env.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "build_info.h"
#include "sysinfo.h"

extern char **environ;

#define GPU_QUERY_TIMEOUT_MS 5000

/* ---- small helpers ------------------------------------------------------ */

static void add_str_or_null(cJSON *obj, const char *key, const char *s)
{
    if (s && *s)
        cJSON_AddStringToObject(obj, key, s);
    else
        cJSON_AddNullToObject(obj, key);
}

static void add_num_or_null(cJSON *obj, const char *key, double v, int ok)
{
    if (ok)
        cJSON_AddNumberToObject(obj, key, v);
    else
        cJSON_AddNullToObject(obj, key);
}

/* Trims leading and trailing white space in place; returns the start. */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* ---- /proc/cpuinfo -------------------------------------------------------- */

/* "key<spaces/tabs>: value": returns the value (trimmed) if line's key is key. */
static char *cpuinfo_value(char *line, const char *key)
{
    size_t k = strlen(key);
    if (strncmp(line, key, k) != 0)
        return NULL;
    char *p = line + k;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != ':')
        return NULL;
    return trim(p + 1);
}

static void add_cpu(cJSON *env)
{
    char *model = NULL;
    cJSON *flags = cJSON_CreateArray();
    int have_flags = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char *line = NULL;
        size_t cap = 0;
        int seen_key = 0;
        while (getline(&line, &cap, f) > 0) {
            char *t = trim(line);
            if (*t == '\0') {
                if (seen_key)
                    break; /* end of the first processor's block */
                continue;
            }
            seen_key = 1;
            char *v;
            if (!model && ((v = cpuinfo_value(line, "model name")) || (v = cpuinfo_value(line, "cpu model"))
                           || (v = cpuinfo_value(line, "cpu"))))
                model = *v ? strdup(v) : NULL;
            else if (!have_flags && ((v = cpuinfo_value(line, "flags")) || (v = cpuinfo_value(line, "Features")))) {
                have_flags = 1;
                for (char *save = NULL, *tok = strtok_r(v, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
                    if (flags)
                        cJSON_AddItemToArray(flags, cJSON_CreateString(tok));
            }
        }
        free(line);
        fclose(f);
    }
    /* collapse runs of spaces some vendors pad the model name with */
    if (model) {
        char *w = model;
        for (const char *r = model; *r; r++)
            if (!(*r == ' ' && w > model && w[-1] == ' '))
                *w++ = *r;
        *w = '\0';
    }
    add_str_or_null(env, "cpu_model", model);
    free(model);
    if (flags && have_flags && cJSON_GetArraySize(flags) > 0)
        cJSON_AddItemToObject(env, "cpu_flags", flags);
    else {
        cJSON_Delete(flags);
        cJSON_AddNullToObject(env, "cpu_flags");
    }
}

/* ---- /etc/os-release ------------------------------------------------------ */

/* PRETTY_NAME's value, unquoted, into out; 0 if absent. */
static int os_pretty_name(char *out, size_t cap)
{
    static const char *const paths[] = {"/etc/os-release", "/usr/lib/os-release"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        FILE *f = fopen(paths[i], "r");
        if (!f)
            continue;
        char line[512];
        int found = 0;
        while (!found && fgets(line, sizeof line, f)) {
            if (strncmp(line, "PRETTY_NAME=", 12) != 0)
                continue;
            char *v = trim(line + 12);
            size_t n = strlen(v);
            if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
                v[n - 1] = '\0';
                v++;
            }
            /* shell-style escapes: \" \\ \$ \` */
            size_t o = 0;
            for (const char *r = v; *r && o + 1 < cap; r++) {
                if (*r == '\\' && r[1])
                    r++;
                out[o++] = *r;
            }
            out[o] = '\0';
            found = o > 0;
        }
        fclose(f);
        if (found)
            return 1;
    }
    return 0;
}

/* ---- nvidia-smi ----------------------------------------------------------- */

/* The full path of an executable name on PATH into out, or 0. Never runs it. */
static int find_on_path(const char *name, char *out, size_t cap)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        return 0;
    const char *p = path;
    for (;;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0) { /* an empty entry means the current directory */
            if ((size_t)snprintf(out, cap, "./%s", name) < cap && access(out, X_OK) == 0)
                return 1;
        } else if ((size_t)snprintf(out, cap, "%.*s/%s", (int)len, p, name) < cap) {
            struct stat st;
            if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
                return 1;
        }
        if (!end)
            return 0;
        p = end + 1;
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs argv[0] (a full path) with stdout into out (NUL-terminated) and stderr
 * to /dev/null; kills it after timeout_ms. Returns 1 if it exited with status
 * 0 in time, else 0. */
static int run_capture(char *const argv[], char *out, size_t cap, int timeout_ms)
{
    int pfd[2];
    out[0] = '\0';
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return 0;
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) {
        close(pfd[0]);
        close(pfd[1]);
        return 0;
    }
    posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        return 0;
    }

    size_t len = 0;
    int timed_out = 0;
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        double left = deadline - now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd pl = {.fd = pfd[0], .events = POLLIN};
        int pr = poll(&pl, 1, (int)left + 1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0) {
            timed_out = 1;
            break;
        }
        if (pr == 0)
            continue; /* the deadline check above ends it */
        char buf[512];
        ssize_t r = read(pfd[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* EOF: the program closed its stdout */
        size_t take = (size_t)r < cap - 1 - len ? (size_t)r : cap - 1 - len;
        memcpy(out + len, buf, take);
        len += take;
    }
    close(pfd[0]);
    out[len] = '\0';

    int status = 0;
    if (timed_out) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        return 0;
    }
    /* stdout closed: give it the rest of the deadline to exit */
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            return 0;
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            return 0;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* One nvidia-smi field as a number; 0 for "[N/A]", "[Not Supported]" etc. */
static int parse_field_number(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && *end == '\0' && errno == 0;
}

static int field_known(const char *s)
{
    return *s && *s != '[' && strcmp(s, "N/A") != 0;
}

cJSON *bench_env_parse_gpu_csv(const char *line)
{
    if (!line)
        return NULL;
    char buf[1024];
    size_t n = strcspn(line, "\r\n");
    if (n >= sizeof buf)
        return NULL;
    memcpy(buf, line, n);
    buf[n] = '\0';

    /* name, memory.total, driver_version, clocks.max.sm: split at the last
     * three commas, so a name with a comma stays whole */
    char *f[4];
    char *end = buf + n;
    for (int i = 3; i >= 1; i--) {
        char *c = end;
        while (c > buf && c[-1] != ',')
            c--;
        if (c == buf)
            return NULL;
        c[-1] = '\0';
        f[i] = trim(c);
        end = c - 1;
    }
    f[0] = trim(buf);
    if (!field_known(f[0]))
        return NULL;

    cJSON *gpu = cJSON_CreateObject();
    if (!gpu)
        return NULL;
    double mem = 0, clk = 0;
    cJSON_AddStringToObject(gpu, "name", f[0]);
    add_num_or_null(gpu, "memory_mb", mem, field_known(f[1]) && parse_field_number(f[1], &mem));
    add_str_or_null(gpu, "driver", field_known(f[2]) ? f[2] : NULL);
    add_num_or_null(gpu, "clocks_mhz", clk, field_known(f[3]) && parse_field_number(f[3], &clk));
    return gpu;
}

/* The GPU that CUDA's device 0 is: the first entry of CUDA_VISIBLE_DEVICES
 * (an index, UUID or bus id, as nvidia-smi --id takes them), else "0". */
static void gpu_id(char *out, size_t cap)
{
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    size_t n = v ? strcspn(v, ",") : 0;
    int ok = n > 0 && n < cap;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)v[i]) || v[i] == '-' || v[i] == ':' || v[i] == '.';
    if (ok && v[0] == '-')
        ok = 0; /* "-1": none visible; report the machine's GPU 0 */
    if (ok) {
        memcpy(out, v, n);
        out[n] = '\0';
    } else
        snprintf(out, cap, "0");
}

static cJSON *query_gpu(void)
{
    char exe[4096];
    if (!find_on_path("nvidia-smi", exe, sizeof exe))
        return NULL;
    char id[128], id_arg[160];
    gpu_id(id, sizeof id);
    snprintf(id_arg, sizeof id_arg, "--id=%s", id);
    char *argv[] = {exe, id_arg, "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
                    "--format=csv,noheader,nounits", NULL};
    char out[4096];
    if (!run_capture(argv, out, sizeof out, GPU_QUERY_TIMEOUT_MS))
        return NULL;
    return bench_env_parse_gpu_csv(out);
}

/* ---- all together --------------------------------------------------------- */

cJSON *bench_env_collect(void)
{
    cJSON *env = cJSON_CreateObject();
    if (!env)
        return NULL;

    add_cpu(env);
    int cores = cores_online();
    add_num_or_null(env, "cores_online", cores, cores > 0);
    double mem = mem_total_mb();
    add_num_or_null(env, "memory_total_mb", mem, mem > 0);

    char os[256];
    add_str_or_null(env, "os", os_pretty_name(os, sizeof os) ? os : NULL);
    struct utsname u;
    if (uname(&u) == 0) {
        char kernel[sizeof u.release + sizeof u.version + 2];
        snprintf(kernel, sizeof kernel, "%s %s", u.release, u.version);
        add_str_or_null(env, "kernel", trim(kernel));
        add_str_or_null(env, "hostname", u.nodename);
    } else {
        cJSON_AddNullToObject(env, "kernel");
        cJSON_AddNullToObject(env, "hostname");
    }

    add_str_or_null(env, "compiler", strcmp(GPT2C_COMPILER, "unknown") ? GPT2C_COMPILER : NULL);
    cJSON_AddStringToObject(env, "cflags", GPT2C_C_FLAGS); /* may honestly be "" */
    add_str_or_null(env, "build_type", GPT2C_BUILD_TYPE);
    add_str_or_null(env, "git_commit", strcmp(GPT2C_GIT_COMMIT, "unknown") ? GPT2C_GIT_COMMIT : NULL);
    if (GPT2C_GIT_DIRTY < 0)
        cJSON_AddNullToObject(env, "git_dirty");
    else
        cJSON_AddBoolToObject(env, "git_dirty", GPT2C_GIT_DIRTY != 0);
    add_str_or_null(env, "gpt2c_version", strcmp(GPT2C_VERSION_STRING, "unknown") ? GPT2C_VERSION_STRING : NULL);

    cJSON *gpu = query_gpu();
    if (gpu)
        cJSON_AddItemToObject(env, "gpu", gpu);
    else
        cJSON_AddNullToObject(env, "gpu");
    return env;
}
