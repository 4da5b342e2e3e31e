/* udi_volume.c -- parse, validate and sign volume maps (see udi_volume.h).

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "udi_config.h"
#include "udi_misc.h"
#include "udi_volume.h"

/** Functions **/

const char *udi_volume_strerror(int rc)
{
   switch (rc) {
   case VOL_OK: return "ok";
   case VOL_ERR_PATH: return "path not allowed (must be absolute, without \"..\", and not a protected target)";
   case VOL_ERR_FLAG: return "flag unknown or not allowed";
   case VOL_ERR_DUPFLAG: return "flag given twice";
   case VOL_ERR_EXCLUSIVE: return "slave and private are mutually exclusive";
   case VOL_ERR_SYNTAX: return "expected from:to[:flags]";
   default: return "invalid volume";
   }
}

/* Common checks for both kinds: absolute after normalisation, no ".." component. */
static bool path_ok(const char *p)
{
   if (!p || p[0] != '/')
      return false;
   for (const char *s = p; (s = strstr(s, "..")); s += 2)
      if ((s == p || s[-1] == '/') && (s[2] == '\0' || s[2] == '/'))
         return false;
   return true;
}

/* Strip trailing slashes (keeping "/") so that "/etc/" is judged as "/etc". */
static char *canon(const char *p)
{
   char *r = xstrdup(p);
   size_t n = strlen(r);
   while (n > 1 && r[n - 1] == '/')
      r[--n] = '\0';
   return r;
}

/* Whether p is dir or below it (component-wise). */
static bool under(const char *p, const char *dir)
{
   size_t n = strlen(dir);
   return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* Validate a user volume. Precondition: from/to already normalised to start with '/'. Users may not cover /etc,
   /var (except exactly /var/tmp), /opt/udiImage, or exactly /opt. Returns VOL_OK or VOL_ERR_PATH. */
int udi_volume_validate_user(const char *from, const char *to)
{
   char *t;
   if (!path_ok(from) || !path_ok(to))
      return VOL_ERR_PATH;
   t = canon(to);
   if (!strcmp(t, "/var/tmp"))
      return VOL_OK;
   if (!strcmp(t, "/") || under(t, "/etc") || under(t, "/var") || under(t, "/opt/udiImage") || !strcmp(t, "/opt"))
      return VOL_ERR_PATH;
   return VOL_OK;
}

/* Validate a site volume: anything absolute except exactly /, /opt, /etc, /var, and the generated identity files. */
int udi_volume_validate_site(const char *from, const char *to)
{
   static const char *forbidden[] = { "/", "/opt", "/etc", "/var", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
                                      NULL };
   char *t;
   if (!path_ok(from) || !path_ok(to))
      return VOL_ERR_PATH;
   t = canon(to);
   for (int i = 0; forbidden[i]; i++)
      if (!strcmp(t, forbidden[i]))
         return VOL_ERR_PATH;
   return VOL_OK;
}

/* Parse the options of perNodeCache=…: size (required), bs, method=loop, fs/fstype. */
static int parse_cache_flag(struct udi_volume *vol, const char *opts)
{
   struct strv kv = { 0 };
   bool have_size = false;
   vol->cache_bs = 1024 * 1024;
   vol->cache_fs = xstrdup("xfs");
   strv_split(&kv, opts, ",");
   for (size_t i = 0; i < kv.n; i++) {
      char *eq = strchr(kv.v[i], '=');
      if (!eq)
         return VOL_ERR_FLAG;
      *eq = '\0';
      if (!strcmp(kv.v[i], "size")) {
         if (udi_parse_bytes(eq + 1, &vol->cache_size) || vol->cache_size == 0)
            return VOL_ERR_FLAG;
         have_size = true;
      } else if (!strcmp(kv.v[i], "bs")) {
         if (udi_parse_bytes(eq + 1, &vol->cache_bs) || vol->cache_bs == 0)
            return VOL_ERR_FLAG;
      } else if (!strcmp(kv.v[i], "method")) {
         if (strcmp(eq + 1, "loop"))
            return VOL_ERR_FLAG;
      } else if (!strcmp(kv.v[i], "fs") || !strcmp(kv.v[i], "fstype")) {
         vol->cache_fs = xstrdup(eq + 1);
      } else {
         return VOL_ERR_FLAG;
      }
   }
   return have_size ? VOL_OK : VOL_ERR_FLAG; /* no default size: the user must say how much */
}

/* Apply one flag to vol; user maps accept only ro and perNodeCache. Returns VOL_OK or VOL_ERR_*. */
static int parse_flag(struct udi_volume *vol, const char *flag, bool site)
{
   unsigned bit;
   const char *eq = strchr(flag, '=');
   if (str_starts(flag, "perNodeCache") && (flag[12] == '=' || flag[12] == '\0')) {
      if (vol->flags & VOL_PERNODECACHE)
         return VOL_ERR_DUPFLAG;
      vol->flags |= VOL_PERNODECACHE;
      return flag[12] ? parse_cache_flag(vol, flag + 13) : VOL_ERR_FLAG;
   }
   if (eq)
      return VOL_ERR_FLAG; /* only perNodeCache takes options */
   if (!strcmp(flag, "ro"))
      bit = VOL_RO;
   else if (!strcmp(flag, "rec"))
      bit = VOL_REC;
   else if (!strcmp(flag, "slave"))
      bit = VOL_SLAVE;
   else if (!strcmp(flag, "private"))
      bit = VOL_PRIVATE;
   else
      return VOL_ERR_FLAG;
   if (!site && bit != VOL_RO)
      return VOL_ERR_FLAG;
   if (vol->flags & bit)
      return VOL_ERR_DUPFLAG;
   vol->flags |= bit;
   if ((vol->flags & VOL_SLAVE) && (vol->flags & VOL_PRIVATE))
      return VOL_ERR_EXCLUSIVE;
   return VOL_OK;
}

/* Drop characters outside [A-Za-z0-9_.+-/] and make the path absolute. */
static char *normalise_path(const char *raw)
{
   char *f = str_filter(raw, "_.+-/");
   if (*f && f[0] != '/')
      f = xasprintf("/%s", f);
   return f;
}

/* Parse `input` (entries separated by ';', optionally wrapped in double quotes) and append every entry to map.
   Nothing is appended when any entry is invalid. Returns VOL_OK or the first VOL_ERR_* met. */
int udi_volume_parse(struct udi_volmap *map, const char *input, bool site)
{
   struct strv entries = { 0 };
   struct udi_volume *add;
   size_t n_add = 0;
   char *in = xstrdup(input ? input : "");
   size_t len = strlen(in);
   if (len >= 2 && in[0] == '"' && in[len - 1] == '"') {
      in[len - 1] = '\0';
      in++;
   }
   strv_split(&entries, in, ";");
   add = xcalloc(entries.n + 1, sizeof(*add));
   for (size_t i = 0; i < entries.n; i++) {
      struct strv tok = { 0 };
      struct udi_volume *vol = &add[n_add];
      int rc;
      char *e = entries.v[i];
      size_t el = strlen(e);
      if (el >= 2 && e[0] == '"' && e[el - 1] == '"') {
         e[el - 1] = '\0';
         e++;
      }
      strv_split(&tok, e, ":");
      if (tok.n == 0)
         return VOL_ERR_SYNTAX;
      if (tok.n == 1 && !site)
         return VOL_ERR_SYNTAX;
      vol->from = normalise_path(tok.v[0]);
      vol->to = normalise_path(tok.n > 1 ? tok.v[1] : tok.v[0]);
      for (size_t j = 2; j < tok.n; j++)
         if ((rc = parse_flag(vol, tok.v[j], site)) != VOL_OK)
            return rc;
      rc = site ? udi_volume_validate_site(vol->from, vol->to) : udi_volume_validate_user(vol->from, vol->to);
      if (rc != VOL_OK)
         return rc;
      n_add++;
   }
   map->v = xrealloc(map->v, (map->n + n_add + 1) * sizeof(*map->v));
   memcpy(&map->v[map->n], add, n_add * sizeof(*add));
   map->n += n_add;
   return VOL_OK;
}

/* One entry in signature form (flags in a fixed order). */
static char *entry_signature(const struct udi_volume *v)
{
   char *s = xasprintf("%s:%s", v->from, v->to);
   if (v->flags & VOL_RO)
      s = xasprintf("%s:ro", s);
   if (v->flags & VOL_REC)
      s = xasprintf("%s:rec", s);
   if (v->flags & VOL_SLAVE)
      s = xasprintf("%s:slave", s);
   if (v->flags & VOL_PRIVATE)
      s = xasprintf("%s:private", s);
   if (v->flags & VOL_PERNODECACHE)
      s = xasprintf("%s:perNodeCache=size=%llu,bs=%llu,method=loop,fstype=%s", s, v->cache_size, v->cache_bs,
                    v->cache_fs);
   return s;
}

/* qsort comparator for strings. */
static int cmp_str(const void *a, const void *b)
{
   return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The canonical, order-independent form of map: entries rendered `from:to[:ro][:rec][:slave][:private]
   [:perNodeCache=…]`, sorted, joined with ';'. Empty string for an empty map. Part of the reuse signature. */
char *udi_volume_signature(const struct udi_volmap *map)
{
   struct strv sv = { 0 };
   strv_init(&sv);
   for (size_t i = 0; i < map->n; i++)
      strv_push_own(&sv, entry_signature(&map->v[i]));
   qsort(sv.v, sv.n, sizeof(char *), cmp_str);
   return strv_join(&sv, ";");
}
