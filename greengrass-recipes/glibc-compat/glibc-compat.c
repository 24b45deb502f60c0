/*
 * Definitions linked into better_sqlite3.node for the symbols glibc-compat.h cannot bind to an
 * older version (see there). Hidden: the addon uses them, nothing else sees them.
 */
#define _GNU_SOURCE
#include <sys/stat.h>

#if defined(__x86_64__)
#define EDGELOOP_STAT_VER 1 /* _STAT_VER_LINUX */
#else
#define EDGELOOP_STAT_VER 0 /* _STAT_VER_KERNEL, the generic 64-bit layout */
#endif

/*
 * Before glibc 2.33, stat() and friends were inline wrappers in <sys/stat.h> around these
 * (stat64 & co with _FILE_OFFSET_BITS=64, as SQLite builds; both for other callers).
 */
extern int __xstat(int, const char *, struct stat *);
extern int __fxstat(int, int, struct stat *);
extern int __lxstat(int, const char *, struct stat *);
extern int __xstat64(int, const char *, struct stat64 *);
extern int __fxstat64(int, int, struct stat64 *);
extern int __lxstat64(int, const char *, struct stat64 *);
__asm__(".symver __xstat,__xstat@" EDGELOOP_GLIBC_BASE);
__asm__(".symver __fxstat,__fxstat@" EDGELOOP_GLIBC_BASE);
__asm__(".symver __lxstat,__lxstat@" EDGELOOP_GLIBC_BASE);
__asm__(".symver __xstat64,__xstat64@" EDGELOOP_GLIBC_BASE);
__asm__(".symver __fxstat64,__fxstat64@" EDGELOOP_GLIBC_BASE);
__asm__(".symver __lxstat64,__lxstat64@" EDGELOOP_GLIBC_BASE);

#define HIDDEN __attribute__((visibility("hidden")))
HIDDEN int stat(const char *path, struct stat *buf) { return __xstat(EDGELOOP_STAT_VER, path, buf); }
HIDDEN int fstat(int fd, struct stat *buf) { return __fxstat(EDGELOOP_STAT_VER, fd, buf); }
HIDDEN int lstat(const char *path, struct stat *buf) { return __lxstat(EDGELOOP_STAT_VER, path, buf); }
HIDDEN int stat64(const char *path, struct stat64 *buf) { return __xstat64(EDGELOOP_STAT_VER, path, buf); }
HIDDEN int fstat64(int fd, struct stat64 *buf) { return __fxstat64(EDGELOOP_STAT_VER, fd, buf); }
HIDDEN int lstat64(const char *path, struct stat64 *buf) { return __lxstat64(EDGELOOP_STAT_VER, path, buf); }

/*
 * libstdc++ 11 and later (GLIBCXX_3.4.29) call std::__throw_bad_array_new_length() from the
 * inline code of new[] with a run-time length; older libstdc++ has no such function. This one
 * throws std::bad_alloc, the base class of std::bad_array_new_length, through the entry point
 * every libstdc++ has (C names: these are the two functions' mangled C++ names).
 */
__attribute__((noreturn)) extern void _ZSt17__throw_bad_allocv(void);
__attribute__((noreturn)) HIDDEN void _ZSt28__throw_bad_array_new_lengthv(void) { _ZSt17__throw_bad_allocv(); }
