/*
 * cnikit-shim: what a container runtime execs for each cnikit plugin type. It sends the type
 * (basename of argv[0]), the CNI_* and CNIKIT_* environment and stdin to the cnikit daemon over
 * its unix socket ($CNIKIT_SOCKET, else /run/cnikit/cni.sock) and writes back the daemon's stdout
 * bytes, the plugin's logs (stderr) and exit code untouched. With no daemon, or one speaking
 * another protocol version, it execs the standalone `cnikit` binary beside it under the type's
 * name, with the same stdin; so too when the daemon declines the call (the shim runs in another
 * network or mount namespace). If the daemon dies mid-call, ADD prints spec error 11 (the ADD may have
 * half run: try again later) and every other verb falls back to the standalone binary.
 *
 * Frames (src/agent/protocol.ts is the other side): "CNIK", version (u32 BE), body length (u32 BE),
 * body. Request body: type NUL, K=V NUL ..., NUL, stdin. Reply body: exit code (u32 BE), stdout
 * length (u32 BE), stdout, stderr (the plugin's logs, written to this process's stderr).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PROTOCOL_VERSION 1
#define DEFAULT_SOCKET "/run/cnikit/cni.sock"
#define MARKER "cnikit-shim protocol "

extern char **environ;

struct buf { char *p; size_t len, cap; };

static void put(struct buf *b, const void *data, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { fputs("cnikit-shim: out of memory\n", stderr); exit(1); }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_u32(struct buf *b, uint32_t v) {
    unsigned char x[4] = { v >> 24, v >> 16, v >> 8, v };
    put(b, x, 4);
}

static uint32_t get_u32(const unsigned char *x) {
    return (uint32_t)x[0] << 24 | (uint32_t)x[1] << 16 | (uint32_t)x[2] << 8 | x[3];
}

static int write_all(int fd, const char *p, size_t n, int sock) {
    while (n > 0) {
        ssize_t w = sock ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read exactly n bytes; 0 on success, -1 on EOF or error. */
static int read_full(int fd, void *dst, size_t n) {
    char *p = dst;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The config's cniVersion, found cheaply (first "cniVersion" key), else 1.1.0. */
static void cni_version(const struct buf *in, char out[16]) {
    strcpy(out, "1.1.0");
    const char *end = in->p + in->len, *k = in->len ? memmem(in->p, in->len, "\"cniVersion\"", 12) : NULL;
    if (!k) return;
    const char *p = k + 12;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ':')) p++;
    if (p >= end || *p++ != '"') return;
    size_t n = 0;
    while (p + n < end && n < 15 && ((p[n] >= '0' && p[n] <= '9') || p[n] == '.')) n++;
    if (n == 0 || p + n >= end || p[n] != '"') return;
    memcpy(out, p, n);
    out[n] = 0;
}

/* Print s as the inside of a JSON string (quotes and backslashes escaped, control bytes dropped). */
static void json_text(const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        if ((unsigned char)*s >= 0x20) putchar(*s);
    }
}

/* Exec the standalone binary beside this one as `type`, with the stdin already read. */
static void fallback(const char *type, char **argv, const struct buf *in) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 8);
    if (n <= 0) { perror("cnikit-shim: /proc/self/exe"); exit(1); }
    self[n] = 0;
    char *slash = strrchr(self, '/');
    strcpy(slash ? slash + 1 : self, "cnikit");
    int fd = memfd_create("cnikit-stdin", 0); /* a file: no pipe to keep fed while cnikit starts */
    if (fd >= 0 && write_all(fd, in->p ? in->p : "", in->len, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0) {
        dup2(fd, 0);
        if (fd != 0) close(fd);
    }
    argv[0] = (char *)type;
    execv(self, argv);
    char ver[16];
    cni_version(in, ver);
    int err = errno;
    printf("{\"cniVersion\": \"%s\", \"code\": 999, \"msg\": \"cnikit-shim: no cnikit daemon answered and ", ver);
    json_text(self);
    printf(" could not be run: %s\"}\n", strerror(err));
    exit(1);
}

int main(int argc, char **argv) {
    const char *type = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    if (strcmp(type, "cnikit-shim") == 0) {
        if (argc > 1 && strcmp(argv[1], "--version") == 0) { printf(MARKER "%d\n", PROTOCOL_VERSION); return 0; }
        fputs("usage: link a plugin type's name to cnikit-shim (cnikit install does); cnikit-shim --version\n", stderr);
        return 2;
    }
    struct buf in = { 0 }, req = { 0 };
    char chunk[65536];
    for (;;) {
        ssize_t r = read(0, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        put(&in, chunk, (size_t)r);
    }
    /* the request: envelope (length patched below), type, environment, stdin */
    put(&req, "CNIK", 4);
    put_u32(&req, PROTOCOL_VERSION);
    put_u32(&req, 0);
    put(&req, type, strlen(type) + 1);
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "CNI_", 4) == 0 || strncmp(*e, "CNIKIT_", 7) == 0) put(&req, *e, strlen(*e) + 1);
    /* the daemon declines shims of another network or mount namespace (another "host") */
    const char *nsname[2][2] = { { "/proc/self/ns/net", "NETNS" }, { "/proc/self/ns/mnt", "MNTNS" } };
    for (int i = 0; i < 2; i++) {
        struct stat ns;
        char e[64];
        if (stat(nsname[i][0], &ns) != 0) continue;
        snprintf(e, sizeof e, "CNIKIT_SHIM_%s=%llu", nsname[i][1], (unsigned long long)ns.st_ino);
        put(&req, e, strlen(e) + 1);
    }
    put(&req, "", 1);
    if (in.len) put(&req, in.p, in.len);
    uint32_t body = (uint32_t)(req.len - 12);
    unsigned char *lp = (unsigned char *)req.p + 8;
    lp[0] = body >> 24; lp[1] = body >> 16; lp[2] = body >> 8; lp[3] = body;

    const char *path = getenv("CNIKIT_SOCKET");
    if (!path || !*path) path = DEFAULT_SOCKET;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path) fallback(type, argv, &in);
    strcpy(sa.sun_path, path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) fallback(type, argv, &in); /* no daemon */
    int sent = write_all(s, req.p, req.len, 1) == 0; /* no half-close: Bun would close the connection */

    unsigned char head[12];
    if (read_full(s, head, 12) == 0) {
        uint32_t version = get_u32(head + 4), len = get_u32(head + 8);
        /* another protocol, or the daemon declines (empty reply): the standalone binary answers */
        if (memcmp(head, "CNIK", 4) != 0 || version != PROTOCOL_VERSION || len == 0) fallback(type, argv, &in);
        unsigned char *reply = len >= 8 ? malloc(len) : NULL;
        if (reply && read_full(s, reply, len) == 0 && get_u32(reply + 4) <= len - 8) {
            uint32_t n = get_u32(reply + 4);
            write_all(2, (char *)reply + 8 + n, len - 8 - n, 0);
            if (write_all(1, (char *)reply + 8, n, 0) < 0) return 1;
            return (int)get_u32(reply);
        }
    }
    /* no whole reply: the daemon died (or closed on us) mid-call */
    const char *cmd = getenv("CNI_COMMAND");
    if (sent && cmd && strcmp(cmd, "ADD") == 0) {
        char ver[16];
        cni_version(&in, ver);
        printf("{\"cniVersion\": \"%s\", \"code\": 11, \"msg\": \"cnikit-shim: the cnikit daemon (", ver);
        json_text(path);
        printf(") stopped during ADD; try again later\"}\n");
        return 1;
    }
    fallback(type, argv, &in);
    return 1;
}
