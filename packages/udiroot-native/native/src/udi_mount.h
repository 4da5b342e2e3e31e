/* udi_mount.h -- building and tearing down the container root (udiMount) from a squashfs image.

   Layout: the image is loop-mounted read-only (nosuid,nodev) at loopMount; udiMount is a fresh tmpfs holding the
   site directories, generated /etc, site and module binds, and, for every top-level image entry the site did not
   provide, a bind (directories, files ≥ 5 MiB) or a copy (files < 5 MiB, symlinks); the image's /etc is copied.
   Then /proc, /sys, /dev, /tmp, /var/tmp and the volumes. Every bind is made fd-to-fd (open_tree, mount_setattr,
   move_mount) so a path cannot be swapped between check and mount, and gets nosuid (and nodev except /dev).

   Memory policy: short-lived; never freed. */

#ifndef UDI_MOUNT_H
#define UDI_MOUNT_H

#include <stdbool.h>
#include <sys/types.h>

#include "udi_config.h"
#include "udi_image.h"
#include "udi_privs.h"
#include "udi_volume.h"

/** Macros **/

#define UDI_COPY_LIMIT (5 * 1024 * 1024) /* image files below this are copied into the tmpfs, larger ones bound */

/** Types **/

/* Everything needed to build one root. */
struct udi_root_request {
   const struct udi_config *config; /* trusted configuration */
   const char *image_id;            /* image identifier (for the signature) */
   const char *image_file;          /* <imagePath>/<id>.squashfs, or a directory for local: */
   bool local_root;                 /* image_file is a host directory (local:), not a squashfs */
   const struct udi_user *user;     /* the caller */
   struct udi_volmap *user_volumes; /* validated user volumes */
   const struct strv *modules;      /* active module names */
   const char *hostsfile_spec;      /* "host/n host2/n" for var/hostsfile, or NULL */
   const char *signature;           /* content of var/shifterConfig.json */
};

/** Function prototypes **/

char *udi_root_signature(const char *id, const char *user, const char *volmap_sig, const struct strv *modules);
bool udi_root_reusable(const struct udi_config *c, const char *signature);
void udi_root_build(const struct udi_root_request *r);
int udi_root_destroy(const struct udi_config *c);
int udi_resolve_in_root(int rootfd, const char *path, int flags);
void udi_run_hook(const char *script, const char *cwd, char *const envp[], const struct udi_user *as_user);

#endif
