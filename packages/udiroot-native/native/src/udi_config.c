/* udi_config.c -- parse and validate udiRoot.conf (see udi_config.h for the format).

   Memory policy: short-lived; the parsed configuration is never freed. */

#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "udi_config.h"

/** Macros **/

#define ERR(...)                                                                                                       \
   do {                                                                                                                \
      snprintf(err, errlen, __VA_ARGS__);                                                                              \
      return -1;                                                                                                       \
   } while (0)

/** Functions **/

/* Booleans are integers, non-zero meaning true. Upstream read them with strtol, so a word such as `yes` or `true`
   meant 0 there: such a value is read the same way (its leading integer, else 0; never turning on what upstream
   left off) and a warning naming the accepted spelling is queued in *warn. */
static int parse_bool(const char *key, const char *v, bool *out, char **warn)
{
   const char *d = (*v == '+' || *v == '-') ? v + 1 : v;
   size_t digits = strspn(d, "0123456789");
   *out = strspn(d, "0") < digits; /* a non-zero digit in the leading integer */
   if (!*d || d[digits])
      *warn = xasprintf("%s=%s is not 0 or 1: read as %d (%s), as upstream Shifter's strtol read it; write %s=0 or "
                        "%s=1",
                        key, v, *out ? 1 : 0, *out ? "on" : "off", key, key);
   return 0;
}

/* Non-negative decimal integer (at most 1000000). Returns 0 or -1 with err. */
static int parse_int(const char *key, const char *v, int *out, char *err, size_t errlen)
{
   char *end;
   long n;
   errno = 0;
   n = strtol(v, &end, 10);
   if (errno || end == v || *end || n < 0 || n > 1000000)
      ERR("%s: expected a non-negative integer, got \"%s\"", key, v);
   *out = (int)n;
   return 0;
}

/* Parse "<n>[bkmgtpe]" (1024-based, as volume sizes) into bytes. Returns 0 or -1. */
int udi_parse_bytes(const char *v, unsigned long long *out)
{
   char *end;
   unsigned long long n, mult = 1;
   errno = 0;
   if (!*v || *v == '-')
      return -1;
   n = strtoull(v, &end, 10);
   if (errno || end == v)
      return -1;
   switch (*end) {
   case '\0': break;
   case 'b':
   case 'B': mult = 1; break;
   case 'k':
   case 'K': mult = 1ULL << 10; break;
   case 'm':
   case 'M': mult = 1ULL << 20; break;
   case 'g':
   case 'G': mult = 1ULL << 30; break;
   case 't':
   case 'T': mult = 1ULL << 40; break;
   case 'p':
   case 'P': mult = 1ULL << 50; break;
   case 'e':
   case 'E': mult = 1ULL << 60; break;
   default: return -1;
   }
   if (*end && end[1] && !((end[1] == 'b' || end[1] == 'B') && !end[2] && mult > 1))
      return -1;
   if (n > ~0ULL / mult)
      return -1;
   *out = n * mult;
   return 0;
}

/* Replace a scalar value (the last assignment wins). */
static void set_str(char **slot, const char *v)
{
   *slot = xstrdup(v);
}

/* The module called name, or NULL. */
struct udi_module *udi_config_module(const struct udi_config *c, const char *name)
{
   for (size_t i = 0; i < c->n_modules; i++)
      if (strcmp(c->modules[i].name, name) == 0)
         return &c->modules[i];
   return NULL;
}

/* Assign module_<name>_<subkey>; the module is created on first mention (enabled by default).
   Returns 0 or -1 with err. */
static int assign_module(struct udi_config *c, const char *key, const char *v, char **warn, char *err, size_t errlen)
{
   static const char *subkeys[] = { "userhook", "roothook", "siteEnvPrepend", "siteEnvAppend", "siteEnvUnset",
                                    "siteEnv",  "siteFs",   "copyPath",       "conflict",      "enabled",
                                    NULL };
   const char *rest = key + strlen("module_"), *us = strchr(rest, '_');
   const char *sub = NULL, *misspelt = NULL;
   size_t namelen;
   struct udi_module *m;
   /* module_<name>_<subkey>: the name cannot contain '_' (upstream splits the key on '_'). */
   if (!us || us == rest || strchr(us + 1, '_'))
      ERR("expected module_<name>_<subkey> with no '_' in the name: \"%s\"", key);
   namelen = (size_t)(us - rest);
   /* The name becomes a path component (opt/udiImage/modules/<name>): letters, digits and '-' only. */
   for (size_t i = 0; i < namelen; i++)
      if (!((rest[i] >= 'a' && rest[i] <= 'z') || (rest[i] >= 'A' && rest[i] <= 'Z') ||
            (rest[i] >= '0' && rest[i] <= '9') || rest[i] == '-'))
         ERR("invalid module name in \"%s\" (letters, digits and '-' only)", key);
   for (int i = 0; subkeys[i]; i++) {
      if (!strcmp(us + 1, subkeys[i]))
         sub = subkeys[i];
      else if (!strcasecmp(us + 1, subkeys[i]))
         misspelt = subkeys[i];
   }
   if (!sub && !misspelt)
      ERR("unknown module key \"%s\" (subkeys: userhook roothook siteEnv siteEnvPrepend siteEnvAppend siteEnvUnset "
          "siteFs copyPath conflict enabled)",
          key);
   {
      char *name = xstrndup(rest, namelen);
      m = udi_config_module(c, name);
      if (!m) {
         c->modules = xrealloc(c->modules, (c->n_modules + 1) * sizeof(*c->modules));
         m = &c->modules[c->n_modules++];
         memset(m, 0, sizeof(*m));
         m->name = name;
         m->enabled = true;
         strv_init(&m->siteEnv);
         strv_init(&m->siteEnvPrepend);
         strv_init(&m->siteEnvAppend);
         strv_init(&m->siteEnvUnset);
         strv_init(&m->conflict);
      } else {
         free(name);
      }
   }
   /* Upstream compared subkeys case-sensitively and ignored any other one (after creating the module), so
      module_mpich_copypath copied nothing there: the same here, with a warning naming the key it meant. */
   if (!sub) {
      *warn =
         xasprintf("%s is ignored, as upstream Shifter ignored it; the key is module_%s_%s", key, m->name, misspelt);
      return 0;
   }
   /* Module lists are replaced by a repeated key, except siteFs, which accumulates like the top-level one. */
   if ((!strcmp(sub, "userhook") || !strcmp(sub, "roothook") || !strcmp(sub, "copyPath")) && !*v)
      ERR("%s: value is empty", key);
   if (!strcmp(sub, "userhook"))
      set_str(&m->userhook, v);
   else if (!strcmp(sub, "roothook"))
      set_str(&m->roothook, v);
   else if (!strcmp(sub, "siteEnv")) {
      strv_init(&m->siteEnv);
      strv_split(&m->siteEnv, v, " \t");
   } else if (!strcmp(sub, "siteEnvPrepend")) {
      strv_init(&m->siteEnvPrepend);
      strv_split(&m->siteEnvPrepend, v, " \t");
   } else if (!strcmp(sub, "siteEnvAppend")) {
      strv_init(&m->siteEnvAppend);
      strv_split(&m->siteEnvAppend, v, " \t");
   } else if (!strcmp(sub, "siteEnvUnset")) {
      strv_init(&m->siteEnvUnset);
      strv_split(&m->siteEnvUnset, v, " \t");
   } else if (!strcmp(sub, "siteFs"))
      m->siteFs = m->siteFs ? xasprintf("%s;%s", m->siteFs, v) : xstrdup(v);
   else if (!strcmp(sub, "copyPath"))
      set_str(&m->copyPath, v);
   else if (!strcmp(sub, "conflict")) {
      strv_init(&m->conflict);
      strv_split(&m->conflict, v, " \t");
   } else if (!strcmp(sub, "enabled"))
      return parse_bool(key, v, &m->enabled, warn);
   return 0;
}

/* Assign one key. Returns 0, or -1 with a message in err; *warn is set to a warning to report, if any. */
static int assign(struct udi_config *c, const char *key, const char *v, char **warn, char *err, size_t errlen)
{
   struct {
      const char *k;
      char **slot;
   } strs[] = { { "udiMount", &c->udiMount },
                { "loopMount", &c->loopMount },
                { "imagePath", &c->imagePath },
                { "udiRootPath", &c->udiRootPath },
                { "etcPath", &c->etcPath },
                { "cpPath", &c->cpPath },
                { "mvPath", &c->mvPath },
                { "chmodPath", &c->chmodPath },
                { "ddPath", &c->ddPath },
                { "modprobePath", &c->modprobePath },
                { "insmodPath", &c->insmodPath },
                { "mkfsXfsPath", &c->mkfsXfsPath },
                { "rootfsType", &c->rootfsType },
                { "mountPropagationStyle", &c->mountPropagationStyle },
                { "sitePreMountHook", &c->sitePreMountHook },
                { "sitePostMountHook", &c->sitePostMountHook },
                { "optUdiImage", &c->optUdiImage },
                { "perNodeCachePath", &c->perNodeCachePath },
                { "imageWriter", &c->imageWriter },
                { "system", &c->system },
                { "defaultImageType", &c->defaultImageType },
                { "batchType", &c->batchType },
                { "gatewayCaPath", &c->gatewayCaPath },
                { NULL, NULL } };
   struct {
      const char *k;
      struct strv *sv;
      const char *delims;
   } lists[] = { { "usersToImport", &c->usersToImport, " \t" },
                 { "siteEnv", &c->siteEnv, " \t" },
                 { "siteEnvAppend", &c->siteEnvAppend, " \t" },
                 { "siteEnvPrepend", &c->siteEnvPrepend, " \t" },
                 { "siteEnvUnset", &c->siteEnvUnset, " \t" },
                 { "imageGateway", &c->imageGateway, " \t" },
                 { "defaultModules", &c->defaultModules, "," },
                 { "perNodeCacheAllowedFsType", &c->perNodeCacheAllowedFsType, " \t" },
                 { NULL, NULL, NULL } };
   struct {
      const char *k;
      bool *slot;
   } bools[] = { { "populateEtcDynamically", &c->populateEtcDynamically },
                 { "allowLibcPwdCalls", &c->allowLibcPwdCalls },
                 { "mountUdiRootWritable", &c->mountUdiRootWritable },
                 { "allowLocalChroot", &c->allowLocalChroot },
                 { NULL, NULL } };

   if (!strcmp(key, "mountPropagationStyle") && strcmp(v, "private") && strcmp(v, "slave"))
      ERR("mountPropagationStyle must be private or slave, got \"%s\"", v);
   for (int i = 0; strs[i].k; i++)
      if (!strcmp(key, strs[i].k)) {
         if (!*v)
            ERR("%s: value is empty", key);
         set_str(strs[i].slot, v);
         return 0;
      }
   for (int i = 0; lists[i].k; i++)
      if (!strcmp(key, lists[i].k)) {
         size_t before = lists[i].sv->n;
         strv_split(lists[i].sv, v, lists[i].delims);
         for (size_t j = before; j < lists[i].sv->n;) { /* comma lists: items trimmed, empty ones dropped */
            char *t = str_trim(lists[i].sv->v[j]);
            if (!*t) {
               strv_remove(lists[i].sv, j);
               continue;
            }
            lists[i].sv->v[j] = t;
            j++;
         }
         return 0;
      }
   for (int i = 0; bools[i].k; i++)
      if (!strcmp(key, bools[i].k))
         return parse_bool(key, v, bools[i].slot, warn);
   if (!strcmp(key, "maxGroupCount"))
      return parse_int(key, v, &c->maxGroupCount, err, errlen);
   if (!strcmp(key, "gatewayTimeout"))
      return parse_int(key, v, &c->gatewayTimeout, err, errlen);
   if (!strcmp(key, "perNodeCacheSizeLimit")) {
      if (udi_parse_bytes(v, &c->perNodeCacheSizeLimit))
         ERR("perNodeCacheSizeLimit: bad size \"%s\"", v);
      return 0;
   }
   if (!strcmp(key, "siteFs")) {
      c->siteFs = c->siteFs ? xasprintf("%s;%s", c->siteFs, v) : xstrdup(v);
      return 0;
   }
   if (str_starts(key, "module_"))
      return assign_module(c, key, v, warn, err, errlen);
   /* Keys upstream accepted but no longer acts on: accepted so old configurations keep working. */
   if (!strcmp(key, "optionalSshdAsRoot") || !strcmp(key, "autoLoadKernelModule") || !strcmp(key, "kmodBasePath") ||
       !strcmp(key, "kmodCacheFile")) {
      VERBOSE("udiRoot.conf: %s is ignored", key);
      return 0;
   }
   if (!strcmp(key, "nodeContextPrefix"))
      return 0;
   ERR("unknown key \"%s\"", key);
}

/* Empty configuration with the runtime defaults (gatewayTimeout 10, everything else off or absent). */
static void config_init(struct udi_config *c)
{
   memset(c, 0, sizeof(*c));
   strv_init(&c->usersToImport);
   strv_init(&c->siteEnv);
   strv_init(&c->siteEnvAppend);
   strv_init(&c->siteEnvPrepend);
   strv_init(&c->siteEnvUnset);
   strv_init(&c->imageGateway);
   strv_init(&c->defaultModules);
   strv_init(&c->perNodeCacheAllowedFsType);
   strv_init(&c->warnings);
   c->gatewayTimeout = 10;
   c->maxGroupCount = 0;
}

/* Parse the configuration text into c (which is initialised here). Lines are joined on a trailing backslash.
   Returns 0, or -1 with "line N: message" in err. Pure: no file system access, used by the test binaries. */
int udi_config_parse_text(struct udi_config *c, const char *text, char *err, size_t errlen)
{
   char *copy = xstrdup(text), *line, *save = NULL, *acc = NULL;
   int lineno = 0, start = 0;
   config_init(c);
   /* strtok_r would merge blank lines; walk by hand to keep line numbers right. */
   line = copy;
   while (line) {
      char *nl = strchr(line, '\n'), *t;
      size_t tl;
      (void)save;
      if (nl)
         *nl = '\0';
      lineno++;
      t = str_trim(line);
      if ((!acc && *t == '\0') || *t == '#') {
         line = nl ? nl + 1 : NULL;
         continue;
      }
      tl = strlen(t);
      if (!acc)
         start = lineno;
      if (tl && t[tl - 1] == '\\') {
         t[tl - 1] = '\0';
         t = str_trim(t);
         acc = acc ? xasprintf("%s %s", acc, t) : xstrdup(t);
         line = nl ? nl + 1 : NULL;
         if (line)
            continue;
         t = acc; /* continuation at end of file: take what we have */
      } else if (acc) {
         acc = xasprintf("%s %s", acc, t);
         t = acc;
      }
      {
         char *eq = strchr(t, '='), *key, *val, e2[512], *warn = NULL;
         if (!eq) {
            snprintf(err, errlen, "line %d: expected key=value", start);
            return -1;
         }
         *eq = '\0';
         key = str_trim(t);
         val = str_trim(eq + 1);
         if (!*key) {
            snprintf(err, errlen, "line %d: empty key", start);
            return -1;
         }
         if (assign(c, key, val, &warn, e2, sizeof(e2))) {
            snprintf(err, errlen, "line %d: %s", start, e2);
            return -1;
         }
         if (warn)
            strv_push(&c->warnings, xasprintf("line %d: %s", start, warn));
      }
      acc = NULL;
      line = nl ? nl + 1 : NULL;
   }
   return 0;
}

/* Check required keys and value domains (no file system access). Returns 0 or -1 with err. */
int udi_config_validate(const struct udi_config *c, char *err, size_t errlen)
{
   const char *req[][2] = { { "udiMount", c->udiMount },
                            { "loopMount", c->loopMount },
                            { "imagePath", c->imagePath },
                            { "udiRootPath", c->udiRootPath },
                            { "rootfsType", c->rootfsType } };
   for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
      if (!req[i][1] || !*req[i][1])
         ERR("required key %s is missing", req[i][0]);
      if (i < 4 && req[i][1][0] != '/')
         ERR("%s must be an absolute path", req[i][0]);
   }
   if (!c->populateEtcDynamically && (!c->etcPath || c->etcPath[0] != '/'))
      ERR("etcPath is required (absolute) unless populateEtcDynamically=1");
   if (c->mountPropagationStyle && strcmp(c->mountPropagationStyle, "private") &&
       strcmp(c->mountPropagationStyle, "slave"))
      ERR("mountPropagationStyle must be private or slave");
   for (size_t i = 0; i < c->imageGateway.n; i++)
      if (!str_starts(c->imageGateway.v[i], "http://") && !str_starts(c->imageGateway.v[i], "https://"))
         ERR("imageGateway %s: expected http://host[:port] or https://host[:port]", c->imageGateway.v[i]);
   if (c->gatewayCaPath && c->gatewayCaPath[0] != '/')
      ERR("gatewayCaPath must be an absolute path");
   for (size_t i = 0; i < c->defaultModules.n; i++)
      if (!udi_config_module(c, c->defaultModules.v[i]))
         ERR("defaultModules names unknown module %s", c->defaultModules.v[i]);
   for (size_t i = 0; i < c->n_modules; i++)
      for (size_t j = 0; j < c->modules[i].conflict.n; j++)
         if (!udi_config_module(c, c->modules[i].conflict.v[j]))
            ERR("module %s conflicts with unknown module %s", c->modules[i].name, c->modules[i].conflict.v[j]);
   return 0;
}

/* Load path as the trusted configuration. Preconditions: called before any user input is parsed. With
   check_owner, the file (opened once; checks use the open descriptor, so it cannot be swapped in between) must be
   a regular file owned by uid 0 and not writable by group or other. Any problem exits UDI_EX_CONFIG. */
void udi_config_load(struct udi_config *c, const char *path, bool check_owner)
{
   char err[600];
   struct stat st;
   char *text;
   int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
   if (fd < 0)
      FATAL(UDI_EX_CONFIG, "cannot open %s: %s", path, strerror(errno));
   if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
      FATAL(UDI_EX_CONFIG, "%s is not a regular file", path);
   if (check_owner && (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))))
      FATAL(UDI_EX_CONFIG, "%s must be owned by root and not writable by group or other", path);
   if (st.st_size > UDI_CONF_MAX_BYTES)
      FATAL(UDI_EX_CONFIG, "%s is larger than %d bytes", path, UDI_CONF_MAX_BYTES);
   text = read_file_text(xasprintf("/proc/self/fd/%d", fd), UDI_CONF_MAX_BYTES);
   if (!text)
      FATAL(UDI_EX_CONFIG, "cannot read %s: %s", path, strerror(errno));
   close(fd);
   if (udi_config_parse_text(c, text, err, sizeof(err)) || udi_config_validate(c, err, sizeof(err)))
      FATAL(UDI_EX_CONFIG, "%s: %s", path, err);
   for (size_t i = 0; i < c->warnings.n; i++)
      WARN("%s %s", path, c->warnings.v[i]);
}

/* Append `"k":"v",` (or null) to the JSON being built. */
static void json_kv_str(char **out, const char *k, const char *v)
{
   *out = xasprintf("%s\"%s\":%s,", *out, k, v ? json_quote(v) : "null");
}

/* Append `"k":[…],` to the JSON being built. */
static void json_kv_list(char **out, const char *k, const struct strv *sv);

/* siteFs as the list of its ';'-separated entries (trimmed, surrounding quotes removed), for the JSON form. */
static void json_kv_sitefs(char **out, const char *k, const char *v)
{
   struct strv items = { 0 }, parts = { 0 };
   strv_init(&items);
   strv_init(&parts);
   if (v)
      strv_split(&parts, v, ";");
   for (size_t i = 0; i < parts.n; i++) {
      char *t = str_trim(parts.v[i]);
      size_t n = strlen(t);
      if (n >= 2 && t[0] == '"' && t[n - 1] == '"') {
         t[n - 1] = '\0';
         t++;
      }
      if (*t)
         strv_push(&items, t);
   }
   json_kv_list(out, k, &items);
}

static void json_kv_list(char **out, const char *k, const struct strv *sv)
{
   char *s = xasprintf("%s\"%s\":[", *out, k);
   for (size_t i = 0; i < sv->n; i++)
      s = xasprintf("%s%s%s", s, i ? "," : "", json_quote(sv->v[i]));
   *out = xasprintf("%s],", s);
}

/* The configuration as normalised JSON (keys in the order of udi_config.h, lists as arrays, siteFs split on ';',
   absent strings as null, the runtime's defaults applied to numbers and booleans, a "modules" object keyed by
   name). Used by the C/TS parity test and `udiconf-dump`. */
char *udi_config_json(const struct udi_config *c)
{
   char *o = xstrdup("{");
   json_kv_str(&o, "udiMount", c->udiMount);
   json_kv_str(&o, "loopMount", c->loopMount);
   json_kv_str(&o, "imagePath", c->imagePath);
   json_kv_str(&o, "udiRootPath", c->udiRootPath);
   json_kv_str(&o, "etcPath", c->etcPath);
   o = xasprintf("%s\"populateEtcDynamically\":%s,", o, c->populateEtcDynamically ? "true" : "false");
   json_kv_list(&o, "usersToImport", &c->usersToImport);
   o = xasprintf("%s\"allowLibcPwdCalls\":%s,", o, c->allowLibcPwdCalls ? "true" : "false");
   o = xasprintf("%s\"maxGroupCount\":%d,", o, c->maxGroupCount);
   json_kv_str(&o, "cpPath", c->cpPath);
   json_kv_str(&o, "mvPath", c->mvPath);
   json_kv_str(&o, "chmodPath", c->chmodPath);
   json_kv_str(&o, "ddPath", c->ddPath);
   json_kv_str(&o, "modprobePath", c->modprobePath);
   json_kv_str(&o, "insmodPath", c->insmodPath);
   json_kv_str(&o, "mkfsXfsPath", c->mkfsXfsPath);
   json_kv_str(&o, "rootfsType", c->rootfsType);
   o = xasprintf("%s\"mountUdiRootWritable\":%s,", o, c->mountUdiRootWritable ? "true" : "false");
   json_kv_str(&o, "mountPropagationStyle", c->mountPropagationStyle);
   json_kv_sitefs(&o, "siteFs", c->siteFs);
   json_kv_list(&o, "siteEnv", &c->siteEnv);
   json_kv_list(&o, "siteEnvAppend", &c->siteEnvAppend);
   json_kv_list(&o, "siteEnvPrepend", &c->siteEnvPrepend);
   json_kv_list(&o, "siteEnvUnset", &c->siteEnvUnset);
   json_kv_str(&o, "sitePreMountHook", c->sitePreMountHook);
   json_kv_str(&o, "sitePostMountHook", c->sitePostMountHook);
   json_kv_str(&o, "optUdiImage", c->optUdiImage);
   o = xasprintf("%s\"allowLocalChroot\":%s,", o, c->allowLocalChroot ? "true" : "false");
   json_kv_str(&o, "perNodeCachePath", c->perNodeCachePath);
   json_kv_str(&o, "imageWriter", c->imageWriter);
   o = xasprintf("%s\"perNodeCacheSizeLimit\":%llu,", o, c->perNodeCacheSizeLimit);
   json_kv_list(&o, "perNodeCacheAllowedFsType", &c->perNodeCacheAllowedFsType);
   json_kv_list(&o, "imageGateway", &c->imageGateway);
   o = xasprintf("%s\"gatewayTimeout\":%d,", o, c->gatewayTimeout);
   json_kv_str(&o, "gatewayCaPath", c->gatewayCaPath);
   json_kv_str(&o, "system", c->system);
   json_kv_str(&o, "defaultImageType", c->defaultImageType);
   json_kv_list(&o, "defaultModules", &c->defaultModules);
   json_kv_str(&o, "batchType", c->batchType);
   o = xasprintf("%s\"modules\":{", o);
   for (size_t i = 0; i < c->n_modules; i++) {
      const struct udi_module *m = &c->modules[i];
      o = xasprintf("%s%s%s:{", o, i ? "," : "", json_quote(m->name));
      json_kv_str(&o, "userhook", m->userhook);
      json_kv_str(&o, "roothook", m->roothook);
      json_kv_list(&o, "siteEnv", &m->siteEnv);
      json_kv_list(&o, "siteEnvPrepend", &m->siteEnvPrepend);
      json_kv_list(&o, "siteEnvAppend", &m->siteEnvAppend);
      json_kv_list(&o, "siteEnvUnset", &m->siteEnvUnset);
      json_kv_sitefs(&o, "siteFs", m->siteFs);
      json_kv_str(&o, "copyPath", m->copyPath);
      json_kv_list(&o, "conflict", &m->conflict);
      o = xasprintf("%s\"enabled\":%s}", o, m->enabled ? "true" : "false");
   }
   return xasprintf("%s}}", o);
}
