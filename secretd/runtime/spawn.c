/* secretd-spawn: the sandbox's set-up, started with posix_spawn instead of a fork of
 * secretd's (large, in the daemon memory-locked) Python process.
 *
 * It does what runtime/nsinit.py does in a forked child, step for step, with the same
 * failure lines on the socket: enter the mount (and user) namespace, clone the init into
 * a new PID namespace as secretd's own child (CLONE_PARENT), leave; the init mounts
 * /proc, hands secretd a descriptor of a new tmpfs (or binds the FUSE mount secretd
 * serves), attaches read-only views of it, switches user and execs tini with the
 * command. runtime/spawn.py builds the arguments; tools/setup-host.sh compiles this file.
 *
 * Arguments: PARENT FLAGS SIZE SECRETS_DIR INIT WORKDIR UID GID GROUPS SOURCE NBINDS
 *            [INNER TARGET]... -- COMMAND [ARG]...
 * FLAGS holds u (user namespace), s (new session), x (configs may exec), or is "-";
 * WORKDIR and SOURCE are "" for none; GROUPS is "-" (keep) or a comma-separated list.
 * Descriptors: 0-2 the command's stdio, 3 the socket to secretd. Environment: the
 * command's.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define SOCK 3
#define CLONE_ARGS_SIZE_VER0 64 /* struct clone_args as of Linux 5.3: flags come first */
#define MOUNT_FLAGS (MS_NOSUID | MS_NODEV | MS_NOEXEC)
#define BIND_RO (MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
#define MAX_ENTRIES 4096

extern char **environ;

static const char *kind = "setup";
static const char *command;

/* Python's repr() of a command name, as nsinit.py prints it. */
static void quoted(char *out, size_t room, const char *text) {
    char quote = strchr(text, '\'') && !strchr(text, '"') ? '"' : '\'';
    size_t used = 0;
    out[used++] = quote;
    for (const unsigned char *c = (const unsigned char *)text; *c && used + 6 < room; c++) {
        if (*c == '\\' || *c == quote)
            used += snprintf(out + used, room - used, "\\%c", *c);
        else if (*c == '\t' || *c == '\n' || *c == '\r')
            used += snprintf(out + used, room - used, "\\%c", "tnr"[*c == '\t' ? 0 : *c == '\n' ? 1 : 2]);
        else if (*c < 0x20 || *c == 0x7f)
            used += snprintf(out + used, room - used, "\\x%02x", *c);
        else
            out[used++] = (char)*c;
    }
    out[used++] = quote;
    out[used] = '\0';
}

static void say(const char *line) {
    (void)send(SOCK, line, strnlen(line, 4000), MSG_NOSIGNAL);
}

/* A failed call, reported as nsinit.py's _report would word the OSError: WHAT is the
 * message of a _linux call ("mount /proc: ..."), FILENAME that of an os call. */
static _Noreturn void fail(int code, const char *what, const char *filename, int status) {
    char line[4200];
    const char *shown = kind;
    if (strcmp(kind, "setup") == 0 && (code == EPERM || code == EACCES))
        shown = "refused";
    if (what)
        snprintf(line, sizeof line, "%s:cannot set up the sandbox: %s: %s", shown, what,
                 strerror(code));
    else if (filename)
        snprintf(line, sizeof line, "%s:cannot set up the sandbox: %s (%s)", shown,
                 strerror(code), filename);
    else
        snprintf(line, sizeof line, "%s:cannot set up the sandbox: %s", shown, strerror(code));
    say(line);
    _exit(status);
}

static _Noreturn void fail_text(int code, const char *text, const char *filename, int status) {
    char line[4200];
    (void)code;
    snprintf(line, sizeof line, "%s:cannot set up the sandbox: %s (%s)", kind, text, filename);
    say(line);
    _exit(status);
}

static void check(long result, const char *what, int status) {
    if (result < 0)
        fail(errno, what, NULL, status);
}

static void check_file(long result, const char *filename, int status) {
    if (result < 0)
        fail(errno, NULL, filename, status);
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    check_file(fd, path, 125);
    check_file(write(fd, text, strlen(text)), path, 125);
    close(fd);
}

static void enter_namespaces(int userns) {
    if (userns) {
        char map[64];
        uid_t uid = getuid();
        gid_t gid = getgid();
        check(unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare", 125);
        /* a non-dumpable parent (the daemon) leaves /proc/self files owned by root */
        check(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "prctl", 125);
        write_file("/proc/self/setgroups", "deny");
        snprintf(map, sizeof map, "%u %u 1", uid, uid);
        write_file("/proc/self/uid_map", map);
        snprintf(map, sizeof map, "%u %u 1", gid, gid);
        write_file("/proc/self/gid_map", map);
    } else {
        check(unshare(CLONE_NEWNS), "unshare", 125);
    }
    check(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "mount /", 125);
}

/* Cover PARENT with a tmpfs that binds back everything it held (namespace only); for "/"
 * the init then makes it its root. */
static void shadow(const char *parent) {
    static char names[MAX_ENTRIES][NAME_MAX + 1];
    char via[64], cwd[PATH_MAX], source[PATH_MAX + 64], target[PATH_MAX + 64];
    char link[PATH_MAX];
    int count = 0;
    int pfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    check_file(pfd, parent, 125);
    if (!getcwd(cwd, sizeof cwd))
        fail(errno, NULL, NULL, 125);
    snprintf(via, sizeof via, "/proc/self/fd/%d", pfd);
    DIR *dir = opendir(via);
    if (!dir)
        fail(errno, NULL, via, 125);
    for (struct dirent *entry; (entry = readdir(dir));) {
        if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, ".."))
            continue;
        if (count == MAX_ENTRIES)
            fail(E2BIG, NULL, parent, 125);
        snprintf(names[count++], NAME_MAX + 1, "%s", entry->d_name);
    }
    closedir(dir);
    char what[PATH_MAX + 16];
    snprintf(what, sizeof what, "mount %s", parent);
    check(mount("secretd-shadow", parent, "tmpfs", MOUNT_FLAGS, "mode=0755"), what, 125);
    int cover = open(strcmp(parent, "/") ? parent : "/..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    check_file(cover, parent, 125);
    for (int i = 0; i < count; i++) {
        struct stat st;
        snprintf(source, sizeof source, "%s/%s", via, names[i]);
        snprintf(target, sizeof target, "/proc/self/fd/%d/%s", cover, names[i]);
        check_file(lstat(source, &st), source, 125);
        if (S_ISLNK(st.st_mode)) {
            ssize_t length = readlink(source, link, sizeof link - 1);
            check_file(length, source, 125);
            link[length] = '\0';
            check_file(symlinkat(link, cover, names[i]), link, 125);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            check_file(mkdirat(cover, names[i], 0755), names[i], 125);
        } else {
            int fd = openat(cover, names[i], O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
            check_file(fd, names[i], 125);
            close(fd);
        }
        snprintf(what, sizeof what, "mount %s", target);
        check(mount(source, target, NULL, MS_BIND | MS_REC, NULL), what, 125);
    }
    if (!strcmp(parent, "/")) {
        check_file(fchdir(cover), NULL, 125);
        check_file(chroot("."), ".", 125);
        check_file(chdir(cwd), cwd, 125);
    }
    close(pfd);
    close(cover);
}

/* Make PATH exist, in the namespace only (nsinit.py's _ensure_mountpoint). */
static void ensure_mountpoint(const char *path, int directory) {
    char base[PATH_MAX], made[PATH_MAX];
    struct stat st;
    size_t missing = 0;
    snprintf(base, sizeof base, "%s", path);
    while (stat(base, &st) < 0) {
        if (errno != ENOENT)
            fail(errno, NULL, base, 125);
        char *slash = strrchr(base, '/');
        missing++;
        if (slash == base)
            base[1] = '\0';
        else
            *slash = '\0';
    }
    if (!missing) {
        if (!!S_ISDIR(st.st_mode) != !!directory)
            fail_text(directory ? ENOTDIR : EISDIR, directory ? "not a directory" : "not a file",
                      path, 125);
        return;
    }
    if (!S_ISDIR(st.st_mode))
        fail_text(ENOTDIR, "not a directory", base, 125);
    shadow(base);
    /* the missing directories between BASE and PATH, outermost first */
    for (size_t depth = missing - 1; depth >= 1; depth--) {
        snprintf(made, sizeof made, "%s", path);
        for (size_t up = 0; up < depth; up++)
            *strrchr(made, '/') = '\0';
        check_file(mkdir(made, 0755), made, 125);
    }
    if (directory) {
        check_file(mkdir(path, 0755), path, 125);
    } else {
        int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0444);
        check_file(fd, path, 125);
        close(fd);
    }
    char what[PATH_MAX + 16];
    snprintf(what, sizeof what, "mount %s", base);
    check(mount(NULL, base, NULL, BIND_RO, NULL), what, 125);
}

static void send_fd(const char *message, int fd) {
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = (void *)message, .iov_len = strlen(message)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                         .msg_controllen = sizeof control};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    check_file(sendmsg(SOCK, &msg, MSG_NOSIGNAL), NULL, 125);
}

/* The tmpfs (or the FUSE mount) and its read-only views (nsinit.py's _mount_secrets). */
static int mount_secrets(long size, const char *secrets_dir, const char *source, int exec_configs,
                         int nbinds, char **binds) {
    int root_fd;
    if (*source) {
        root_fd = open(source, O_PATH | O_DIRECTORY | O_CLOEXEC);
        check_file(root_fd, source, 125);
        check_file(send(SOCK, "fuse", 4, MSG_NOSIGNAL), NULL, 125);
    } else {
        char text[32];
        int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
        check(fs, "fsopen", 125);
        check(fsconfig(fs, FSCONFIG_SET_STRING, "source", "secretd", 0), "fsconfig source", 125);
        snprintf(text, sizeof text, "%ld", size);
        check(fsconfig(fs, FSCONFIG_SET_STRING, "size", text, 0), "fsconfig size", 125);
        check(fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0755", 0), "fsconfig mode", 125);
        int noswap = fsconfig(fs, FSCONFIG_SET_FLAG, "noswap", NULL, 0) == 0;
        if (!noswap && errno != EINVAL)
            fail(errno, "fsconfig noswap", NULL, 125);
        check(fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0), "fsconfig create", 125);
        unsigned attributes = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        attributes |= exec_configs ? 0 : MOUNT_ATTR_NOEXEC;
        root_fd = fsmount(fs, FSMOUNT_CLOEXEC, attributes);
        check(root_fd, "fsmount", 125);
        close(fs);
        send_fd(noswap ? "fd" : "fd-noswap-refused", root_fd);
    }
    char go[16];
    if (recv(SOCK, go, sizeof go, 0) != 2 || memcmp(go, "go", 2))
        _exit(125);
    for (int i = -1; i < nbinds; i++) {
        const char *inner = i < 0 ? "secrets" : binds[2 * i];
        const char *target = i < 0 ? secrets_dir : binds[2 * i + 1];
        char what[PATH_MAX + 16];
        struct stat st;
        check_file(fstatat(root_fd, inner, &st, AT_SYMLINK_NOFOLLOW), inner, 125);
        ensure_mountpoint(target, S_ISDIR(st.st_mode));
        snprintf(what, sizeof what, "open_tree %s", inner);
        int view = open_tree(root_fd, inner, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        check(view, what, 125);
        snprintf(what, sizeof what, "move_mount %s", target);
        check(move_mount(view, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH), what, 125);
        close(view);
        unsigned long flags = strncmp(inner, "configs/", 8) ? BIND_RO : BIND_RO & ~MS_NOEXEC;
        snprintf(what, sizeof what, "mount %s", target);
        check(mount(NULL, target, NULL, flags, NULL), what, 125);
    }
    if (*source)
        (void)umount2(source, MNT_DETACH);
    return root_fd;
}

static void become(uid_t uid, gid_t gid, const char *groups) {
    gid_t list[NGROUPS_MAX];
    size_t count = 0;
    int keep = !strcmp(groups, "-");
    if (uid == getuid() && gid == getgid() && keep)
        return;
    for (const char *at = keep ? "" : groups; *at && count < NGROUPS_MAX;) {
        char *end;
        list[count++] = (gid_t)strtoul(at, &end, 10);
        at = *end == ',' ? end + 1 : end;
    }
    check_file(setgroups(count, list), NULL, 126);
    check_file(setgid(gid), NULL, 126);
    check_file(setuid(uid), NULL, 126);
}

/* Fail as execvp would, before tini runs it (nsinit.py's _check_command). */
static void check_command(const char *name) {
    char line[4200], shown[1100], candidate[PATH_MAX];
    int denied = 0, code = ENOENT;
    const char *path = getenv("PATH");
    quoted(shown, sizeof shown, name);
    if (!path)
        path = "/bin:/usr/bin";
    for (const char *at = *name ? path : NULL; at;) {
        const char *colon = strchr(at, ':');
        size_t length = colon ? (size_t)(colon - at) : strlen(at);
        struct stat st;
        if (strchr(name, '/'))
            snprintf(candidate, sizeof candidate, "%s", name);
        else if (length)
            snprintf(candidate, sizeof candidate, "%.*s/%s", (int)length, at, name);
        else
            snprintf(candidate, sizeof candidate, "%s", name);
        at = strchr(name, '/') || !colon ? NULL : colon + 1;
        if (stat(candidate, &st) < 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                continue;
            if (errno == EACCES) {
                denied = 1;
                continue;
            }
            code = errno;
            goto refused;
        }
        if (S_ISREG(st.st_mode) && access(candidate, X_OK) == 0)
            return;
        denied = 1;
    }
    code = denied ? EACCES : ENOENT;
refused:
    if (code == ENOENT) {
        snprintf(line, sizeof line,
                 "notfound:cannot run %s: command not found: check PATH or the name", shown);
        say(line);
        _exit(127);
    }
    snprintf(line, sizeof line, "noexec:cannot run %s: %s", shown, strerror(code));
    say(line);
    _exit(126);
}

/* PID 1 of the sandbox until it execs tini (nsinit.py's _init). */
static _Noreturn void init(char **argv, int command_at) {
    const char *flags = argv[2], *secrets_dir = argv[4], *tini = argv[5], *workdir = argv[6];
    const char *source = argv[10];
    int nbinds = atoi(argv[11]);
    check(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl", 125);
    if (strchr(flags, 's'))
        check_file(setsid(), NULL, 125);
    else
        check_file(setpgid(0, 0), NULL, 125);
    check(mount("proc", "/proc", "proc", MOUNT_FLAGS, NULL), "mount /proc", 125);
    int root_fd = mount_secrets(atol(argv[3]), secrets_dir, source, strchr(flags, 'x') != NULL,
                                nbinds, argv + 12);
    kind = "usage";
    become((uid_t)strtoul(argv[7], NULL, 10), (gid_t)strtoul(argv[8], NULL, 10), argv[9]);
    if (*workdir)
        check_file(chdir(workdir), workdir, 126);
    check(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl", 126); /* a new uid cleared it */
    struct pollfd gone = {.fd = SOCK, .events = POLLIN};
    if (poll(&gone, 1, 0) > 0) /* secretd sends no more: it is gone */
        _exit(125);
    close(root_fd);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    kind = "exec";
    check_command(command);
    kind = "init";
    int count = 0;
    while (argv[command_at + count])
        count++;
    char **args = calloc((size_t)count + 4, sizeof(char *));
    if (!args)
        fail(ENOMEM, NULL, NULL, 126);
    args[0] = (char *)tini;
    args[1] = "-g";
    args[2] = "--";
    memcpy(args + 3, argv + command_at, (size_t)count * sizeof(char *));
    execve(tini, args, environ);
    fail(errno, NULL, tini, 126);
}

int main(int argc, char **argv) {
    if (argc < 14 || fcntl(SOCK, F_SETFD, FD_CLOEXEC) < 0) /* tini must not inherit it */
        return 125;
    int nbinds = atoi(argv[11]);
    int command_at = 12 + 2 * nbinds + 1;
    if (nbinds < 0 || command_at >= argc || strcmp(argv[command_at - 1], "--"))
        return 125;
    command = argv[command_at];
    check(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl", 125);
    if (getppid() != (pid_t)atol(argv[1]))
        _exit(125);
    check_file(setpgid(0, 0), NULL, 125); /* out of reach of a Ctrl-C meant for secretd */
    kind = "refused"; /* the kernel or a security policy allows no namespace here */
    enter_namespaces(strchr(argv[2], 'u') != NULL);
    uint64_t clone_args[CLONE_ARGS_SIZE_VER0 / 8] = {CLONE_PARENT | CLONE_NEWPID};
    long pid = syscall(SYS_clone3, clone_args, sizeof clone_args);
    check(pid, "clone3", 125);
    if (pid == 0) {
        kind = "setup";
        init(argv, command_at);
    }
    _exit(0);
}
