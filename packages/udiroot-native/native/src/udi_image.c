/* udi_image.c -- image descriptor parsing, `.meta` parsing and the image ACL check.

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "udi_image.h"

/** Functions **/

/* Parse "type:tag" or "tag" (type = default_type). The type must be docker, custom, id or local; characters
   outside [A-Za-z0-9_:.+-@] (plus '/' for docker and local) are dropped, as upstream. Returns 0, or -1 when desc
   is NULL/empty, the type is unknown, or nothing is left of the tag. */
int udi_parse_image_ref(struct udi_image_ref *r, const char *desc, const char *default_type)
{
   static const char *types[] = { "docker", "custom", "id", "local", NULL };
   const char *colon, *tag = desc;
   char *type = NULL;
   if (!r || !desc || !*desc)
      return -1;
   colon = strchr(desc, ':');
   if (colon) {
      char *prefix = xstrndup(desc, (size_t)(colon - desc));
      for (int i = 0; types[i]; i++)
         if (!strcmp(prefix, types[i])) {
            type = prefix;
            tag = colon + 1;
         }
   }
   if (!type)
      type = xstrdup(default_type && *default_type ? default_type : "docker");
   {
      bool known = false;
      for (int i = 0; types[i]; i++)
         known |= !strcmp(type, types[i]);
      if (!known)
         return -1;
   }
   if (!strcmp(type, "docker") || !strcmp(type, "local"))
      r->tag = str_filter(tag, "_:.+-@/");
   else
      r->tag = str_filter(tag, "_:.+-@");
   r->type = type;
   if (!*r->tag)
      return -1;
   if (!strcmp(type, "id"))
      for (const char *p = r->tag; *p; p++)
         if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
            return -1;
   return 0;
}

/* Decode the percent-encoded form of docs/meta-format.md: "%XX" (either case) is a byte, everything else is
   itself; the result must be UTF-8 without NUL bytes. Returns a new string or NULL. */
char *udi_meta_percent_decode(const char *s)
{
   char *out = xmalloc(strlen(s) + 1), *w = out;
   for (; *s; s++) {
      if (*s == '%') {
         int hi = -1, lo = -1;
         char c1 = s[1], c2 = c1 ? s[2] : '\0';
         hi = (c1 >= '0' && c1 <= '9')   ? c1 - '0'
              : (c1 >= 'a' && c1 <= 'f') ? c1 - 'a' + 10
              : (c1 >= 'A' && c1 <= 'F') ? c1 - 'A' + 10
                                         : -1;
         lo = (c2 >= '0' && c2 <= '9')   ? c2 - '0'
              : (c2 >= 'a' && c2 <= 'f') ? c2 - 'a' + 10
              : (c2 >= 'A' && c2 <= 'F') ? c2 - 'A' + 10
                                         : -1;
         if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return NULL;
         *w++ = (char)(hi * 16 + lo);
         s += 2;
      } else {
         *w++ = *s;
      }
   }
   *w = '\0';
   /* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
   for (const unsigned char *p = (const unsigned char *)out; *p;) {
      int n;
      unsigned long cp;
      if (*p < 0x80) {
         p++;
         continue;
      }
      if ((*p & 0xE0) == 0xC0) {
         n = 1;
         cp = *p & 0x1F;
      } else if ((*p & 0xF0) == 0xE0) {
         n = 2;
         cp = *p & 0x0F;
      } else if ((*p & 0xF8) == 0xF0) {
         n = 3;
         cp = *p & 0x07;
      } else
         return NULL;
      for (int i = 1; i <= n; i++) {
         if ((p[i] & 0xC0) != 0x80)
            return NULL;
         cp = (cp << 6) | (p[i] & 0x3F);
      }
      if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
          (cp >= 0xD800 && cp <= 0xDFFF))
         return NULL;
      p += n + 1;
   }
   return out;
}

/* Items between pairs of single quotes (upstream's split rule: whatever is outside quotes, such as the `u`
   prefixes, commas and blanks, is ignored). Returns 0, or -1 on an unterminated quote. */
static int split_quoted(struct strv *out, const char *body, size_t len, bool decode)
{
   const char *start = NULL;
   for (size_t i = 0; i < len; i++) {
      if (body[i] != '\'')
         continue;
      if (!start) {
         start = body + i + 1;
      } else {
         char *item = xstrndup(start, (size_t)(body + i - start));
         if (decode && !(item = udi_meta_percent_decode(item)))
            return -1;
         strv_push_own(out, item);
         start = NULL;
      }
   }
   return start ? -1 : 0;
}

/* Parse an ENTRY/CMD value (docs/meta-format.md): `%['…', …]` percent-encoded items; `[u'a', u'b']` or `['a']`
   plain items; `[]` nothing (absent); anything else is one argument. Returns 0 (out->n == 0 means absent) or -1. */
int udi_parse_list_value(struct strv *out, const char *value)
{
   size_t len = strlen(value);
   if (!out->v)
      strv_init(out);
   if (str_starts(value, "%[")) {
      if (value[len - 1] != ']')
         return -1;
      return split_quoted(out, value + 2, len - 3, true);
   }
   if (str_starts(value, "[u'") || str_starts(value, "['")) {
      if (value[len - 1] != ']')
         return -1;
      return split_quoted(out, value + 1, len - 2, false);
   }
   if (!strcmp(value, "[]"))
      return 0;
   strv_push(out, value);
   return 0;
}

/* A scalar (WORKDIR, ENV, USER): a leading '%' marks the percent-encoded form. NULL if malformed. */
static char *parse_scalar(const char *value)
{
   return value[0] == '%' ? udi_meta_percent_decode(value + 1) : xstrdup(value);
}

/* "1000, 1001" → ids; empty → none. Returns 0 or -1 on a non-numeric id. */
static int parse_acl(struct strv *out, const char *value)
{
   struct strv parts = { 0 };
   out->n = 0;
   out->v[0] = NULL;
   if (!*value)
      return 0;
   strv_init(&parts);
   {
      const char *p = value, *comma;
      do {
         comma = strchr(p, ',');
         strv_push_own(&parts, xstrndup(p, comma ? (size_t)(comma - p) : strlen(p)));
         p = comma ? comma + 1 : NULL;
      } while (p);
   }
   for (size_t i = 0; i < parts.n; i++) {
      char *t = str_trim(parts.v[i]);
      if (!*t || strspn(t, "0123456789") != strlen(t) || strlen(t) > 10 || strtoull(t, NULL, 10) > 0xFFFFFFFEull)
         return -1;
      strv_push(out, t);
   }
   return 0;
}

/* Parse .meta text into m (initialised here), following docs/meta-format.md and upstream's reader: lines starting
   with '#' and lines without ':' are skipped, key and value are trimmed, a value ending in '\' continues on the
   next line (joined with one space), unknown keys are ignored, the last FORMAT/ENTRY/CMD/WORKDIR wins and ENV lines
   accumulate. Returns 0, or -1 with "line N: message" in err for a malformed list, escape or id. */
int udi_meta_parse_text(struct udi_meta *m, const char *text, char *err, size_t errlen)
{
   struct strv lines = { 0 };
   memset(m, 0, sizeof(*m));
   strv_init(&m->entry);
   strv_init(&m->cmd);
   strv_init(&m->env);
   strv_init(&m->useracl);
   strv_init(&m->groupacl);
   strv_init(&lines);
   for (const char *p = text; p;) {
      const char *nl = strchr(p, '\n');
      strv_push_own(&lines, xstrndup(p, nl ? (size_t)(nl - p) : strlen(p)));
      p = nl ? nl + 1 : NULL;
   }
   for (size_t i = 0; i < lines.n; i++) {
      char *line = lines.v[i], *colon, *key, *val;
      size_t lineno = i + 1;
      if (line[0] == '#' || !(colon = strchr(line, ':')))
         continue;
      *colon = '\0';
      key = str_trim(line);
      val = str_trim(colon + 1);
      while (*val && val[strlen(val) - 1] == '\\' && i + 1 < lines.n) {
         val[strlen(val) - 1] = '\0';
         val = xasprintf("%s %s", str_trim(val), str_trim(lines.v[++i]));
         val = str_trim(val);
      }
      if (!strcmp(key, "FORMAT")) {
         m->format = xstrdup(val);
      } else if (!strcmp(key, "ENTRY") || !strcmp(key, "CMD")) {
         struct strv *sv = key[0] == 'E' ? &m->entry : &m->cmd;
         sv->n = 0;
         sv->v[0] = NULL;
         if (udi_parse_list_value(sv, val)) {
            snprintf(err, errlen, "line %zu: malformed %s list", lineno, key);
            return -1;
         }
         if (key[0] == 'E')
            m->has_entry = sv->n > 0;
         else
            m->has_cmd = sv->n > 0;
      } else if (!strcmp(key, "WORKDIR") || !strcmp(key, "ENV") || !strcmp(key, "USER")) {
         char *v = *val ? parse_scalar(val) : NULL;
         if (*val && !v) {
            snprintf(err, errlen, "line %zu: malformed percent escape in %s", lineno, key);
            return -1;
         }
         if (key[0] == 'W')
            m->workdir = v;
         else if (key[0] == 'E')
            strv_push(&m->env, v ? v : "");
         else
            m->user = v;
      } else if (!strcmp(key, "USERACL") || !strcmp(key, "GROUPACL")) {
         if (parse_acl(key[0] == 'U' ? &m->useracl : &m->groupacl, val)) {
            snprintf(err, errlen, "line %zu: malformed %s", lineno, key);
            return -1;
         }
      }
   }
   return 0;
}

/* Whether the caller may use the image: true when the image has no ACL at all, or uid is in USERACL, or gid or
   one of groups is in GROUPACL. */
bool udi_meta_allows(const struct udi_meta *m, uid_t uid, gid_t gid, const gid_t *groups, int n_groups)
{
   char buf[32];
   if (m->useracl.n == 0 && m->groupacl.n == 0)
      return true;
   snprintf(buf, sizeof(buf), "%lu", (unsigned long)uid);
   if (strv_contains(&m->useracl, buf))
      return true;
   snprintf(buf, sizeof(buf), "%lu", (unsigned long)gid);
   if (strv_contains(&m->groupacl, buf))
      return true;
   for (int i = 0; i < n_groups; i++) {
      snprintf(buf, sizeof(buf), "%lu", (unsigned long)groups[i]);
      if (strv_contains(&m->groupacl, buf))
         return true;
   }
   return false;
}

/* The uid named by udiRoot.conf's imageWriter: a numeric uid or a user name. NULL or empty → UDI_NO_WRITER.
   Returns 0, or -1 when the name is unknown or the uid is malformed. */
int udi_image_writer_uid(const char *writer, uid_t *out)
{
   *out = UDI_NO_WRITER;
   if (!writer || !*writer)
      return 0;
   if (strspn(writer, "0123456789") == strlen(writer)) {
      unsigned long long v;
      if (strlen(writer) > 10 || (v = strtoull(writer, NULL, 10)) >= 0xFFFFFFFFull)
         return -1;
      *out = (uid_t)v;
      return 0;
   }
   {
      struct passwd *pw = getpwnam(writer);
      if (!pw)
         return -1;
      *out = pw->pw_uid;
   }
   return 0;
}

/* Why an image directory (want_dir) or a .meta / image file is not to be trusted, or NULL when it is: it must be
   a directory or regular file as asked, owned by root or by the site's image writer, and not writable by group or
   others. Anyone else who can write it could strip an ACL or swap an image. */
const char *udi_untrusted_reason(const struct stat *st, bool want_dir, uid_t writer)
{
   if (want_dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode))
      return want_dir ? "is not a directory" : "is not a regular file";
   if (st->st_uid != 0 && (writer == UDI_NO_WRITER || st->st_uid != writer))
      return writer == UDI_NO_WRITER ? "is not owned by root" : "is owned by neither root nor the imageWriter account";
   if (st->st_mode & (S_IWGRP | S_IWOTH))
      return "is writable by group or others";
   return NULL;
}

/* Open path (relative to dirfd, or absolute) without following a symlink in its last component, and check the
   open descriptor with udi_untrusted_reason. Returns the descriptor (O_CLOEXEC; O_PATH for a directory), or -1
   with errno set (ENOENT and friends from open; EPERM for an untrusted object, ELOOP for a symlink) and a message
   in err. */
int udi_open_trusted(int dirfd, const char *path, bool want_dir, uid_t writer, char *err, size_t errlen)
{
   struct stat st;
   const char *why;
   int fd = openat(dirfd, path,
                   (want_dir ? O_PATH | O_DIRECTORY : O_RDONLY | O_NONBLOCK | O_NOCTTY) | O_NOFOLLOW | O_CLOEXEC);
   if (fd < 0) {
      int e = errno;
      if (e == ELOOP || (want_dir && e == ENOTDIR && faccessat(dirfd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0))
         snprintf(err, errlen, "%s is a symbolic link or not a %s", path, want_dir ? "directory" : "file");
      else
         snprintf(err, errlen, "%s: %s", path, strerror(e));
      errno = e == ENOTDIR ? ELOOP : e;
      return -1;
   }
   if (fstat(fd, &st) != 0) {
      int e = errno;
      snprintf(err, errlen, "%s: %s", path, strerror(e));
      close(fd);
      errno = e;
      return -1;
   }
   if ((why = udi_untrusted_reason(&st, want_dir, writer))) {
      snprintf(err, errlen, "%s %s (owner uid %lu, mode %04o)", path, why, (unsigned long)st.st_uid,
               (unsigned)(st.st_mode & 07777));
      close(fd);
      errno = EPERM;
      return -1;
   }
   return fd;
}

/* Read <image_dir>/<id>.meta after checking the image directory and the .meta on their open descriptors
   (udi_open_trusted). Returns the text, or NULL with *code set to UDI_EX_NOINPUT (missing), UDI_EX_UNTRUSTED
   (symlink, wrong owner, group/other-writable) or UDI_EX_DATAERR (larger than UDI_META_MAX_BYTES), and a message
   in err. */
char *udi_read_trusted_meta(const char *image_dir, const char *id, uid_t writer, int *code, char *err, size_t errlen)
{
   char *name = xasprintf("%s.meta", id), *buf;
   size_t len = 0, cap = 4096;
   int dirfd = udi_open_trusted(AT_FDCWD, image_dir, true, writer, err, errlen), fd;
   if (dirfd < 0) {
      *code = errno == ENOENT ? UDI_EX_NOINPUT : UDI_EX_UNTRUSTED;
      return NULL;
   }
   fd = udi_open_trusted(dirfd, name, false, writer, err, errlen);
   close(dirfd);
   if (fd < 0) {
      *code = errno == ENOENT || errno == ENOTDIR ? UDI_EX_NOINPUT : errno == EACCES ? UDI_EX_NOPERM : UDI_EX_UNTRUSTED;
      return NULL;
   }
   buf = xmalloc(cap);
   for (;;) {
      ssize_t r;
      if (len + 1 >= cap)
         buf = xrealloc(buf, cap *= 2);
      r = read(fd, buf + len, cap - len - 1);
      if (r < 0 && errno == EINTR)
         continue;
      if (r < 0) {
         snprintf(err, errlen, "%s: %s", name, strerror(errno));
         close(fd);
         *code = UDI_EX_NOINPUT;
         return NULL;
      }
      if (r == 0)
         break;
      len += (size_t)r;
      if (len > UDI_META_MAX_BYTES) {
         snprintf(err, errlen, "%s is larger than %d bytes", name, UDI_META_MAX_BYTES);
         close(fd);
         *code = UDI_EX_DATAERR;
         return NULL;
      }
   }
   close(fd);
   buf[len] = '\0';
   return buf;
}

/* The imageWriter uid of udiRoot.conf, exiting UDI_EX_CONFIG when it names no user. */
uid_t udi_image_writer_or_die(const char *image_writer)
{
   uid_t writer;
   if (udi_image_writer_uid(image_writer, &writer))
      FATAL(UDI_EX_CONFIG, "imageWriter=%s in udiRoot.conf names no user", image_writer);
   return writer;
}

/* udi_read_trusted_meta for the programs: the .meta text, or exit with its code and a message naming the image. */
char *udi_load_meta_or_die(const char *image_dir, const char *image_writer, const char *id)
{
   char err[512];
   int code = UDI_EX_NOINPUT;
   char *text = udi_read_trusted_meta(image_dir, id, udi_image_writer_or_die(image_writer), &code, err, sizeof(err));
   if (!text) {
      if (code == UDI_EX_NOINPUT)
         FATAL(code, "image %s not found in %s: %s", id, image_dir, err);
      if (code == UDI_EX_UNTRUSTED)
         FATAL(code,
               "image %s refused: %s in %s is not to be trusted (must be root's or imageWriter's, not a "
               "symlink, not writable by group or others)",
               id, err, image_dir);
      FATAL(code, "image %s: %s", id, err);
   }
   return text;
}
