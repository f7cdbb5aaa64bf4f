/*
 * probe: runs inside a container and prints ONE JSON object describing what
 * it sees (ids, caps, namespaces, mounts, /dev, rlimits, ...), then exits 0.
 *
 * Build: gcc -static -O2 -o probe probe.c
 *
 * Options (anything else is just reported in "args"; args starting with '/'
 * are additionally examined under "paths"):
 *   --exit N      exit with status N after printing
 *   --sleep       print, then pause() until a signal (SIGTERM -> 143; as
 *                 PID 1 a handler does _exit(128+sig) for TERM/INT/HUP)
 *   --write FILE  write the JSON to FILE instead of stdout
 *   --notify MSG  first send MSG as one datagram to $NOTIFY_SOCKET (what
 *                 sd_notify does; busybox cannot), reported as "notify_errno"
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
static FILE *out;
static int first; /* comma state for the current container */

/* Length of a valid UTF-8 sequence starting at p, 0 if invalid. */
static int utf8_len(const unsigned char *p) {
    int n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : 0;
    if (p[0] >= 0xf5) return 0;
    for (int i = 1; i < n; i++) if ((p[i] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) return 0;
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))) return 0;
    return n;
}

static void jstr(const char *s) {
    if (!s) { fputs("null", out); return; }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        case '\b': fputs("\\b", out); break;
        case '\f': fputs("\\f", out); break;
        default:
            if (*p < 0x20 || *p == 0x7f) fprintf(out, "\\u%04x", *p);
            else if (*p >= 0x80) {
                int n = utf8_len(p);
                if (n) { fwrite(p, 1, n, out); p += n - 1; }
                else fprintf(out, "\\u%04x", *p); /* invalid UTF-8 byte: escape as latin-1 */
            } else fputc(*p, out);
        }
    }
    fputc('"', out);
}
static void sep(void) { if (!first) fputc(',', out); first = 0; }
static void key(const char *k) { sep(); jstr(k); fputc(':', out); }
static void kstr(const char *k, const char *v) { key(k); jstr(v); }
static void knum(const char *k, long long v) { key(k); fprintf(out, "%lld", v); }
static void kbool(const char *k, int v) { key(k); fputs(v ? "true" : "false", out); }
static void knull(const char *k) { key(k); fputs("null", out); }
static void open_obj(const char *k) { if (k) key(k); else sep(); fputc('{', out); first = 1; }
static void close_obj(void) { fputc('}', out); first = 0; }
static void open_arr(const char *k) { if (k) key(k); else sep(); fputc('[', out); first = 1; }
static void close_arr(void) { fputc(']', out); first = 0; }

/* Read a whole small file into a static-size buffer; NULL on failure. */
static char *slurp(const char *path, char *buf, size_t n) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t len = 0;
    ssize_t r;
    while (len < n - 1 && (r = read(fd, buf + len, n - 1 - len)) > 0) len += r;
    close(fd);
    buf[len] = 0;
    return buf;
}
static char *trim(char *s) {
    size_t l = strlen(s);
    while (l && (s[l - 1] == '\n' || s[l - 1] == ' ' || s[l - 1] == '\t')) s[--l] = 0;
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

static char status_buf[16384];
static int have_status;
/* Value of "Field:" in /proc/self/status, trimmed, in a static buffer. */
static const char *status_field(const char *name) {
    static char val[256];
    if (!have_status) return NULL;
    size_t nl = strlen(name);
    for (char *line = status_buf; line && *line;) {
        char *nx = strchr(line, '\n');
        if (!strncmp(line, name, nl) && line[nl] == ':') {
            size_t l = nx ? (size_t)(nx - line) : strlen(line);
            l -= nl + 1;
            if (l >= sizeof val) l = sizeof val - 1;
            memcpy(val, line + nl + 1, l);
            val[l] = 0;
            return trim(val);
        }
        line = nx ? nx + 1 : NULL;
    }
    return NULL;
}
static void kstatus_str(const char *k, const char *field) { kstr(k, status_field(field)); }
static void kstatus_num(const char *k, const char *field) {
    const char *v = status_field(field);
    if (v) knum(k, atoll(v)); else knull(k);
}

static const char *ftype(mode_t m) {
    if (S_ISCHR(m)) return "char";
    if (S_ISBLK(m)) return "block";
    if (S_ISDIR(m)) return "dir";
    if (S_ISLNK(m)) return "symlink";
    if (S_ISREG(m)) return "file";
    return "other";
}
static void kmode(const char *k, mode_t m) {
    char b[16];
    snprintf(b, sizeof b, "%04o", (unsigned)(m & 07777));
    kstr(k, b);
}

static void dev_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) < 0) continue;
        open_obj(NULL);
        kstr("path", p);
        kstr("type", ftype(st.st_mode));
        knum("major", major(st.st_rdev));
        knum("minor", minor(st.st_rdev));
        kmode("mode", st.st_mode);
        if (S_ISLNK(st.st_mode)) {
            char t[4096];
            ssize_t n = readlink(p, t, sizeof t - 1);
            if (n >= 0) { t[n] = 0; kstr("target", t); } else knull("target");
        } else knull("target");
        close_obj();
    }
    closedir(d);
}

/* Decode the octal escapes (\040 etc.) used in mountinfo. */
static void unescape(char *s) {
    char *o = s;
    while (*s) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
            *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 4;
        } else *o++ = *s++;
    }
    *o = 0;
}

static void mounts(void) {
    open_arr("mounts");
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f) {
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
            char *tok[64];
            int n = 0;
            for (char *s = strtok(line, " \n"); s && n < 64; s = strtok(NULL, " \n")) tok[n++] = s;
            /* id parent maj:min root mount_point options [optional...] - fstype source super */
            int dash = -1;
            for (int i = 6; i < n; i++) if (!strcmp(tok[i], "-")) { dash = i; break; }
            if (n < 7 || dash < 0 || dash + 3 > n) continue;
            char prop[1024] = "";
            for (int i = 6; i < dash; i++) {
                if (prop[0]) strncat(prop, " ", sizeof prop - strlen(prop) - 1);
                strncat(prop, tok[i], sizeof prop - strlen(prop) - 1);
            }
            unescape(tok[4]);
            unescape(tok[dash + 2]);
            open_obj(NULL);
            kstr("mount_point", tok[4]);
            kstr("fstype", tok[dash + 1]);
            kstr("source", tok[dash + 2]);
            kstr("options", tok[5]);
            kstr("super_options", dash + 3 < n ? tok[dash + 3] : "");
            kstr("propagation", prop);
            close_obj();
        }
        free(line);
        fclose(f);
    }
    close_arr();
}

static const struct { const char *name; int res; } rl[] = {
    {"RLIMIT_NOFILE", RLIMIT_NOFILE}, {"RLIMIT_NPROC", RLIMIT_NPROC}, {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_AS", RLIMIT_AS}, {"RLIMIT_CPU", RLIMIT_CPU}, {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_DATA", RLIMIT_DATA}, {"RLIMIT_STACK", RLIMIT_STACK}, {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE}, {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING}, {"RLIMIT_LOCKS", RLIMIT_LOCKS}, {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME},
};
static void klim(const char *k, rlim_t v) {
    if (v == RLIM_INFINITY) knum(k, -1); else knum(k, (long long)v);
}

static void path_info(const char *p) {
    open_obj(p);
    struct stat st;
    if (lstat(p, &st) < 0) {
        int e = errno;
        kbool("exists", 0);
        kstr("errno", strerrorname_np(e) ? strerrorname_np(e) : "unknown");
        close_obj();
        return;
    }
    kbool("exists", 1);
    kstr("type", ftype(st.st_mode));
    kmode("mode", st.st_mode);
    knum("uid", st.st_uid);
    knum("gid", st.st_gid);
    knum("size", st.st_size);
    kbool("readable", access(p, R_OK) == 0);
    int w = 0;
    if (S_ISDIR(st.st_mode)) {
        char t[4096];
        snprintf(t, sizeof t, "%s/.probe-write-test-%d", p, (int)getpid());
        if (mkdir(t, 0700) == 0) { w = 1; rmdir(t); }
    } else if (!S_ISLNK(st.st_mode)) {
        int fd = open(p, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd >= 0) { w = 1; close(fd); }
    }
    kbool("writable", w);
    struct statvfs sv;
    if (statvfs(p, &sv) == 0) kbool("fs_readonly", (sv.f_flag & ST_RDONLY) != 0);
    else knull("fs_readonly");
    close_obj();
}

static void on_signal(int sig) { _exit(128 + sig); }

/* sd_notify's wire format: one SOCK_DGRAM datagram to the path (or '@'
 * abstract name) in $NOTIFY_SOCKET. Returns 0 or the errno. */
static int notify(const char *msg) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) return EINVAL;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    memcpy(a.sun_path, path, strlen(path));
    if (a.sun_path[0] == '@') a.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    socklen_t len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
    int r = sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&a, len) < 0 ? errno : 0;
    close(fd);
    return r;
}

int main(int argc, char **argv) {
    int exit_code = 0, do_sleep = 0, notify_errno = -1;
    const char *write_to = NULL;
    /* --syscall NR [ARG...]: one raw syscall, printed as {"ret":R,"errno":E}
     * and nothing else (the seccomp tests: errno, ENOSYS, notify answers). */
    if (argc >= 3 && !strcmp(argv[1], "--syscall")) {
        long a[6] = {0};
        for (int i = 3; i < argc && i < 9; i++) a[i - 3] = strtol(argv[i], NULL, 0);
        errno = 0;
        long r = syscall(strtol(argv[2], NULL, 0), a[0], a[1], a[2], a[3], a[4], a[5]);
        printf("{\"ret\": %ld, \"errno\": %d}\n", r, r == -1 ? errno : 0);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--exit") && i + 1 < argc) exit_code = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sleep")) do_sleep = 1;
        else if (!strcmp(argv[i], "--write") && i + 1 < argc) write_to = argv[++i];
        else if (!strcmp(argv[i], "--notify") && i + 1 < argc) notify_errno = notify(argv[++i]);
    }
    /* SIGTERM's default action ends us with 143. As PID 1 of a pid namespace
     * the kernel ignores signals that have no handler, so only there a
     * handler emulates the default: exit status 128+signal. Installed first,
     * so a signal sent as soon as the container runs is not lost. */
    if (do_sleep && getpid() == 1) {
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        signal(SIGHUP, on_signal);
    }
    out = stdout;
    if (write_to) {
        out = fopen(write_to, "we");
        if (!out) { perror(write_to); return 125; }
    }
    have_status = slurp("/proc/self/status", status_buf, sizeof status_buf) != NULL;
    char buf[8192];

    fputc('{', out);
    first = 1;
    knum("pid", getpid());
    knum("ppid", getppid());
    if (notify_errno >= 0) knum("notify_errno", notify_errno);
    knum("uid", getuid());
    knum("gid", getgid());
    knum("euid", geteuid());
    knum("egid", getegid());
    open_arr("groups");
    {
        gid_t g[1024];
        int n = getgroups(1024, g);
        for (int i = 0; i < n; i++) { sep(); fprintf(out, "%u", (unsigned)g[i]); }
    }
    close_arr();

    open_obj("caps");
    kstatus_str("effective", "CapEff");
    kstatus_str("permitted", "CapPrm");
    kstatus_str("inheritable", "CapInh");
    kstatus_str("bounding", "CapBnd");
    kstatus_str("ambient", "CapAmb");
    close_obj();
    kstatus_num("no_new_privs", "NoNewPrivs");
    kstatus_num("seccomp", "Seccomp");

    struct utsname u;
    if (uname(&u) == 0) { kstr("hostname", u.nodename); kstr("domainname", u.domainname); }
    else { knull("hostname"); knull("domainname"); }
    if (getcwd(buf, sizeof buf)) kstr("cwd", buf); else knull("cwd");
    {
        const char *um = status_field("Umask");
        if (um) kstr("umask", um);
        else { mode_t m = umask(0); umask(m); snprintf(buf, sizeof buf, "%04o", (unsigned)m); kstr("umask", buf); }
    }

    open_arr("env");
    for (char **e = environ; e && *e; e++) { sep(); jstr(*e); }
    close_arr();
    open_arr("args");
    for (int i = 0; i < argc; i++) { sep(); jstr(argv[i]); }
    close_arr();

    open_obj("rlimits");
    for (size_t i = 0; i < sizeof rl / sizeof rl[0]; i++) {
        struct rlimit r;
        if (getrlimit(rl[i].res, &r) < 0) { knull(rl[i].name); continue; }
        open_obj(rl[i].name);
        klim("soft", r.rlim_cur);
        klim("hard", r.rlim_max);
        close_obj();
    }
    close_obj();

    open_obj("namespaces");
    {
        static const char *ns[] = {"pid", "pid_for_children", "mnt", "net", "uts", "ipc",
                                   "user", "cgroup", "time", "time_for_children"};
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
            struct stat st;
            snprintf(buf, sizeof buf, "/proc/self/ns/%s", ns[i]);
            if (stat(buf, &st) == 0) knum(ns[i], (long long)st.st_ino); else knull(ns[i]);
        }
    }
    close_obj();

    mounts();

    open_arr("dev");
    dev_entries("/dev");
    dev_entries("/dev/pts");
    close_arr();

    open_arr("cgroup");
    if (slurp("/proc/self/cgroup", buf, sizeof buf)) {
        for (char *s = strtok(buf, "\n"); s; s = strtok(NULL, "\n")) { sep(); jstr(s); }
    }
    close_arr();

    open_arr("fds");
    {
        DIR *d = opendir("/proc/self/fd");
        if (d) {
            int self = dirfd(d);
            struct dirent *e;
            while ((e = readdir(d))) {
                if (e->d_name[0] == '.') continue;
                int fd = atoi(e->d_name);
                if (fd == self) continue;
                sep();
                fprintf(out, "%d", fd);
            }
            closedir(d);
        }
    }
    close_arr();

    if (slurp("/proc/self/oom_score_adj", buf, sizeof buf)) knum("oom_score_adj", atoll(buf));
    else knull("oom_score_adj");
    knum("sched_policy", sched_getscheduler(0));
    errno = 0;
    {
        int n = getpriority(PRIO_PROCESS, 0);
        if (n == -1 && errno) knull("nice"); else knum("nice", n);
    }
    knum("ioprio", syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0));

    open_obj("clocks");
    {
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) { key("monotonic"); fprintf(out, "%lld.%09ld", (long long)ts.tv_sec, ts.tv_nsec); }
        else knull("monotonic");
        if (clock_gettime(CLOCK_BOOTTIME, &ts) == 0) { key("boottime"); fprintf(out, "%lld.%09ld", (long long)ts.tv_sec, ts.tv_nsec); }
        else knull("boottime");
    }
    close_obj();

    open_obj("sysctl");
    {
        static const char *sc[][2] = {{"kernel.shmmax", "/proc/sys/kernel/shmmax"},
                                      {"net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"},
                                      {"kernel.hostname", "/proc/sys/kernel/hostname"}};
        for (size_t i = 0; i < 3; i++) {
            if (slurp(sc[i][1], buf, sizeof buf)) kstr(sc[i][0], trim(buf)); else knull(sc[i][0]);
        }
    }
    close_obj();

    open_obj("paths");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--write") || !strcmp(argv[i], "--exit") || !strcmp(argv[i], "--notify")) { i++; continue; }
        if (argv[i][0] == '/') path_info(argv[i]);
    }
    close_obj();

    fputs("}\n", out);
    fflush(out);
    if (write_to) fclose(out);
    if (do_sleep) {
        for (;;) pause();
    }
    return exit_code;
}
