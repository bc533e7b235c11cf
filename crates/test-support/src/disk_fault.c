/* Disk faults on demand, for a process started with LD_PRELOAD=<this library>.
 *
 * While the file named by DISK_FAULT_FLAG exists, calls on a file whose path
 * ends with DISK_FAULT_SUFFIX fail as a failing disk makes them: fsync and
 * fdatasync with EIO when the flag file's first line contains "sync"; write,
 * pwrite, pwrite64 and writev with EIO when it contains "write", with ENOSPC
 * (a full disk) when it contains "full". Every call made to
 * fail appends its name to the file named by DISK_FAULT_LOG, so a test can
 * tell a fault that happened from one that never did. Other files (sockets,
 * the log) are never touched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *flag_path;
static const char *suffix;
static const char *log_path;

__attribute__((constructor)) static void read_settings(void) {
    flag_path = getenv("DISK_FAULT_FLAG");
    suffix = getenv("DISK_FAULT_SUFFIX");
    log_path = getenv("DISK_FAULT_LOG");
}

/* Raw syscalls inside the shim, so it never calls its own hooks. */
static void note(const char *operation) {
    if (!log_path) return;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    char line[64];
    int n = snprintf(line, sizeof line, "%s\n", operation);
    syscall(SYS_write, fd, line, (size_t)n);
    syscall(SYS_close, fd);
}

/* Whether the flag file exists and names `kind`; the file's path ends with the suffix. */
static int failing(int fd, const char *kind) {
    if (!flag_path || !suffix) return 0;
    int flag = (int)syscall(SYS_openat, AT_FDCWD, flag_path, O_RDONLY | O_CLOEXEC);
    if (flag < 0) return 0;
    char wanted[64] = {0};
    syscall(SYS_read, flag, wanted, sizeof wanted - 1);
    syscall(SYS_close, flag);
    if (!strstr(wanted, kind)) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) return 0;
    path[n] = 0;
    size_t len = strlen(suffix);
    return (size_t)n >= len && strcmp(path + n - len, suffix) == 0;
}

#define REAL(name) static __typeof__(name) *real; if (!real) real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)
#define FAIL_IF(fd, kind, name) if (failing(fd, kind)) { note(name); errno = EIO; return -1; }
#define FAIL_WRITE_IF(fd, name) FAIL_IF(fd, "write", name) \
    if (failing(fd, "full")) { note(name); errno = ENOSPC; return -1; }

int fsync(int fd) {
    REAL(fsync);
    FAIL_IF(fd, "sync", "fsync");
    return real(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync);
    FAIL_IF(fd, "sync", "fdatasync");
    return real(fd);
}

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write);
    FAIL_WRITE_IF(fd, "write");
    return real(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite);
    FAIL_WRITE_IF(fd, "pwrite");
    return real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
    REAL(pwrite64);
    FAIL_WRITE_IF(fd, "pwrite64");
    return real(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    REAL(writev);
    FAIL_WRITE_IF(fd, "writev");
    return real(fd, iov, iovcnt);
}
