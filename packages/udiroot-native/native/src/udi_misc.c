/* udi_misc.c -- logging, fatal errors, allocation and string helpers for the udiRoot programs.

   Memory policy: short-lived processes; nothing allocated here is freed except temporary buffers. */

#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "udi_misc.h"

/** Globals **/

int udi_verbose = 0;
const char *udi_progname = "shifter";

/** Functions **/

/* Print "prog: file:line: message: strerror" and exit with code. Preconditions: none (callable anywhere,
   including a forked child). */
void udi_fatal_(const char *file, int line, int errnum, int code, const char *fmt, ...)
{
   va_list ap;
   fprintf(stderr, "%s: %s:%d: ", udi_progname, file, line);
   va_start(ap, fmt);
   vfprintf(stderr, fmt, ap);
   va_end(ap);
   if (errnum)
      fprintf(stderr, ": %s", strerror(errnum));
   fputc('\n', stderr);
   exit(code);
}

/* Print "prog: message" and exit with code: a refusal the user can act on. */
void udi_refuse_(int code, const char *fmt, ...)
{
   va_list ap;
   fprintf(stderr, "%s: ", udi_progname);
   va_start(ap, fmt);
   vfprintf(stderr, fmt, ap);
   va_end(ap);
   fputc('\n', stderr);
   exit(code);
}

/* Print a warning (verbose = 0) or a trace line (verbose = 1) on stderr. */
void udi_log_(int verbose, const char *fmt, ...)
{
   va_list ap;
   fprintf(stderr, "%s: %s", udi_progname, verbose ? "" : "warning: ");
   va_start(ap, fmt);
   vfprintf(stderr, fmt, ap);
   va_end(ap);
   fputc('\n', stderr);
}

/* Print the milliseconds since the previous call (UDI_TIMING builds). */
void udi_phase_(const char *name)
{
   static struct timespec last;
   struct timespec now;
   clock_gettime(CLOCK_MONOTONIC, &now);
   if (last.tv_sec)
      fprintf(stderr, "phase %-12s %7.3f ms\n", name,
              (double)(now.tv_sec - last.tv_sec) * 1e3 + (double)(now.tv_nsec - last.tv_nsec) / 1e6);
   last = now;
}

/* malloc that never returns NULL (exits UDI_EX_OSERR instead); same for the x* helpers below. */
void *xmalloc(size_t n)
{
   void *p = malloc(n ? n : 1);
   T_(p != NULL);
   return p;
}

void *xcalloc(size_t n, size_t size)
{
   void *p = calloc(n ? n : 1, size ? size : 1);
   T_(p != NULL);
   return p;
}

void *xrealloc(void *p, size_t n)
{
   p = realloc(p, n ? n : 1);
   T_(p != NULL);
   return p;
}

char *xstrdup(const char *s)
{
   char *r = strdup(s);
   T_(r != NULL);
   return r;
}

char *xstrndup(const char *s, size_t n)
{
   char *r = strndup(s, n);
   T_(r != NULL);
   return r;
}

char *xasprintf(const char *fmt, ...)
{
   va_list ap;
   char *r;
   va_start(ap, fmt);
   T_(vasprintf(&r, fmt, ap) >= 0);
   va_end(ap);
   return r;
}

/* Trim ASCII whitespace in place at both ends; returns a pointer into s. */
char *str_trim(char *s)
{
   char *e;
   while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
      s++;
   e = s + strlen(s);
   while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
      *--e = '\0';
   return s;
}

/* Whether s begins with prefix. */
bool str_starts(const char *s, const char *prefix)
{
   return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Copy of s keeping only [A-Za-z0-9] and the characters in allowed_extra (upstream's userInputPathFilter and
   tag filter: other characters are dropped, not rejected). */
char *str_filter(const char *s, const char *allowed_extra)
{
   char *r = xmalloc(strlen(s) + 1), *w = r;
   for (; *s; s++) {
      char c = *s;
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          (c != '\0' && strchr(allowed_extra, c)))
         *w++ = c;
   }
   *w = '\0';
   return r;
}

/* Make sv an empty list (any previous items are dropped, not freed). */
void strv_init(struct strv *sv)
{
   sv->cap = 8;
   sv->n = 0;
   sv->v = xcalloc(sv->cap, sizeof(char *));
}

/* Append a copy of s. */
void strv_push(struct strv *sv, const char *s)
{
   strv_push_own(sv, xstrdup(s));
}

/* Append s itself (ownership moves to sv). */
void strv_push_own(struct strv *sv, char *s)
{
   if (sv->v == NULL)
      strv_init(sv);
   if (sv->n + 2 > sv->cap) {
      sv->cap *= 2;
      sv->v = xrealloc(sv->v, sv->cap * sizeof(char *));
   }
   sv->v[sv->n++] = s;
   sv->v[sv->n] = NULL;
}

/* Remove item i, keeping the order of the rest. */
void strv_remove(struct strv *sv, size_t i)
{
   if (i >= sv->n)
      return;
   memmove(&sv->v[i], &sv->v[i + 1], (sv->n - i) * sizeof(char *));
   sv->n--;
}

/* Append every non-empty token of s separated by any of delims. */
void strv_split(struct strv *sv, const char *s, const char *delims)
{
   char *copy = xstrdup(s), *save = NULL, *tok;
   for (tok = strtok_r(copy, delims, &save); tok; tok = strtok_r(NULL, delims, &save))
      strv_push(sv, tok);
   free(copy);
}

/* The items joined with sep (new string). */
char *strv_join(const struct strv *sv, const char *sep)
{
   size_t len = 1, i;
   char *r;
   for (i = 0; i < sv->n; i++)
      len += strlen(sv->v[i]) + strlen(sep);
   r = xmalloc(len);
   r[0] = '\0';
   for (i = 0; i < sv->n; i++) {
      if (i)
         strcat(r, sep);
      strcat(r, sv->v[i]);
   }
   return r;
}

/* Whether an item equals s. */
bool strv_contains(const struct strv *sv, const char *s)
{
   for (size_t i = 0; i < sv->n; i++)
      if (strcmp(sv->v[i], s) == 0)
         return true;
   return false;
}

/* Whole file as a NUL-terminated string, or NULL with errno set (EFBIG past limit bytes). */
char *read_file_text(const char *path, size_t limit)
{
   int fd = open(path, O_RDONLY | O_CLOEXEC);
   size_t len = 0, cap = 4096;
   char *buf;
   if (fd < 0)
      return NULL;
   buf = xmalloc(cap);
   for (;;) {
      ssize_t r;
      if (len + 1 >= cap) {
         cap *= 2;
         buf = xrealloc(buf, cap);
      }
      r = read(fd, buf + len, cap - len - 1);
      if (r < 0) {
         if (errno == EINTR)
            continue;
         int e = errno;
         close(fd);
         free(buf);
         errno = e;
         return NULL;
      }
      if (r == 0)
         break;
      len += (size_t)r;
      if (len > limit) {
         close(fd);
         free(buf);
         errno = EFBIG;
         return NULL;
      }
   }
   close(fd);
   buf[len] = '\0';
   return buf;
}

/* Write text to path through a temporary file in the same directory and rename(2), so readers never see a
   half-written file. Returns 0 or -1 with errno set. */
int write_file_atomic(const char *path, const char *text, unsigned mode)
{
   char *tmp = xasprintf("%s.tmpXXXXXX", path);
   size_t len = strlen(text), off = 0;
   int fd = mkstemp(tmp);
   if (fd < 0)
      return -1;
   while (off < len) {
      ssize_t w = write(fd, text + off, len - off);
      if (w < 0) {
         if (errno == EINTR)
            continue;
         goto fail;
      }
      off += (size_t)w;
   }
   if (fchmod(fd, mode) != 0 || close(fd) != 0) {
      fd = -1;
      goto fail;
   }
   if (rename(tmp, path) != 0) {
      fd = -1;
      goto fail;
   }
   return 0;
fail : {
   int e = errno;
   if (fd >= 0)
      close(fd);
   unlink(tmp);
   errno = e;
   return -1;
}
}

/* s as a JSON string literal, quotes included. Bytes >= 0x80 pass through (the input is expected UTF-8). */
char *json_quote(const char *s)
{
   char *r = xmalloc(strlen(s) * 6 + 3), *w = r;
   *w++ = '"';
   for (; *s; s++) {
      unsigned char c = (unsigned char)*s;
      if (c == '"' || c == '\\') {
         *w++ = '\\';
         *w++ = (char)c;
      } else if (c == '\n') {
         *w++ = '\\';
         *w++ = 'n';
      } else if (c == '\t') {
         *w++ = '\\';
         *w++ = 't';
      } else if (c < 0x20) {
         w += sprintf(w, "\\u%04x", c);
      } else {
         *w++ = (char)c;
      }
   }
   *w++ = '"';
   *w = '\0';
   return r;
}
