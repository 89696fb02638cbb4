/*
 * perf/lib/clock.c: clocks, CPU and memory figures from /proc, the machine and source
 * description, and JSON result-line helpers for the benchmarks of perf/ (clock.h says what each
 * function gives). Reads /proc and runs git; keeps no state; not thread-aware beyond what libc
 * gives (every function may be called from any thread).
 */
#define _GNU_SOURCE
#include "clock.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef HS_PERF_SOURCE_DIR
#define HS_PERF_SOURCE_DIR "."
#endif

/* Monotonic seconds. */
double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) of this whole process, all threads. */
double bench_self_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (utime + stime) of another process from /proc/<pid>/stat, or -1. */
double bench_pid_cpu(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the command name (field 2) may hold spaces and parentheses: skip to its last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    unsigned long long ut = 0, st = 0;
    /* after ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15) */
    if (sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)(hz > 0 ? hz : 100);
}

/* Reads utime, stime, cutime, cstime (clock ticks) and ppid from /proc/<pid>/stat; 0 or -1. */
int bench_pid_stat(long pid, long *ppid, unsigned long long t[4])
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    long long cu = 0, cs = 0;
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime
     * cstime */
    if (sscanf(p + 1, " %*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld", ppid,
               &t[0], &t[1], &cu, &cs) != 5)
        return -1;
    t[2] = cu > 0 ? (unsigned long long)cu : 0;
    t[3] = cs > 0 ? (unsigned long long)cs : 0;
    return 0;
}

/* Calls fn(child, ctx) for each living child of pid. Scans /proc. */
static void bench_each_child(long pid, void (*fn)(long child, void *ctx), void *ctx)
{
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long child = strtol(e->d_name, &end, 10), ppid;
        unsigned long long t[4];
        if (*end || child <= 0 || child == pid)
            continue;
        if (bench_pid_stat(child, &ppid, t) == 0 && ppid == pid)
            fn(child, ctx);
    }
    closedir(d);
}

static void bench_add_ticks(long pid, void *ctx)
{
    long ppid;
    unsigned long long t[4];
    if (bench_pid_stat(pid, &ppid, t) == 0)
        *(unsigned long long *)ctx += t[0] + t[1] + t[2] + t[3];
}

/*
 * CPU seconds of a process and its children (a database server: the postmaster and its
 * backends; nginx: the master and its workers), or -1 when pid is gone: the process's own time,
 * the time of the children it has reaped (cutime, cstime), and the time of its living children.
 * The difference over a run counts backends that came and went meanwhile too. Scans /proc.
 */
double bench_tree_cpu(long pid)
{
    long ppid;
    unsigned long long t[4];
    if (bench_pid_stat(pid, &ppid, t))
        return -1;
    unsigned long long ticks = t[0] + t[1] + t[2] + t[3];
    bench_each_child(pid, bench_add_ticks, &ticks);
    long hz = sysconf(_SC_CLK_TCK);
    return (double)ticks / (double)(hz > 0 ? hz : 100);
}

/* A "Key: N kB" line of /proc/<pid>/status (fmt: its sscanf format), or -1. */
static long status_kb(long pid, const char *fmt)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, fmt, &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Peak RSS (VmHWM) of a process in KiB, or -1. */
long bench_pid_hwm_kb(long pid)
{
    return status_kb(pid, "VmHWM: %ld kB");
}

/* Bytes this process passed to write()/pwrite() so far (/proc/self/io wchar), or 0. */
unsigned long long bench_self_wchar(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    if (!f)
        return 0;
    char line[128];
    unsigned long long v = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "wchar: %llu", &v) == 1)
            break;
    fclose(f);
    return v;
}

/* Busy CPU seconds of the whole machine so far (every CPU: user, nice, system, irq, softirq,
 * steal from /proc/stat), or -1. The difference over a run, minus the benchmark's own CPU and
 * the server's, is what other processes took: a noisy neighbour shows up there. */
double bench_sys_busy(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8)
        return -1;
    /* user nice system idle iowait irq softirq steal: idle and iowait are not busy */
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    long hz = sysconf(_SC_CLK_TCK);
    return (double)busy / (double)(hz > 0 ? hz : 100);
}

/* The 1-minute load average, or -1. */
double bench_loadavg(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f)
        return -1;
    double l = -1;
    if (fscanf(f, "%lf", &l) != 1)
        l = -1;
    fclose(f);
    return l;
}

/* VmRSS of a process in KiB, or -1. */
long bench_pid_rss_kb(long pid)
{
    return status_kb(pid, "VmRSS: %ld kB");
}

static void bench_add_rss(long pid, void *ctx)
{
    long kb = bench_pid_rss_kb(pid);
    if (kb > 0)
        *(long *)ctx += kb;
}

/* VmRSS of a process and its living children in KiB (nginx: master and workers), or -1. */
long bench_tree_rss_kb(long pid)
{
    long kb = bench_pid_rss_kb(pid);
    if (kb >= 0)
        bench_each_child(pid, bench_add_rss, &kb);
    return kb;
}

/* A command-line integer of at least min for flag; otherwise exits 2 with a message naming
 * the program. */
long bench_parse_long(const char *s, const char *flag, long min)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min) {
        fprintf(stderr, "%s: %s wants an integer >= %ld, got '%s'\n", program_invocation_short_name,
                flag, min, s);
        exit(2);
    }
    return v;
}

/* Writes s as a JSON string (quotes included) into f. */
void bench_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void bench_trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
}

void bench_env_read(bench_env_t *e)
{
    memset(e, 0, sizeof(*e));
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(e->date, sizeof(e->date), "%Y-%m-%dT%H:%M:%SZ", &tm);
    e->nproc = (int)sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(e->cpu, sizeof(e->cpu), "unknown");
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "model name", 10) == 0) {
                char *c = strchr(line, ':');
                if (c) {
                    c++;
                    while (*c == ' ' || *c == '\t')
                        c++;
                    snprintf(e->cpu, sizeof(e->cpu), "%s", c);
                    bench_trim(e->cpu);
                }
                break;
            }
        }
        fclose(f);
    }
    f = fopen("/proc/meminfo", "r");
    if (f) {
        long kb;
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "MemTotal: %ld kB", &kb) == 1) {
                e->mem_mb = kb / 1024;
                break;
            }
        fclose(f);
    }
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(e->kernel, sizeof(e->kernel), "%s", u.release);
    e->load1 = bench_loadavg();
    snprintf(e->commit, sizeof(e->commit), "unknown");
    f = popen("git -C '" HS_PERF_SOURCE_DIR "' rev-parse --short HEAD 2>/dev/null", "r");
    if (f) {
        if (fgets(line, sizeof(line), f)) {
            bench_trim(line);
            if (*line)
                snprintf(e->commit, sizeof(e->commit), "%.40s", line);
        }
        pclose(f);
    }
    f = popen("git -C '" HS_PERF_SOURCE_DIR "' status --porcelain --untracked-files=no "
              "2>/dev/null | head -1",
              "r");
    if (f) {
        if (fgets(line, sizeof(line), f) && strcmp(e->commit, "unknown") != 0) {
            size_t n = strlen(e->commit);
            snprintf(e->commit + n, sizeof(e->commit) - n, "+dirty");
        }
        pclose(f);
    }
}

/* Writes the "date" and "machine" members (no braces) of a result line. */
void bench_env_json(FILE *f, const bench_env_t *e)
{
    fprintf(f, "\"date\":");
    bench_json_str(f, e->date);
    fprintf(f, ",\"commit\":");
    bench_json_str(f, e->commit);
    fprintf(f, ",\"machine\":{\"nproc\":%d,\"cpu\":", e->nproc);
    bench_json_str(f, e->cpu);
    fprintf(f, ",\"mem_mb\":%ld,\"kernel\":", e->mem_mb);
    bench_json_str(f, e->kernel);
    fprintf(f, ",\"load1_at_start\":%.2f}", e->load1);
}

/* Appends the line `text` (no newline) to path in one write; returns 0 or -1. */
int bench_append_line(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    if (!f) {
        perror(path);
        return -1;
    }
    int rc = fprintf(f, "%s\n", text) < 0 ? -1 : 0;
    if (fclose(f))
        rc = -1;
    return rc;
}
