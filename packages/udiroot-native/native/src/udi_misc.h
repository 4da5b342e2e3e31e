/* udi_misc.h -- exit codes, checked-syscall macros, logging and small string helpers shared by every udiRoot
   program (shifter, setupRoot, unsetupRoot, the test binaries).

   Memory policy: these programs are short-lived; allocations that live until exec or exit are never freed.
   Allocation failure is fatal (xmalloc & friends never return NULL). */

#ifndef UDI_MISC_H
#define UDI_MISC_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/** Macros **/

/* Named exit codes. Mirrored, with the same names, in packages/udiroot-native/src/exit-codes.ts; a unit test
   parses this block, so keep one `#define UDI_EX_NAME value` per line. Values follow sysexits(3) where one fits
   so that the TypeScript side can map them onto the core error catalogue. */
#define UDI_EX_OK 0            /* command ran (the command's own status is returned instead) */
#define UDI_EX_FAILURE 1       /* generic failure */
#define UDI_EX_USAGE 64        /* bad command line: unknown option, bad --env, bad --volume syntax */
#define UDI_EX_DATAERR 65      /* bad image descriptor, bad .meta, volume refused by validation */
#define UDI_EX_NOINPUT 66      /* image (.meta or image file) not found */
#define UDI_EX_NOUSER 67       /* unknown user, or the target user is root */
#define UDI_EX_UNAVAILABLE 69  /* no image gateway answered the lookup */
#define UDI_EX_SOFTWARE 70     /* internal error */
#define UDI_EX_OSERR 71        /* a system call failed while building the container */
#define UDI_EX_NOPERM 77       /* not installed setuid root, image ACL denies the user, privilege drop failed */
#define UDI_EX_CONFIG 78       /* udiRoot.conf missing/not root-owned/invalid; untrusted https gateway */
#define UDI_EX_UNTRUSTED 79    /* image dir, .meta or image: symlink, owner not root/imageWriter, g/o-writable */
#define UDI_EX_EXEC_FAILED 127 /* the container command could not be executed */

/* Checked system calls. Each prints "shifter: FILE:LINE: <expr or message>: <strerror(errno)>" and exits with
   UDI_EX_OSERR (or the given code for the *c variants). Examples:
     Z_ (mount(...));                        -- must return zero
     T_ (fd >= 0);                           -- must be true
     Zf (chdir(p), "can't chdir to %s", p);  -- zero, with a message
     Tf (n > 0, "short read from %s", f);    -- true, with a message */
#define Z_(x)                                                                                                          \
   do {                                                                                                                \
      if (x)                                                                                                           \
         udi_fatal_(__FILE__, __LINE__, errno, UDI_EX_OSERR, "%s", #x);                                                \
   } while (0)
#define T_(x)                                                                                                          \
   do {                                                                                                                \
      if (!(x))                                                                                                        \
         udi_fatal_(__FILE__, __LINE__, errno, UDI_EX_OSERR, "%s", #x);                                                \
   } while (0)
#define Zf(x, ...)                                                                                                     \
   do {                                                                                                                \
      if (x)                                                                                                           \
         udi_fatal_(__FILE__, __LINE__, errno, UDI_EX_OSERR, __VA_ARGS__);                                             \
   } while (0)
#define Tf(x, ...)                                                                                                     \
   do {                                                                                                                \
      if (!(x))                                                                                                        \
         udi_fatal_(__FILE__, __LINE__, errno, UDI_EX_OSERR, __VA_ARGS__);                                             \
   } while (0)

/* Refuse with a named exit code and a message meant for the user (no errno, no file:line). */
#define FATAL(code, ...) udi_refuse_((code), __VA_ARGS__)

/* Diagnostics on stderr; VERBOSE only with --verbose / -V. */
#define WARN(...) udi_log_(0, __VA_ARGS__)
#define VERBOSE(...)                                                                                                   \
   do {                                                                                                                \
      if (udi_verbose)                                                                                                 \
         udi_log_(1, __VA_ARGS__);                                                                                     \
   } while (0)

/* Phase timestamps on stderr in builds made with -DUDI_TIMING (benchmark diagnostics; off in normal builds). */
#ifdef UDI_TIMING
#define PHASE(name) udi_phase_(name)
#else
#define PHASE(name)                                                                                                    \
   do {                                                                                                                \
   } while (0)
#endif

/** Types **/

/* A growable NULL-terminated array of strings (argv, envp, split results). */
struct strv {
   char **v;   /* the items, v[n] == NULL; never NULL after strv_init */
   size_t n;   /* number of items */
   size_t cap; /* allocated slots, including the terminating NULL */
};

/** Globals **/

extern int udi_verbose;          /* 1 after --verbose */
extern const char *udi_progname; /* "shifter", "setupRoot", …: prefix of every message */

/** Function prototypes **/

void udi_fatal_(const char *file, int line, int errnum, int code, const char *fmt, ...)
   __attribute__((noreturn, format(printf, 5, 6)));
void udi_refuse_(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
void udi_log_(int verbose, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void udi_phase_(const char *name);
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

char *str_trim(char *s);
bool str_starts(const char *s, const char *prefix);
char *str_filter(const char *s, const char *allowed_extra);

void strv_init(struct strv *sv);
void strv_push(struct strv *sv, const char *s);
void strv_push_own(struct strv *sv, char *s);
void strv_remove(struct strv *sv, size_t i);
void strv_split(struct strv *sv, const char *s, const char *delims);
char *strv_join(const struct strv *sv, const char *sep);
bool strv_contains(const struct strv *sv, const char *s);

char *json_quote(const char *s);

char *read_file_text(const char *path, size_t limit);
int write_file_atomic(const char *path, const char *text, unsigned mode);

#endif
