/* udi_image.c -- image descriptor parsing, `.meta` parsing and the image ACL check.

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

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

/* Append the UTF-8 encoding of code point cp to *w. */
static void put_utf8(char **w, unsigned long cp)
{
   char *p = *w;
   if (cp < 0x80) {
      *p++ = (char)cp;
   } else if (cp < 0x800) {
      *p++ = (char)(0xC0 | (cp >> 6));
      *p++ = (char)(0x80 | (cp & 0x3F));
   } else if (cp < 0x10000) {
      *p++ = (char)(0xE0 | (cp >> 12));
      *p++ = (char)(0x80 | ((cp >> 6) & 0x3F));
      *p++ = (char)(0x80 | (cp & 0x3F));
   } else {
      *p++ = (char)(0xF0 | (cp >> 18));
      *p++ = (char)(0x80 | ((cp >> 12) & 0x3F));
      *p++ = (char)(0x80 | ((cp >> 6) & 0x3F));
      *p++ = (char)(0x80 | (cp & 0x3F));
   }
   *w = p;
}

static int hexval(char c)
{
   if (c >= '0' && c <= '9') return c - '0';
   if (c >= 'a' && c <= 'f') return c - 'a' + 10;
   if (c >= 'A' && c <= 'F') return c - 'A' + 10;
   return -1;
}

/* Parse a list value: `['a', "b c", 'it\'s']` (python-repr-like, escapes \\ \' \" \n \r \t \xHH \uHHHH
   \UHHHHHHHH) or a bare string split on blanks. `[]` is an empty list. Returns 0 or -1 on malformed syntax. */
int udi_parse_list_value(struct strv *out, const char *value)
{
   const char *p = value;
   if (!out->v)
      strv_init(out);
   while (*p == ' ' || *p == '\t')
      p++;
   if (*p != '[') {
      strv_split(out, p, " \t");
      return 0;
   }
   p++;
   for (;;) {
      char q, *buf, *w;
      while (*p == ' ' || *p == '\t')
         p++;
      if (*p == ']')
         break;
      if (*p != '\'' && *p != '"')
         return -1;
      q = *p++;
      buf = xmalloc(strlen(p) * 4 + 1);
      w = buf;
      while (*p && *p != q) {
         if (*p != '\\') {
            *w++ = *p++;
            continue;
         }
         p++;
         switch (*p) {
         case '\\': case '\'': case '"': *w++ = *p++; break;
         case 'n': *w++ = '\n'; p++; break;
         case 'r': *w++ = '\r'; p++; break;
         case 't': *w++ = '\t'; p++; break;
         case 'x': case 'u': case 'U': {
            int digits = *p == 'x' ? 2 : *p == 'u' ? 4 : 8;
            unsigned long cp = 0;
            p++;
            for (int i = 0; i < digits; i++) {
               int h = hexval(p[i]);
               if (h < 0)
                  return -1;
               cp = cp * 16 + (unsigned long)h;
            }
            if (cp == 0 || cp > 0x10FFFF)
               return -1;
            p += digits;
            put_utf8(&w, cp);
            break;
         }
         default:
            return -1;
         }
      }
      if (*p != q)
         return -1;
      p++;
      *w = '\0';
      strv_push_own(out, buf);
      while (*p == ' ' || *p == '\t')
         p++;
      if (*p == ',') {
         p++;
         continue;
      }
      if (*p == ']')
         break;
      return -1;
   }
   p++;
   while (*p == ' ' || *p == '\t')
      p++;
   return *p ? -1 : 0;
}

/* Parse a comma/blank separated list of numeric ids, brackets optional ("[1000, 1001]", "1000,1001"). */
static int parse_acl(struct strv *out, const char *value)
{
   struct strv toks = { 0 };
   strv_split(&toks, value, "[], \t");
   for (size_t i = 0; i < toks.n; i++) {
      char *end;
      errno = 0;
      unsigned long v = strtoul(toks.v[i], &end, 10);
      if (errno || *end || end == toks.v[i] || v > 0xFFFFFFFEul)
         return -1;
      strv_push(out, toks.v[i]);
   }
   return 0;
}

/* Parse .meta text into m (initialised here). Unknown keys are ignored (newer gateways may add some). Returns 0
   or -1 with "line N: message" in err. */
int udi_meta_parse_text(struct udi_meta *m, const char *text, char *err, size_t errlen)
{
   char *copy = xstrdup(text), *line = copy;
   int lineno = 0;
   memset(m, 0, sizeof(*m));
   strv_init(&m->entry);
   strv_init(&m->cmd);
   strv_init(&m->env);
   strv_init(&m->useracl);
   strv_init(&m->groupacl);
   while (line) {
      char *nl = strchr(line, '\n'), *colon, *key, *val;
      if (nl)
         *nl = '\0';
      lineno++;
      if (line[strspn(line, " \t\r")] == '\0') {
         line = nl ? nl + 1 : NULL;
         continue;
      }
      if (nl && nl > line && nl[-1] == '\r')
         nl[-1] = '\0';
      colon = strchr(line, ':');
      if (!colon) {
         snprintf(err, errlen, "line %d: expected KEY: value", lineno);
         return -1;
      }
      *colon = '\0';
      key = str_trim(line);
      val = colon + 1;
      if (*val == ' ')
         val++; /* exactly one separator blank; the value itself may start with blanks (ENV values) */
      if (!strcmp(key, "FORMAT")) {
         m->format = xstrdup(str_trim(val));
      } else if (!strcmp(key, "ENTRY") || !strcmp(key, "CMD")) {
         struct strv *sv = key[0] == 'E' ? &m->entry : &m->cmd;
         sv->n = 0;
         sv->v[0] = NULL;
         if (udi_parse_list_value(sv, str_trim(val))) {
            snprintf(err, errlen, "line %d: malformed %s list", lineno, key);
            return -1;
         }
         if (key[0] == 'E')
            m->has_entry = sv->n > 0;
         else
            m->has_cmd = sv->n > 0;
      } else if (!strcmp(key, "WORKDIR")) {
         val = str_trim(val);
         m->workdir = *val ? xstrdup(val) : NULL;
      } else if (!strcmp(key, "ENV")) {
         char *eq = strchr(val, '=');
         if (!eq || eq == val) {
            snprintf(err, errlen, "line %d: ENV needs NAME=value", lineno);
            return -1;
         }
         strv_push(&m->env, val);
      } else if (!strcmp(key, "USERACL") || !strcmp(key, "GROUPACL")) {
         if (parse_acl(key[0] == 'U' ? &m->useracl : &m->groupacl, val)) {
            snprintf(err, errlen, "line %d: malformed %s", lineno, key);
            return -1;
         }
      } else if (!strcmp(key, "USER")) {
         m->user = xstrdup(str_trim(val));
      }
      line = nl ? nl + 1 : NULL;
   }
   if (!m->format)
      m->format = xstrdup("squashfs");
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
