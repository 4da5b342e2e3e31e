/* udi_volume.h -- volume maps: `from:to[:flag[:flag…]]` entries separated by `;`.

   Flags: ro; rec (site only); slave, private (site only, exclusive); perNodeCache=size=N[,bs=N][,method=loop]
   [,fs=xfs] (a node-local scratch filesystem; `from` is ignored). User maps need `to`; a site map may give only
   `from` (mounted at the same path). Validation here is purely textual; the mount-time checks (resolution inside
   the container as the user, approved devices) live in udi_mount.c.

   Memory policy: short-lived; never freed. */

#ifndef UDI_VOLUME_H
#define UDI_VOLUME_H

#include <stdbool.h>
#include <stddef.h>

/** Macros **/

#define VOL_RO 0x1            /* read-only bind */
#define VOL_REC 0x2           /* recursive bind (site only) */
#define VOL_SLAVE 0x4         /* slave propagation (site only) */
#define VOL_PRIVATE 0x8       /* private propagation (site only) */
#define VOL_PERNODECACHE 0x10 /* node-local loop filesystem instead of a bind */

/* Return codes of udi_volume_validate / udi_volume_parse, as upstream. */
#define VOL_OK 0
#define VOL_ERR_PATH 1      /* path not absolute, contains "..", or forbidden target */
#define VOL_ERR_FLAG 2      /* flag unknown or not allowed here */
#define VOL_ERR_DUPFLAG 3   /* the same flag twice */
#define VOL_ERR_EXCLUSIVE 4 /* slave together with private */
#define VOL_ERR_SYNTAX 5    /* missing `to` or empty entry */

/** Types **/

/* One volume map entry. */
struct udi_volume {
   char *from;                    /* source path (container view for user maps, host view for site maps) */
   char *to;                      /* target path inside the container */
   unsigned flags;                /* VOL_* bits */
   unsigned long long cache_size; /* perNodeCache size in bytes */
   unsigned long long cache_bs;   /* perNodeCache block size (default 1 MiB) */
   char *cache_fs;                /* perNodeCache filesystem (default xfs) */
};

/* A list of volume maps. */
struct udi_volmap {
   struct udi_volume *v; /* entries in input order */
   size_t n;             /* number of entries */
};

/** Function prototypes **/

int udi_volume_parse(struct udi_volmap *map, const char *input, bool site);
int udi_volume_validate_user(const char *from, const char *to);
int udi_volume_validate_site(const char *from, const char *to);
char *udi_volume_signature(const struct udi_volmap *map);
const char *udi_volume_strerror(int rc);

#endif
