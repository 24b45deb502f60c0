/*
 * Force-included (gcc -include) into every C and C++ file of the better-sqlite3 build that
 * goes into the Greengrass zip, so the addon loads on glibc 2.28, the floor the bundled Node.js
 * and ONNX Runtime set already (greengrass-recipes/elf.ts checks every binary of the zip).
 *
 * The build machine's glibc (Debian 12: 2.36) gives some functions newer default symbol
 * versions: exp, log, log2 and pow became GLIBC_2.29 (new error handling), dlopen & co and
 * pthread_* became GLIBC_2.34 (when libdl and libpthread moved into libc). glibc keeps the
 * original versions of all of them, so each call is bound here to the one every glibc since
 * the architecture's first exports. stat64 & co (GLIBC_2.33) and libstdc++'s
 * __throw_bad_array_new_length (GLIBCXX_3.4.29) have no older version to bind to:
 * glibc-compat.c defines them inside the addon.
 */
#if defined(__x86_64__)
#define EDGELOOP_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define EDGELOOP_GLIBC_BASE "GLIBC_2.17"
#else
#error "glibc-compat.h: builds for x86_64 and aarch64 only"
#endif

#define EDGELOOP_BIND_BASE(sym) __asm__(".symver " #sym "," #sym "@" EDGELOOP_GLIBC_BASE);

EDGELOOP_BIND_BASE(exp)
EDGELOOP_BIND_BASE(log)
EDGELOOP_BIND_BASE(log2)
EDGELOOP_BIND_BASE(pow)
EDGELOOP_BIND_BASE(dlopen)
EDGELOOP_BIND_BASE(dlclose)
EDGELOOP_BIND_BASE(dlerror)
EDGELOOP_BIND_BASE(dlsym)
EDGELOOP_BIND_BASE(pthread_create)
EDGELOOP_BIND_BASE(pthread_join)
EDGELOOP_BIND_BASE(pthread_mutex_trylock)
EDGELOOP_BIND_BASE(pthread_mutexattr_destroy)
EDGELOOP_BIND_BASE(pthread_mutexattr_init)
EDGELOOP_BIND_BASE(pthread_mutexattr_settype)
EDGELOOP_BIND_BASE(pthread_once)
