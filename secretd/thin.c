/* secretd: the command users run. A `secretd run` that a trusted daemon can take is
 * handed to it from here, without starting Python; anything else execs the Python
 * launcher (LAUNCHER: python -IS and secretd/thin.py), which does it as if started first.
 *
 * This is thin.py's forwarding path, step for step, for the runs it is sure of: the same
 * `argv` request (docs/protocol.md) with the same environment, working directory and
 * stdio descriptors, the same trust checks before a byte is sent (trust.py), the same
 * relay of signals and terminal resizes, the same exit status and error line. Where
 * thin.py would have to judge or explain (a config file, SECRETD_HOST that is not
 * unix:///path, a symbolic link on the socket's way, anything untrusted, bytes that are
 * not UTF-8, a reply that hands the run back), this program decides nothing and execs the
 * launcher, which checks again and says what is wrong. A Python start costs 9-10 ms of a
 * 20 ms run on a slow host; this costs well under one.
 *
 * tools/setup-host.sh compiles it to .venv/bin/secretd with -DLAUNCHER="...".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef LAUNCHER
#error "compile with -DLAUNCHER='\"/path/to/the/python/launcher\"'"
#endif

#define VERSION "1"
#define MAX_FRAME (1024 * 1024)
#define SOCKET_NAME "secretd.sock"
#define SYSTEM_RUNTIME_DIR "/run/secretd"
#define SYSTEM_CONFIG "/etc/secretd/config.toml"
#define PROJECT_CONFIG "secretd.toml"
#define GONE                                                                              \
    "the secretd daemon closed the connection before the command ended: see the daemon's log"

extern char **environ;

static char **arguments;

/* The signals relayed once the command runs (wire.FORWARDED), and terminal resizes. */
static const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
#define NFORWARDED (sizeof FORWARDED / sizeof *FORWARDED)
static struct sigaction previous[NFORWARDED];
static sigset_t unblocked;
static int relaying;

/* Everything this program does not do itself: the launcher does it, from the start, with
 * the signal dispositions this program was given (one that came meanwhile acts now). */
static void __attribute__((noreturn)) hand_over(void) {
    for (size_t i = 0; relaying && i < NFORWARDED; i++)
        sigaction(FORWARDED[i], &previous[i], NULL);
    if (relaying)
        sigprocmask(SIG_SETMASK, &unblocked, NULL);
    execv(LAUNCHER, arguments);
    fprintf(stderr, "secretd: cannot start %s: %s: run 'make setup' again\n", LAUNCHER,
            strerror(errno));
    _exit(125);
}

/* ---- thin.py's _may_forward and sockets ------------------------------------------- */

/* A path, whole: one that does not fit is the launcher's, never a shorter one checked. */
static void __attribute__((format(printf, 3, 4)))
path_of(char *out, size_t room, const char *format, ...) {
    va_list values;
    va_start(values, format);
    int length = vsnprintf(out, room, format, values);
    va_end(values);
    if (length < 0 || (size_t)length >= room)
        hand_over();
}

/* c is one of `set` (never the terminating NUL). */
static int one_of(char c, const char *set) { return c && strchr(set, c); }

static int exists(const char *path) {
    struct stat info;
    return lstat(path, &info) == 0;
}

static const char *setting(const char *name) {
    const char *value = getenv(name);
    return value && *value ? value : NULL;
}

static int may_forward(int argc, char **argv) {
    for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help") || !strcmp(argv[i], "--no-daemon"))
            return 0;
    if (setting("SECRETD_STRICT") || setting("SECRETD_RUNTIME"))
        return 0;
    const char *home = getenv("HOME"), *config_home = setting("XDG_CONFIG_HOME");
    char user[4096];
    if (config_home)
        path_of(user, sizeof user, "%s/secretd/config.toml", config_home);
    else if (home && *home)
        path_of(user, sizeof user, "%s/.config/secretd/config.toml", home);
    else
        return 0; /* where ~ is, the launcher asks the password database */
    return !exists(user) && !exists(PROJECT_CONFIG) && !exists(SYSTEM_CONFIG);
}

/* os.path.join(directory, name) */
static void join(char *out, size_t room, const char *directory, const char *name) {
    size_t length = strlen(directory);
    const char *slash = length && directory[length - 1] == '/' ? "" : "/";
    path_of(out, room, "%s%s%s", directory, slash, name);
}

/* The sockets thin.sockets() lists; 0 when only the launcher can say. */
static int sockets(char paths[2][4096]) {
    const char *host = setting("SECRETD_HOST");
    if (host) {
        if (strncmp(host, "unix:///", 8) != 0)
            return 0;
        path_of(paths[0], 4096, "%s", host + 7);
        return 1;
    }
    char fallback[64], xdg[4096];
    const char *runtime = setting("SECRETD_RUNTIME_DIR"), *runtime_xdg = setting("XDG_RUNTIME_DIR");
    if (!runtime && geteuid() == 0) {
        runtime = SYSTEM_RUNTIME_DIR;
    } else if (!runtime && runtime_xdg) {
        join(xdg, sizeof xdg, runtime_xdg, "secretd");
        runtime = xdg;
    } else if (!runtime) {
        snprintf(fallback, sizeof fallback, "/tmp/secretd-%u", (unsigned)getuid());
        runtime = fallback;
    }
    join(paths[0], 4096, runtime, SOCKET_NAME);
    if (geteuid() != 0 && strcmp(paths[0], SYSTEM_RUNTIME_DIR "/" SOCKET_NAME) != 0) {
        snprintf(paths[1], 4096, "%s", SYSTEM_RUNTIME_DIR "/" SOCKET_NAME);
        return 2;
    }
    return 1;
}

/* ---- trust.py: who controls the socket ------------------------------------------- */

enum verdict { TRUSTED, ABSENT, DOUBT };

static int trusted_uid(uid_t uid) { return uid == 0 || uid == geteuid(); }

static enum verdict judge(const struct stat *info, int last) {
    if (!trusted_uid(info->st_uid))
        return DOUBT;
    int writable = info->st_mode & (S_IWGRP | S_IWOTH);
    int shared = (info->st_mode & S_ISVTX) && info->st_uid == 0 && !last;
    return writable && !shared ? DOUBT : TRUSTED;
}

/* trust.check_directory without links: a symbolic link on the way is the launcher's to
 * judge (it follows those of root and the caller). */
static enum verdict check_directory(const char *directory) {
    char path[8192], cwd[4096];
    if (directory[0] == '/') {
        path_of(path, sizeof path, "%s", directory);
    } else {
        if (!getcwd(cwd, sizeof cwd))
            return DOUBT;
        join(path, sizeof path, cwd, directory);
    }
    int fds[512], depth = 0;
    struct stat info;
    fds[0] = open("/", O_PATH | O_NOFOLLOW | O_CLOEXEC | O_DIRECTORY);
    if (fds[0] < 0 || fstat(fds[0], &info) != 0)
        return DOUBT;
    enum verdict verdict = judge(&info, 0);
    for (char *save = NULL, *name = strtok_r(path, "/", &save); name && verdict == TRUSTED;
         name = strtok_r(NULL, "/", &save)) {
        if (!strcmp(name, "."))
            continue;
        if (!strcmp(name, "..")) {
            if (depth > 0)
                close(fds[depth--]);
            continue;
        }
        int fd = openat(fds[depth], name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || depth + 1 >= (int)(sizeof fds / sizeof *fds)) {
            verdict = fd < 0 && errno == ENOENT ? ABSENT : DOUBT;
        } else if (fstat(fd, &info) != 0 || S_ISLNK(info.st_mode)) {
            verdict = DOUBT;
        } else if (!S_ISDIR(info.st_mode)) {
            verdict = ABSENT; /* not a directory: no daemon there */
        } else {
            fds[++depth] = fd;
            verdict = judge(&info, 0);
            continue;
        }
        if (fd >= 0)
            close(fd);
    }
    if (verdict == TRUSTED)
        verdict = fstat(fds[depth], &info) == 0 ? judge(&info, 1) : DOUBT;
    while (depth >= 0)
        close(fds[depth--]);
    return verdict;
}

/* os.path.dirname */
static void dirname_of(char *out, size_t room, const char *path) {
    const char *slash = strrchr(path, '/');
    size_t length = slash ? (size_t)(slash - path) + 1 : 0;
    while (length > 1 && path[length - 1] == '/')
        length--;
    snprintf(out, room, "%.*s", (int)length, path);
}

/* A connection to the first daemon that answers and passes trust's checks; -1 when none
 * answers. Anything the checks doubt is handed over. */
static int connect_daemon(void) {
    char paths[2][4096], directory[4096];
    int count = sockets(paths);
    if (!count)
        hand_over();
    for (int i = 0; i < count; i++) {
        struct stat info;
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        if (lstat(paths[i], &info) != 0)
            continue;
        dirname_of(directory, sizeof directory, paths[i]);
        enum verdict verdict = check_directory(directory);
        if (verdict == ABSENT)
            continue;
        if (verdict == DOUBT || lstat(paths[i], &info) != 0 || S_ISLNK(info.st_mode) ||
            !trusted_uid(info.st_uid))
            hand_over();
        if (strlen(paths[i]) >= sizeof address.sun_path)
            continue;
        strcpy(address.sun_path, paths[i]);
        int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sock < 0)
            hand_over();
        if (connect(sock, (struct sockaddr *)&address, sizeof address) != 0) {
            close(sock);
            continue;
        }
        struct ucred peer;
        socklen_t size = sizeof peer;
        if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0 || !trusted_uid(peer.uid))
            hand_over();
        return sock;
    }
    return -1;
}

/* ---- the request: thin.encode ----------------------------------------------------- */

struct buffer {
    char *data;
    size_t used, room;
};

static void put(struct buffer *out, const char *data, size_t size) {
    if (out->used + size > out->room) {
        out->room = (out->used + size) * 2;
        out->data = realloc(out->data, out->room);
        if (!out->data)
            hand_over();
    }
    memcpy(out->data + out->used, data, size);
    out->used += size;
}

static void puts_(struct buffer *out, const char *text) { put(out, text, strlen(text)); }

/* Python's strict UTF-8: the length of the sequence at `text`, 0 when it is not one. */
static size_t utf8_length(const unsigned char *text) {
    unsigned char c = text[0];
    if (c < 0x80)
        return 1;
    size_t length = c >= 0xC2 && c <= 0xDF   ? 2
                    : c >= 0xE0 && c <= 0xEF ? 3
                    : c >= 0xF0 && c <= 0xF4 ? 4
                                             : 0;
    for (size_t i = 1; i < length; i++)
        if ((text[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && text[1] < 0xA0) || (c == 0xED && text[1] > 0x9F) ||
        (c == 0xF0 && text[1] < 0x90) || (c == 0xF4 && text[1] > 0x8F))
        return 0; /* overlong, a surrogate, beyond U+10FFFF */
    return length;
}

/* A JSON string; text that is not UTF-8 (Python would send it surrogate-escaped) is
 * handed over. */
static void put_string(struct buffer *out, const char *text, size_t size) {
    char escape[8];
    put(out, "\"", 1);
    for (size_t i = 0; i < size;) {
        unsigned char c = (unsigned char)text[i];
        size_t length = utf8_length((const unsigned char *)text + i);
        if (!length || i + length > size)
            hand_over();
        if (c == '"' || c == '\\') {
            put(out, "\\", 1);
            put(out, text + i, 1);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(escape, sizeof escape, "\\u%04x", c);
            puts_(out, escape);
        } else {
            put(out, text + i, length);
        }
        i += length;
    }
    put(out, "\"", 1);
}

/* What Python's start does to the environment before thin.py reads it (PEP 538): a C
 * locale's LC_CTYPE becomes C.UTF-8 (or the first of its aliases this system has) unless
 * LC_ALL is set, and the full CLI passes that on to the command; so does this program. */
static void coerce_locale(void) {
    static const char *const targets[] = {"C.UTF-8", "C.utf8", "UTF-8"};
    if (setting("LC_ALL"))
        return;
    setlocale(LC_CTYPE, "");
    const char *ctype = setlocale(LC_CTYPE, NULL);
    if (!ctype || strcmp(ctype, "C") != 0)
        return;
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        locale_t found = newlocale(LC_CTYPE_MASK, targets[i], (locale_t)0);
        if (found) {
            freelocale(found);
            setenv("LC_CTYPE", targets[i], 1);
            return;
        }
    }
}

/* os.environ as Python builds it: entries without '=' left out, the first of two with
 * one name kept. */
static void put_environment(struct buffer *out) {
    int first = 1;
    puts_(out, "{");
    for (char **entry = environ; *entry; entry++) {
        const char *equals = strchr(*entry, '=');
        if (!equals)
            continue;
        size_t name = (size_t)(equals - *entry);
        int seen = 0;
        for (char **earlier = environ; earlier < entry && !seen; earlier++)
            seen = !strncmp(*earlier, *entry, name + 1);
        if (seen)
            continue;
        if (!first)
            puts_(out, ",");
        first = 0;
        put_string(out, *entry, name);
        puts_(out, ":");
        put_string(out, equals + 1, strlen(equals + 1));
    }
    puts_(out, "}");
}

/* A frame: its 4-byte big-endian length first (filled in by end_frame), then JSON. */
static void begin_frame(struct buffer *out) { put(out, "\0\0\0\0", 4); }

static size_t end_frame(struct buffer *out) {
    size_t length = out->used - 4;
    for (int i = 0; i < 4; i++)
        out->data[i] = (char)(length >> (24 - 8 * i));
    return length;
}

static void request(struct buffer *out, int argc, char **argv) {
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        hand_over();
    coerce_locale();
    begin_frame(out);
    puts_(out, "{\"v\":" VERSION ",\"op\":\"argv\",\"argv\":[");
    for (int i = 2; i < argc; i++) {
        if (i > 2)
            puts_(out, ",");
        put_string(out, argv[i], strlen(argv[i]));
    }
    puts_(out, "],\"env\":");
    put_environment(out);
    puts_(out, ",\"cwd\":");
    put_string(out, cwd, strlen(cwd));
    puts_(out, "}");
    if (end_frame(out) > MAX_FRAME)
        hand_over(); /* the daemon would refuse it; the launcher runs it by itself */
}

/* wire.stdio_to_pass, then the frame with the descriptors. 0 when the daemon refused
 * before reading (its refusal follows). */
static int send_request(int sock, const struct buffer *frame) {
    int fds[3], opened[3], count = 0;
    for (int fd = 0; fd < 3; fd++) {
        struct stat info;
        fds[fd] = fd;
        if (fstat(fd, &info) != 0)
            fds[fd] = opened[count++] = open("/dev/null", O_RDWR | O_CLOEXEC);
    }
    char control[CMSG_SPACE(sizeof fds)] = {0};
    struct iovec data = {.iov_base = frame->data, .iov_len = frame->used};
    struct msghdr message = {.msg_iov = &data, .msg_iovlen = 1, .msg_control = control,
                             .msg_controllen = sizeof control};
    struct cmsghdr *rights = CMSG_FIRSTHDR(&message);
    rights->cmsg_level = SOL_SOCKET;
    rights->cmsg_type = SCM_RIGHTS;
    rights->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(rights), fds, sizeof fds);
    ssize_t sent = sendmsg(sock, &message, MSG_NOSIGNAL);
    while (sent >= 0 && (size_t)sent < frame->used) {
        ssize_t more = send(sock, frame->data + sent, frame->used - (size_t)sent, MSG_NOSIGNAL);
        sent = more < 0 ? -1 : sent + more;
    }
    while (count)
        close(opened[--count]);
    return sent >= 0;
}

/* ---- the replies: what thin.py reads of them -------------------------------------- */

struct reply {
    char event[16], error[4096];
    int has_status, status, has_code, code, has_error, ok_false;
};

struct scanner {
    const char *at, *end;
};

static void blank(struct scanner *in) {
    while (in->at < in->end && one_of(*in->at, " \t\r\n"))
        in->at++;
}

static int expect(struct scanner *in, char c) {
    blank(in);
    if (in->at < in->end && *in->at == c) {
        in->at++;
        return 1;
    }
    return 0;
}

static int hex4(const char *at, unsigned *value) {
    *value = 0;
    for (int i = 0; i < 4; i++) {
        char c = at[i];
        int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (digit < 0)
            return 0;
        *value = *value * 16 + (unsigned)digit;
    }
    return 1;
}

static size_t encode_utf8(char *out, unsigned code) {
    if (code < 0x80)
        return out[0] = (char)code, 1;
    if (code < 0x800)
        return out[0] = (char)(0xC0 | code >> 6), out[1] = (char)(0x80 | (code & 0x3F)), 2;
    if (code < 0x10000)
        return out[0] = (char)(0xE0 | code >> 12), out[1] = (char)(0x80 | ((code >> 6) & 0x3F)),
               out[2] = (char)(0x80 | (code & 0x3F)), 3;
    return out[0] = (char)(0xF0 | code >> 18), out[1] = (char)(0x80 | ((code >> 12) & 0x3F)),
           out[2] = (char)(0x80 | ((code >> 6) & 0x3F)), out[3] = (char)(0x80 | (code & 0x3F)), 4;
}

/* A JSON string into `out` (UTF-8, cut to fit); 0 when malformed. */
static int scan_string(struct scanner *in, char *out, size_t room) {
    size_t used = 0;
    if (!expect(in, '"'))
        return 0;
    while (in->at < in->end && *in->at != '"') {
        char piece[4];
        size_t size = 1;
        unsigned code;
        if (*in->at != '\\') {
            piece[0] = *in->at++;
        } else if (in->end - in->at >= 6 && in->at[1] == 'u' && hex4(in->at + 2, &code)) {
            in->at += 6;
            unsigned low;
            if (code >= 0xD800 && code < 0xDC00 && in->end - in->at >= 6 && in->at[0] == '\\' &&
                in->at[1] == 'u' && hex4(in->at + 2, &low) && low >= 0xDC00 && low < 0xE000) {
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                in->at += 6;
            }
            size = encode_utf8(piece, code >= 0xD800 && code < 0xE000 ? 0xFFFD : code);
        } else if (in->end - in->at >= 2 && one_of(in->at[1], "\"\\/bfnrt")) {
            const char *escaped = strchr("\"\\/bfnrt", in->at[1]);
            piece[0] = "\"\\/\b\f\n\r\t"[escaped - "\"\\/bfnrt"];
            in->at += 2;
        } else {
            return 0;
        }
        if (out && used + size < room) {
            memcpy(out + used, piece, size);
            used += size;
        }
    }
    if (out)
        out[used] = '\0';
    return expect(in, '"');
}

static int skip_value(struct scanner *in, int depth);

/* An integer into `value` (`*is_int` 0 for a fraction, an exponent, or another kind). */
static int scan_value(struct scanner *in, int *is_int, int *value) {
    blank(in);
    *is_int = 0;
    if (in->at < in->end && (*in->at == '-' || (*in->at >= '0' && *in->at <= '9'))) {
        char *stop;
        long number = strtol(in->at, &stop, 10);
        if (stop == in->at)
            return 0;
        *is_int = stop < in->end && one_of(*stop, ".eE") ? 0 : 1;
        *value = number > INT32_MAX ? INT32_MAX : number < -INT32_MAX ? -INT32_MAX : (int)number;
        return skip_value(in, 0);
    }
    return skip_value(in, 0);
}

static int skip_value(struct scanner *in, int depth) {
    blank(in);
    if (in->at >= in->end || depth > 64)
        return 0;
    char c = *in->at;
    if (c == '"')
        return scan_string(in, NULL, 0);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        in->at++;
        if (expect(in, close))
            return 1;
        do {
            if (c == '{' && !(scan_string(in, NULL, 0) && expect(in, ':')))
                return 0;
            if (!skip_value(in, depth + 1))
                return 0;
        } while (expect(in, ','));
        return expect(in, close);
    }
    const char *start = in->at;
    while (in->at < in->end && one_of(*in->at, "-+.0123456789eEtrufalsn"))
        in->at++;
    return in->at > start;
}

static int scan_reply(const char *data, size_t size, struct reply *reply) {
    struct scanner in = {data, data + size};
    memset(reply, 0, sizeof *reply);
    if (!expect(&in, '{'))
        return 0;
    if (expect(&in, '}'))
        return 1;
    do {
        char key[32];
        int is_int, number = 0;
        if (!scan_string(&in, key, sizeof key) || !expect(&in, ':'))
            return 0;
        blank(&in);
        if (!strcmp(key, "event") && in.at < in.end && *in.at == '"') {
            if (!scan_string(&in, reply->event, sizeof reply->event))
                return 0;
        } else if (!strcmp(key, "error") && in.at < in.end && *in.at == '"') {
            if (!scan_string(&in, reply->error, sizeof reply->error))
                return 0;
            reply->has_error = 1;
        } else if (!strcmp(key, "ok") && in.end - in.at >= 5 && !strncmp(in.at, "false", 5)) {
            reply->ok_false = 1;
            in.at += 5;
        } else if (!strcmp(key, "status") || !strcmp(key, "exit_code")) {
            if (!scan_value(&in, &is_int, &number))
                return 0;
            if (!strcmp(key, "status"))
                reply->has_status = is_int, reply->status = number;
            else
                reply->has_code = is_int, reply->code = number;
        } else if (!skip_value(&in, 0)) {
            return 0;
        }
    } while (expect(&in, ','));
    return expect(&in, '}'); /* what follows is not read, as by thin.py's scanner */
}

static int read_exactly(int sock, char *data, size_t size) {
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(sock, data + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        got += (size_t)n;
    }
    return 1;
}

/* One reply; 0 when the daemon closed the connection or broke the framing. */
static int receive(int sock, struct reply *reply) {
    unsigned char header[4];
    if (!read_exactly(sock, (char *)header, 4))
        return 0;
    size_t length = (size_t)header[0] << 24 | header[1] << 16 | header[2] << 8 | header[3];
    if (length > MAX_FRAME)
        return 0;
    char *payload = malloc(length + 1);
    if (payload)
        payload[length] = '\0'; /* strtol stops there */
    int ok = payload && read_exactly(sock, payload, length) && scan_reply(payload, length, reply);
    free(payload);
    return ok;
}

/* ---- signals: thin._Relay ---------------------------------------------------------- */

static volatile sig_atomic_t pending[NFORWARDED];

static void note_signal(int signum) {
    for (size_t i = 0; i < NFORWARDED; i++)
        if (FORWARDED[i] == signum)
            pending[i] = 1;
}

static void send_message(int sock, const char *text) {
    struct buffer frame = {0};
    begin_frame(&frame);
    puts_(&frame, text);
    end_frame(&frame);
    for (size_t sent = 0; sent < frame.used;) {
        ssize_t n = send(sock, frame.data + sent, frame.used - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break; /* the daemon is gone; the next read reports it */
        sent += (size_t)n;
    }
    free(frame.data);
}

static void relay(int sock, int started) {
    for (size_t i = 0; i < NFORWARDED; i++) {
        if (!pending[i])
            continue;
        pending[i] = 0;
        char message[64];
        struct winsize size;
        if (!started && FORWARDED[i] != SIGWINCH)
            _exit(128 + FORWARDED[i]); /* the daemon sees the client go and abandons the run */
        if (!started)
            continue;
        if (FORWARDED[i] != SIGWINCH)
            snprintf(message, sizeof message, "{\"op\":\"signal\",\"signal\":%d}", FORWARDED[i]);
        else if (ioctl(0, TIOCGWINSZ, &size) == 0)
            snprintf(message, sizeof message, "{\"op\":\"resize\",\"rows\":%u,\"cols\":%u}",
                     size.ws_row, size.ws_col);
        else
            snprintf(message, sizeof message, "{\"op\":\"resize\"}");
        send_message(sock, message);
    }
}

/* ---- the run ------------------------------------------------------------------------ */

/* A daemon handed the run back, or refused it before reading it: the full CLI runs it
 * (thin.py's HANDED_BACK), and says what is wrong. */
static void __attribute__((noreturn)) handed_back(void) {
    setenv("SECRETD_HANDED_BACK", "1", 1);
    hand_over();
}

/* errors.printable for what a daemon sends, which it has made printable already: the
 * control characters are escaped here too, so that no reply can drive the terminal. */
static int fail(const char *line, int status) {
    char out[4 * 4096 + 64];
    size_t used = (size_t)snprintf(out, sizeof out, "secretd: ");
    for (const unsigned char *c = (const unsigned char *)line; *c && used + 5 < sizeof out; c++)
        used += *c < 0x20 || *c == 0x7f ? (size_t)snprintf(out + used, 5, "\\x%02x", *c)
                                        : (size_t)(out[used] = (char)*c, 1);
    out[used++] = '\n';
    if (write(2, out, used) < 0)
        return 125;
    return status == 1 ? 125 : status;
}

static int outcome(const struct reply *reply) {
    if (!strcmp(reply->event, "exit") && reply->has_status)
        return reply->status;
    int status = reply->has_code && reply->code > 0 && reply->code < 256 ? reply->code : 1;
    return fail(reply->has_error && *reply->error ? reply->error : "the daemon refused the request",
                status);
}

int main(int argc, char **argv) {
    arguments = argv;
    if (argc < 2 || strcmp(argv[1], "run") != 0 || !may_forward(argc, argv))
        hand_over();
    struct buffer frame = {0};
    request(&frame, argc, argv);
    int sock = connect_daemon();
    if (sock < 0)
        hand_over();

    sigset_t forwarded;
    sigemptyset(&forwarded);
    for (size_t i = 0; i < NFORWARDED; i++)
        sigaddset(&forwarded, FORWARDED[i]);
    sigprocmask(SIG_BLOCK, &forwarded, &unblocked);
    struct sigaction action = {.sa_handler = note_signal};
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < NFORWARDED; i++)
        sigaction(FORWARDED[i], &action, &previous[i]);
    relaying = 1;

    int sent = send_request(sock, &frame), started = 0;
    free(frame.data);
    for (;;) {
        struct pollfd readable = {.fd = sock, .events = POLLIN};
        if (ppoll(&readable, 1, NULL, &unblocked) < 0) {
            relay(sock, started);
            continue;
        }
        struct reply reply;
        if (!receive(sock, &reply)) {
            if (!sent)
                handed_back();
            _exit(fail(GONE, 125));
        }
        if (!strcmp(reply.event, "fallback") ||
            (reply.ok_false && !strncmp(reply.error, "unknown request 'argv'", 22)))
            handed_back(); /* a daemon of an earlier release: the full CLI sends `run` */
        if (!strcmp(reply.event, "started")) {
            started = 1;
            continue;
        }
        _exit(outcome(&reply));
    }
}
