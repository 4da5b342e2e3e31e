/* udi_privs.c -- user lookup and privilege transitions (see udi_privs.h).

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "udi_misc.h"
#include "udi_privs.h"

/** Functions **/

/* Find uid in a passwd-format file (etcPath/passwd when allowLibcPwdCalls=0, so that a broken NSS on a compute node
   cannot hang or mislead the runtime). Returns true and fills u on success. */
static bool lookup_in_file(struct udi_user *u, const char *path, uid_t uid)
{
   char *text = read_file_text(path, 64 * 1024 * 1024), *line, *save = NULL;
   if (!text)
      return false;
   for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
      struct strv f = { 0 };
      char *p = line, *colon;
      strv_init(&f);
      /* strtok would merge empty fields (empty gecos): split by hand. */
      while ((colon = strchr(p, ':'))) {
         strv_push_own(&f, xstrndup(p, (size_t)(colon - p)));
         p = colon + 1;
      }
      strv_push(&f, p);
      if (f.n == 7 && strtoul(f.v[2], NULL, 10) == uid && f.v[2][0]) {
         u->name = f.v[0];
         u->gecos = f.v[4];
         u->home = f.v[5];
         u->shell = f.v[6];
         return true;
      }
   }
   return false;
}

/* The primary gid plus every group of a group-format file that lists name as a member (the site's etcPath/group
   when allowLibcPwdCalls=0, like upstream). Returns the count; refuses beyond UDI_MAX_GROUPS. */
static int groups_from_file(gid_t *gl, const char *path, const char *name, gid_t gid)
{
   char *text = read_file_text(path, 64 * 1024 * 1024), *line, *save = NULL;
   int n = 0;
   gl[n++] = gid;
   if (!text)
      return n;
   for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
      char *f[4], *p = line;
      struct strv members = { 0 };
      int nf = 0;
      for (; nf < 3 && p; nf++) {
         f[nf] = p;
         p = strchr(p, ':');
         if (p)
            *p++ = '\0';
      }
      if (nf < 3 || !p)
         continue;
      f[3] = p;
      strv_init(&members);
      strv_split(&members, f[3], ",");
      if (strv_contains(&members, name)) {
         gid_t g = (gid_t)strtoul(f[2], NULL, 10);
         if (g == gid)
            continue;
         if (n >= UDI_MAX_GROUPS)
            FATAL(UDI_EX_NOPERM, "user %s is in more than %d groups", name, UDI_MAX_GROUPS);
         gl[n++] = g;
      }
   }
   return n;
}

/* Resolve the caller. Preconditions: config loaded. Refuses (UDI_EX_NOUSER) when uid or gid is 0, the user is
   unknown, or its name is "root"; refuses (UDI_EX_NOPERM) beyond UDI_MAX_GROUPS groups. */
void udi_user_lookup(struct udi_user *u, const struct udi_config *c, uid_t uid, gid_t gid)
{
   int ng = UDI_MAX_GROUPS + 1;
   gid_t *gl = xcalloc((size_t)ng, sizeof(gid_t));
   memset(u, 0, sizeof(*u));
   if (uid == 0 || gid == 0)
      FATAL(UDI_EX_NOUSER, "refusing to run a container as root (uid %u gid %u)", uid, gid);
   u->uid = uid;
   u->gid = gid;
   if (c->allowLibcPwdCalls || c->populateEtcDynamically || !c->etcPath) {
      struct passwd *pw = getpwuid(uid);
      if (pw) {
         u->name = xstrdup(pw->pw_name);
         u->gecos = xstrdup(pw->pw_gecos ? pw->pw_gecos : "");
         u->home = xstrdup(pw->pw_dir);
         u->shell = xstrdup(pw->pw_shell);
      }
   } else {
      lookup_in_file(u, xasprintf("%s/passwd", c->etcPath), uid);
   }
   if (!u->name || !*u->name || !strcmp(u->name, "root"))
      FATAL(UDI_EX_NOUSER, "failed to look up user %u, or attempted to run as root", uid);
   if (c->allowLibcPwdCalls || c->populateEtcDynamically || !c->etcPath) {
      if (getgrouplist(u->name, gid, gl, &ng) < 0)
         FATAL(UDI_EX_NOPERM, "user %s is in more than %d groups", u->name, UDI_MAX_GROUPS);
   } else {
      ng = groups_from_file(gl, xasprintf("%s/group", c->etcPath), u->name, gid);
   }
   for (int i = 0; i < ng; i++)
      if (gl[i] == 0)
         gl[i] = gid; /* never hand gid 0 to the container, even if the group database says so */
   u->groups = gl;
   u->n_groups = ng;
}

/* Become fully root (all of ruid/euid/suid and gids 0, groups {0}) for building the root. Precondition: euid 0. */
void udi_become_root(void)
{
   gid_t zero = 0;
   Z_(setgroups(1, &zero)); // PRIV: groups {0}
   Z_(setresgid(0, 0, 0));  // PRIV: gid 0/0/0
   Z_(setresuid(0, 0, 0));  // PRIV: uid 0/0/0
}

/* File-system checks as the user (setfsuid/setfsgid plus the user's groups) while keeping euid 0, so that paths the
   user names (--env-file, volume sources) are resolved with the user's permissions. Undo with udi_fs_as_root. */
void udi_fs_as_user(const struct udi_user *u)
{
   Z_(setgroups((size_t)u->n_groups, u->groups)); // PRIV: groups = user's
   setfsgid(u->gid);                              // PRIV: fsgid = user
   setfsuid(u->uid);                              // PRIV: fsuid = user
   T_((uid_t)setfsuid((uid_t)-1) == u->uid);
   T_((gid_t)setfsgid((gid_t)-1) == u->gid);
}

/* Undo udi_fs_as_user: file-system credentials and groups back to root. */
void udi_fs_as_root(void)
{
   gid_t zero = 0;
   setfsuid(0); // PRIV: fsuid = 0
   setfsgid(0); // PRIV: fsgid = 0
   T_(setfsuid((uid_t)-1) == 0);
   Z_(setgroups(1, &zero)); // PRIV: groups {0}
}

/* Drop for good to the user: empty the capability bounding set, set groups/gid/uid, verify root cannot be
   regained and no capability is left, set PR_SET_NO_NEW_PRIVS. Any failure aborts (UDI_EX_NOPERM): a command must
   never run with leftover privilege. Precondition: running as root (euid 0). */
void udi_drop_privileges(const struct udi_user *u)
{
   char *txt = read_file_text("/proc/sys/kernel/cap_last_cap", 64);
   int last = txt ? atoi(txt) : 63;
   struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
   struct __user_cap_data_struct data[2];
   uid_t r, e, s;
   gid_t rg, eg, sg;
   for (int cap = 0; cap <= last; cap++)
      if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
         FATAL(UDI_EX_NOPERM, "cannot drop capability %d from the bounding set: %s", cap, strerror(errno));
   udi_drop_to_user_nocheck_caps(u);
   if (setresuid(0, 0, 0) == 0 || setuid(0) == 0 || setresgid(0, 0, 0) == 0)
      FATAL(UDI_EX_NOPERM, "root privileges could be regained after dropping them; aborting");
   T_(getresuid(&r, &e, &s) == 0 && getresgid(&rg, &eg, &sg) == 0);
   if (r != u->uid || e != u->uid || s != u->uid || rg != u->gid || eg != u->gid || sg != u->gid)
      FATAL(UDI_EX_NOPERM, "credentials are not the user's after the drop; aborting");
   Z_(syscall(SYS_capget, &hdr, data));
   if (data[0].effective || data[0].permitted || data[0].inheritable || data[1].effective || data[1].permitted ||
       data[1].inheritable)
      FATAL(UDI_EX_NOPERM, "capabilities left after the drop; aborting");
   for (int cap = 0; cap <= last; cap++)
      if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
         FATAL(UDI_EX_NOPERM, "capability %d still in the bounding set; aborting", cap);
   if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
      FATAL(UDI_EX_NOPERM, "cannot set no_new_privs: %s", strerror(errno));
}

/* The uid/gid part of the drop, also used by the gateway-lookup child (which keeps no capability either: a
   uid 0 → non-zero transition clears permitted/effective sets). */
void udi_drop_to_user_nocheck_caps(const struct udi_user *u)
{
   if (setgroups((size_t)u->n_groups, u->groups) != 0) // PRIV: groups = user's
      FATAL(UDI_EX_NOPERM, "setgroups: %s", strerror(errno));
   if (setresgid(u->gid, u->gid, u->gid) != 0) // PRIV: gid = user/user/user
      FATAL(UDI_EX_NOPERM, "setresgid: %s", strerror(errno));
   if (setresuid(u->uid, u->uid, u->uid) != 0) // PRIV: uid = user/user/user
      FATAL(UDI_EX_NOPERM, "setresuid: %s", strerror(errno));
   if (geteuid() != u->uid || getuid() != u->uid || getegid() != u->gid)
      FATAL(UDI_EX_NOPERM, "privilege drop did not take effect");
}
