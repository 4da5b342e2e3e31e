/* udi_image.h -- image descriptors (`type:tag`) and the image's `.meta` file.

   A `.meta` file is `KEY: value` lines written by the gateway next to `<id>.squashfs`: FORMAT, ENTRY, CMD,
   WORKDIR, ENV (repeated), USERACL, GROUPACL, USER. The syntax, including the percent-encoded form for values
   upstream's syntax cannot hold, is specified in docs/meta-format.md; packages/core/src/meta/meta-vectors.json
   holds the vectors this reader is tested against.

   Memory policy: short-lived; never freed. */

#ifndef UDI_IMAGE_H
#define UDI_IMAGE_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "udi_misc.h"

/** Macros **/

#define UDI_META_MAX_BYTES (4 * 1024 * 1024) /* larger .meta files are refused */
#define UDI_NO_WRITER ((uid_t)-1)            /* no imageWriter: image files must be root's */

/** Types **/

/* A parsed `--image` value. */
struct udi_image_ref {
   char *type; /* docker, custom, id or local */
   char *tag;  /* filtered tag, id (hex) or local path */
};

/* The contents of `<id>.meta`. */
struct udi_meta {
   char *format;         /* FORMAT value, NULL when absent (treated as squashfs) */
   struct strv entry;    /* ENTRY as argv; n == 0 when absent */
   bool has_entry;       /* ENTRY line present */
   struct strv cmd;      /* CMD as argv */
   bool has_cmd;         /* CMD line present */
   char *workdir;        /* WORKDIR or NULL */
   struct strv env;      /* ENV lines, each NAME=value, in file order */
   struct strv useracl;  /* uids allowed (empty: no user ACL) */
   struct strv groupacl; /* gids allowed (empty: no group ACL) */
   char *user;           /* USER or NULL (informational: the runtime always runs as the caller) */
};

/** Function prototypes **/

int udi_parse_image_ref(struct udi_image_ref *r, const char *desc, const char *default_type);
int udi_parse_list_value(struct strv *out, const char *value);
char *udi_meta_percent_decode(const char *s);
int udi_meta_parse_text(struct udi_meta *m, const char *text, char *err, size_t errlen);
bool udi_meta_allows(const struct udi_meta *m, uid_t uid, gid_t gid, const gid_t *groups, int n_groups);
int udi_image_writer_uid(const char *writer, uid_t *out);
const char *udi_untrusted_reason(const struct stat *st, bool want_dir, uid_t writer);
int udi_open_trusted(int dirfd, const char *path, bool want_dir, uid_t writer, char *err, size_t errlen);
char *udi_load_meta_or_die(const char *image_dir, const char *image_writer, const char *id);
uid_t udi_image_writer_or_die(const char *image_writer);
char *udi_read_trusted_meta(const char *image_dir, const char *id, uid_t writer, int *code, char *err, size_t errlen);

#endif
