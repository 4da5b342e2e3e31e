/* udi_config.h -- udiRoot.conf: the site's only source of trust for the runtime.

   Format: `key=value` lines, `#` starts a comment line, surrounding blanks trimmed, a trailing backslash joins
   the next line with one space, no quoting. Unknown keys are fatal. Spellings upstream Shifter tolerated are read
   with upstream's meaning and a warning (docs/udiroot-conf.md, "Upstream spellings"): a boolean that is not an
   integer is read as strtol reads it (`yes`/`true` are 0), a module subkey in the wrong case is ignored. The file
   must be owned by root and not writable by group or other; its path is fixed at build time (CONFIG_FILE), never
   taken from the user.

   Memory policy: parsed once per process and never freed. */

#ifndef UDI_CONFIG_H
#define UDI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "udi_misc.h"

/** Macros **/

#ifndef CONFIG_FILE
#define CONFIG_FILE "/etc/shifter/udiRoot.conf"
#endif

#define UDI_CONF_MAX_BYTES (1024 * 1024) /* a larger config is refused, not truncated */

/** Types **/

/* One `module_<name>_<subkey>` group (modules are site-defined bundles of env, mounts, files and hooks). */
struct udi_module {
   char *name;                 /* [A-Za-z0-9_-]+ from the key */
   char *userhook;             /* script run as `/bin/sh hook` inside the container as the user, or NULL */
   char *roothook;             /* script run as `/bin/sh hook` on the host as root, cwd udiMount, or NULL */
   struct strv siteEnv;        /* VAR=value to set */
   struct strv siteEnvPrepend; /* VAR=value to prepend with ':' */
   struct strv siteEnvAppend;  /* VAR=value to append with ':' */
   struct strv siteEnvUnset;   /* VAR names to remove */
   char *siteFs;               /* ';'-separated site volume maps, or NULL */
   char *copyPath;             /* host directory copied to /opt/udiImage/modules/<name>, or NULL */
   struct strv conflict;       /* module names that cannot be active together with this one */
   bool enabled;               /* module_<name>_enabled, default 1 */
};

/* The whole configuration. String keys are NULL when absent; list keys accumulate across repeated lines. */
struct udi_config {
   char *udiMount;              /* container root mount point (required) */
   char *loopMount;             /* image loop mount point (required) */
   char *imagePath;             /* directory of <id>.squashfs + <id>.meta (required) */
   char *udiRootPath;           /* install prefix (required) */
   char *etcPath;               /* site /etc files copied when populateEtcDynamically=0 */
   bool populateEtcDynamically; /* generate passwd/group from NSS instead of copying etcPath */
   struct strv usersToImport;   /* extra users added to the generated passwd */
   bool allowLibcPwdCalls;      /* use NSS (getpwuid) instead of etcPath/passwd to find the user */
   int maxGroupCount;           /* cap on groups the user is listed in within the filtered /etc/group */
   char *cpPath, *mvPath, *chmodPath, *ddPath, *modprobePath, *insmodPath, *mkfsXfsPath; /* trusted tools */
   char *rootfsType;            /* filesystem of the container root, tmpfs (required) */
   bool mountUdiRootWritable;   /* 0: the root is remounted read-only after setup */
   char *mountPropagationStyle; /* "private" (default) or "slave" for site binds */
   char *siteFs;                /* ';'-joined site volume maps */
   struct strv siteEnv, siteEnvAppend, siteEnvPrepend, siteEnvUnset; /* site-wide environment edits */
   char *sitePreMountHook;  /* root shell script before site mounts, cwd udiMount */
   char *sitePostMountHook; /* root shell script after site mounts, cwd udiMount */
   char *optUdiImage;       /* host directory copied into /opt/udiImage */
   bool allowLocalChroot;   /* permit local:/path images */
   char *perNodeCachePath;  /* directory of perNodeCache backing files (default /tmp) */
   char *imageWriter;       /* account besides root that may own image files (name or uid); NULL: root */
   unsigned long long perNodeCacheSizeLimit; /* bytes; 0 = no limit (enforced, unlike upstream) */
   struct strv perNodeCacheAllowedFsType;    /* allowed fs= values; empty = {xfs} */
   struct strv imageGateway;                 /* http:// or https://host:port URLs, tried in a shuffled order */
   int gatewayTimeout;                       /* seconds per gateway attempt (default 10) */
   char *gatewayCaPath;                      /* CA file (PEM) or hashed CA directory for https gateways; NULL: system */
   char *system;                             /* platform name sent to the gateway */
   char *defaultImageType;                   /* type used when the descriptor has none (default docker) */
   struct strv defaultModules;               /* modules active when --module is not given */
   char *batchType;                          /* legacy, kept for compatibility */
   struct udi_module *modules;               /* module definitions in first-seen order */
   size_t n_modules;                         /* number of modules */
   struct strv warnings;                     /* "line N: …" for each upstream spelling read with upstream's meaning */
};

/** Function prototypes **/

int udi_config_parse_text(struct udi_config *c, const char *text, char *err, size_t errlen);
int udi_config_validate(const struct udi_config *c, char *err, size_t errlen);
void udi_config_load(struct udi_config *c, const char *path, bool check_owner);
char *udi_config_json(const struct udi_config *c);
struct udi_module *udi_config_module(const struct udi_config *c, const char *name);
int udi_parse_bytes(const char *v, unsigned long long *out);

#endif
