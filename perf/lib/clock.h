/*
 * perf/lib/clock.h: what every benchmark of perf/ measures with and writes its results with:
 * clocks, CPU seconds (this process, another process, a process tree, the whole machine from
 * /proc/stat), RSS and peak RSS from /proc/<pid>/status, a description of the machine and of
 * the source tree, and the helpers of a JSON result line (a string, one appended line).
 *
 * Linux only (/proc). Measures nothing by itself and keeps no state; not a JSON library (it
 * writes strings and leaves the rest to the caller's printf).
 */
#ifndef HS_PERF_LIB_CLOCK_H
#define HS_PERF_LIB_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Monotonic seconds. */
double bench_now(void);

/* CPU seconds (user + system) of this whole process, all threads. */
double bench_self_cpu(void);

/* CPU seconds (utime + stime) of another process from /proc/<pid>/stat, or -1. */
double bench_pid_cpu(long pid);

/* Reads utime, stime, cutime, cstime (clock ticks) and ppid from /proc/<pid>/stat; 0 or -1. */
int bench_pid_stat(long pid, long *ppid, unsigned long long t[4]);

/*
 * CPU seconds of a process and its children (a database server: the postmaster and its
 * backends; nginx: the master and its workers), or -1 when pid is gone: the process's own time,
 * the time of the children it has reaped (cutime, cstime), and the time of its living children.
 * The difference over a run counts backends that came and went meanwhile too. Scans /proc.
 */
double bench_tree_cpu(long pid);

/* Peak RSS (VmHWM) of a process in KiB, or -1. */
long bench_pid_hwm_kb(long pid);

/* VmRSS of a process in KiB, or -1. */
long bench_pid_rss_kb(long pid);

/* VmRSS of a process and its living children in KiB (nginx: master and workers), or -1. */
long bench_tree_rss_kb(long pid);

/* Bytes this process passed to write()/pwrite() so far (/proc/self/io wchar), or 0. */
unsigned long long bench_self_wchar(void);

/* Busy CPU seconds of the whole machine so far (every CPU: user, nice, system, irq, softirq,
 * steal from /proc/stat), or -1. The difference over a run, minus the benchmark's own CPU and
 * the server's, is what other processes took: a noisy neighbour shows up there. */
double bench_sys_busy(void);

/* The 1-minute load average, or -1. */
double bench_loadavg(void);

/* A command-line integer of at least min for flag; otherwise exits 2 with a message naming
 * the program. */
long bench_parse_long(const char *s, const char *flag, long min);

/* Writes s as a JSON string (quotes included) into f. */
void bench_json_str(FILE *f, const char *s);

typedef struct bench_env {
    char date[32];    /* UTC, ISO 8601 */
    char cpu[128];    /* /proc/cpuinfo model name */
    int nproc;        /* online CPUs */
    long mem_mb;      /* MemTotal */
    char kernel[128]; /* uname -r */
    char commit[48];  /* git HEAD of the source tree, "+dirty" when it has changes */
    double load1;     /* load average when the benchmark started */
} bench_env_t;

/* Fills e: the date now, the machine, and the commit of the source tree the library was built
 * from (git, run on HS_PERF_SOURCE_DIR). */
void bench_env_read(bench_env_t *e);

/* Writes the "date", "commit" and "machine" members (no braces) of a result line. */
void bench_env_json(FILE *f, const bench_env_t *e);

/* Appends the line `text` (no newline) to path in one write; returns 0 or -1. */
int bench_append_line(const char *path, const char *text);

#endif
