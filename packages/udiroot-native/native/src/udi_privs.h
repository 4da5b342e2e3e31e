/* udi_privs.h -- who the caller is, and every privilege transition of the runtime.

   The setuid binary starts with ruid = caller, euid = 0. Transitions are written where they happen, each with a
   comment `PRIV:` naming the resulting credentials, so `grep PRIV:` lists all of them.

   Memory policy: short-lived; never freed. */

#ifndef UDI_PRIVS_H
#define UDI_PRIVS_H

#include <stdbool.h>
#include <sys/types.h>

#include "udi_config.h"

/** Macros **/

#define UDI_MAX_GROUPS 512 /* more supplementary groups than this is refused, as upstream */

/** Types **/

/* The caller, resolved once from the real uid/gid. */
struct udi_user {
   uid_t uid;     /* real uid of the caller (never 0) */
   gid_t gid;     /* real gid of the caller (never 0) */
   char *name;    /* login name */
   char *gecos;   /* passwd gecos field ("" when empty) */
   char *home;    /* home directory */
   char *shell;   /* login shell */
   gid_t *groups; /* supplementary groups from getgrouplist, gid 0 replaced by gid */
   int n_groups;  /* number of groups */
};

/** Function prototypes **/

void udi_user_lookup(struct udi_user *u, const struct udi_config *c, uid_t uid, gid_t gid);
void udi_become_root(void);
void udi_fs_as_user(const struct udi_user *u);
void udi_fs_as_root(void);
void udi_drop_privileges(const struct udi_user *u);
void udi_drop_to_user_nocheck_caps(const struct udi_user *u);

#endif
