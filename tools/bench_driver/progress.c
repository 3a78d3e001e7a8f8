#include "progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define REDRAW_S 0.1   /* at most ~10 redraws a second */
#define BAR_WIDTH 24
#define LINE_CAP 512

struct bench_progress {
    char *label;       /* "[phase] what" */
    double total;
    double t0, last_draw;
    int live;          /* drawing the live line on a terminal */
    int width;         /* terminal columns */
    char line[LINE_CAP];
};

static int g_quiet;

void progress_set_quiet(int quiet) { g_quiet = quiet != 0; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int stderr_is_terminal(void)
{
    if (!isatty(STDERR_FILENO))
        return 0;
    const char *term = getenv("TERM");
    return !(term && strcmp(term, "dumb") == 0);
}

/* "2.5s", "12s", "3:05", "1:02:03" */
static void fmt_duration(char *out, size_t cap, double s)
{
    if (!(s >= 0) || s > 359999)
        snprintf(out, cap, "?");
    else if (s < 9.95)
        snprintf(out, cap, "%.1fs", s);
    else if (s < 59.5)
        snprintf(out, cap, "%.0fs", s);
    else {
        long t = (long)(s + 0.5);
        if (t < 3600)
            snprintf(out, cap, "%ld:%02ld", t / 60, t % 60);
        else
            snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    }
}

/* Cuts s to at most n bytes without splitting a UTF-8 sequence. */
static void cut_utf8(char *s, size_t n)
{
    if (strlen(s) <= n)
        return;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    s[n] = '\0';
}

static void write_all(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return; /* EINTR aside, nothing sensible to do about stderr */
        s += w;
        n -= (size_t)w;
    }
}

bench_progress *progress_begin(const char *phase, const char *what, double total)
{
    bench_progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    const char *ph = phase ? phase : "";
    const char *wh = what ? what : "";
    size_t n = strlen(ph) + strlen(wh) + 4;
    p->label = malloc(n);
    if (!p->label) {
        free(p);
        return NULL;
    }
    if (*wh)
        snprintf(p->label, n, "[%s] %s", ph, wh);
    else
        snprintf(p->label, n, "[%s]", ph);
    p->total = total > 0 ? total : 0;
    p->t0 = now_s();
    p->last_draw = p->t0 - 2 * REDRAW_S; /* the first update draws */
    p->live = !g_quiet && stderr_is_terminal();
    p->width = 80;
    struct winsize ws;
    if (p->live && ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        p->width = ws.ws_col;
    if (p->live) {
        fflush(stderr);
        snprintf(p->line, sizeof p->line, "%s", p->label);
        cut_utf8(p->line, (size_t)p->width - 1);
        write_all(p->line, strlen(p->line));
    }
    return p;
}

void progress_update(bench_progress *p, double done, const char *detail)
{
    if (!p || !p->live)
        return;
    double t = now_s();
    int finished = p->total > 0 && done >= p->total;
    if (t - p->last_draw < REDRAW_S && !finished)
        return;
    p->last_draw = t;
    double elapsed = t - p->t0;

    char el[48], eta[48];
    fmt_duration(el, sizeof el, elapsed);
    char figures[256];
    if (p->total > 0) {
        double frac = done / p->total;
        if (!(frac >= 0))
            frac = 0;
        if (frac > 1)
            frac = 1;
        char bar[BAR_WIDTH + 1];
        int fill = (int)(frac * BAR_WIDTH + 0.5);
        for (int i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        if (done > 0 && frac < 1)
            fmt_duration(eta, sizeof eta, elapsed * (p->total - done) / done);
        else
            snprintf(eta, sizeof eta, frac >= 1 ? "0s" : "?");
        snprintf(figures, sizeof figures, "[%s] %3.0f%% %s ETA %s", bar, frac * 100, el, eta);
    } else
        snprintf(figures, sizeof figures, "%g done, %s", done, el);

    /* "\r" + text + "erase to end of line" */
    int n = snprintf(p->line, sizeof p->line, "\r%s %s%s%s", p->label, figures,
                     detail && *detail ? "  " : "", detail ? detail : "");
    if (n < 0)
        return;
    cut_utf8(p->line + 1, (size_t)p->width - 1);
    size_t len = strlen(p->line);
    if (len + 4 <= sizeof p->line) {
        memcpy(p->line + len, "\033[K", 4);
        len += 3;
    }
    write_all(p->line, len);
}

void progress_end(bench_progress *p, const char *summary_fmt, ...)
{
    if (!p)
        return;
    double elapsed = now_s() - p->t0;
    char *summary = NULL;
    if (summary_fmt && *summary_fmt) {
        va_list ap;
        va_start(ap, summary_fmt);
        if (vasprintf(&summary, summary_fmt, ap) < 0)
            summary = NULL;
        va_end(ap);
    }
    /* one fprintf, so the line reaches stderr in one write */
    if (p->live) /* over the live line, then erase what is left of it */
        fprintf(stderr, "\r%s%s%s (%.1f s)\033[K\n", p->label, summary ? ": " : "",
                summary ? summary : "", elapsed);
    else
        fprintf(stderr, "%s%s%s (%.1f s)\n", p->label, summary ? ": " : "", summary ? summary : "",
                elapsed);
    fflush(stderr);
    free(summary);
    free(p->label);
    free(p);
}
