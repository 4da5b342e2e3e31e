/* udi_mount.c -- root construction and teardown (see udi_mount.h).

   Preconditions for everything here: the caller is fully root (udi_become_root) and, for shifter, already in a
   private mount namespace whose root is MS_SLAVE|MS_REC, so nothing built here leaks to the host.

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/loop.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "udi_env.h"
#include "udi_image.h"
#include "udi_misc.h"
#include "udi_mount.h"

/** Macros **/

#define MAX_MOUNTS 4096

/** Types **/

/* Devices a user volume may be mounted onto (see mount_user_volume). */
struct allowed_devs {
   dev_t dev[3]; /* udiMount tmpfs, image loop mount, host /tmp */
   int n;        /* number of valid entries */
};

/** Globals **/

static struct allowed_devs allowed;
static const char *image_root; /* where bind_image_into_root reads the image: loopMount, or a local: directory */

/** Functions **/

/* mkdir -p for root-controlled paths (udiMount, loopMount, directories inside the fresh tmpfs). */
static void mkdir_p(const char *path, mode_t mode)
{
   char *p = xstrdup(path);
   for (char *s = p + 1; *s; s++) {
      if (*s != '/')
         continue;
      *s = '\0';
      if (mkdir(p, 0755) != 0 && errno != EEXIST)
         Zf(1, "mkdir %s", p);
      *s = '/';
   }
   if (mkdir(p, mode) != 0 && errno != EEXIST)
      Zf(1, "mkdir %s", p);
}

/* Resolve path inside rootfd as if rootfd were "/" (absolute symlinks and ".." cannot leave it), with the caller's
   current fs credentials, and return an O_PATH descriptor (plus `flags`, e.g. O_DIRECTORY), or -1 with errno. */
int udi_resolve_in_root(int rootfd, const char *path, int flags)
{
   struct open_how how;
   memset(&how, 0, sizeof(how));
   how.flags = (unsigned long long)(O_PATH | O_CLOEXEC | flags);
   how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
   while (*path == '/')
      path++;
   return (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof(how));
}

/* Host path of an open descriptor (from /proc/self/fd). */
static char *fd_path(int fd)
{
   char buf[4096];
   ssize_t n = readlink(xasprintf("/proc/self/fd/%d", fd), buf, sizeof(buf) - 1);
   T_(n > 0);
   buf[n] = '\0';
   return xstrdup(buf);
}

/* Bind the tree at srcfd onto dstfd, fd to fd. attr: MOUNT_ATTR_* to set (always at least NOSUID); rec: also bind
   submounts; propagation: MS_PRIVATE or MS_SLAVE. Returns 0 or -1 with errno. */
static int bind_fds(int srcfd, int dstfd, unsigned long long attr, bool rec, unsigned long long propagation)
{
   struct mount_attr ma;
   int tree = open_tree(srcfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0));
   if (tree < 0)
      return -1;
   memset(&ma, 0, sizeof(ma));
   ma.attr_set = attr | MOUNT_ATTR_NOSUID;
   ma.propagation = propagation;
   if (mount_setattr(tree, "", AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0), &ma, sizeof(ma)) != 0 ||
       move_mount(tree, "", dstfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
      int e = errno;
      close(tree);
      errno = e;
      return -1;
   }
   close(tree);
   return 0;
}

/* Bind host path src onto host path dst (both root-controlled). */
static void bind_paths(const char *src, const char *dst, unsigned long long attr, bool rec)
{
   int s = open(src, O_PATH | O_CLOEXEC), d = open(dst, O_PATH | O_CLOEXEC);
   Tf(s >= 0, "open %s", src);
   Tf(d >= 0, "open %s", dst);
   Zf(bind_fds(s, d, attr, rec, MS_PRIVATE), "bind %s onto %s", src, dst);
   close(s);
   close(d);
}

/* Copy a regular file (content, mode without setuid/setgid bits, owner). The source is opened without following a
   final symlink unless follow (host files such as /etc/resolv.conf are often symlinks). */
static int copy_file_ex(const char *src, const char *dst, const struct stat *st, bool follow)
{
   char buf[65536];
   int in = open(src, O_RDONLY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW)), out;
   ssize_t n;
   if (in < 0)
      return -1;
   out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
   if (out < 0) {
      close(in);
      return -1;
   }
   while ((n = read(in, buf, sizeof(buf))) > 0)
      for (ssize_t off = 0; off < n;) {
         ssize_t w = write(out, buf + off, (size_t)(n - off));
         if (w < 0) {
            close(in);
            close(out);
            return -1;
         }
         off += w;
      }
   close(in);
   if (n < 0 || fchown(out, st->st_uid, st->st_gid) != 0 || fchmod(out, st->st_mode & 01777) != 0) {
      close(out);
      return -1;
   }
   return close(out);
}

/* copy_file_ex without following a final symlink (image content). */
static int copy_file(const char *src, const char *dst, const struct stat *st)
{
   return copy_file_ex(src, dst, st, false);
}

/* Recursively copy src into dst (dst created), skipping device nodes, fifos and sockets, and entries already in
   dst (site content wins). Files of UDI_COPY_LIMIT or more are skipped when skip_big. */
/* Recreate the symlink src as dst (same target text); false when src is not a readable link. Never follows it. */
static bool copy_symlink(const char *src, const char *dst)
{
   char buf[4096];
   ssize_t n = readlink(src, buf, sizeof(buf) - 1);
   if (n <= 0)
      return false;
   buf[n] = '\0';
   Zf(symlink(buf, dst), "symlink %s", dst);
   return true;
}

static void copy_tree(const char *src, const char *dst, bool skip_big)
{
   DIR *d = opendir(src);
   struct dirent *e;
   struct stat st;
   if (!d)
      return;
   if (lstat(dst, &st) != 0) {
      Zf(lstat(src, &st), "stat %s", src);
      Zf(mkdir(dst, 0700), "mkdir %s", dst);
      Z_(chown(dst, st.st_uid, st.st_gid));
      Z_(chmod(dst, st.st_mode & 01777));
   }
   while ((e = readdir(d))) {
      char *s, *t;
      struct stat ts;
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
         continue;
      s = xasprintf("%s/%s", src, e->d_name);
      t = xasprintf("%s/%s", dst, e->d_name);
      if (lstat(s, &st) != 0)
         continue;
      if (lstat(t, &ts) == 0) {
         if (S_ISDIR(st.st_mode) && S_ISDIR(ts.st_mode))
            copy_tree(s, t, skip_big);
         continue;
      }
      if (S_ISLNK(st.st_mode)) {
         if (copy_symlink(s, t))
            Z_(lchown(t, st.st_uid, st.st_gid));
      } else if (S_ISREG(st.st_mode)) {
         if (skip_big && st.st_size >= UDI_COPY_LIMIT)
            continue;
         Zf(copy_file(s, t, &st), "copy %s to %s", s, t);
      } else if (S_ISDIR(st.st_mode)) {
         copy_tree(s, t, skip_big);
      }
   }
   closedir(d);
}

/* Run `/bin/sh script` with a fixed environment and cwd; as_user NULL = as root (site hooks), otherwise the child
   drops to the user first. A non-zero status is fatal. */
void udi_run_hook(const char *script, const char *cwd, char *const envp[], const struct udi_user *as_user)
{
   static char *const root_env[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL };
   int status;
   pid_t pid = fork();
   T_(pid >= 0);
   if (pid == 0) {
      if (cwd && chdir(cwd) != 0)
         _exit(126);
      if (as_user)
         udi_drop_to_user_nocheck_caps(as_user);
      execve("/bin/sh", (char *const[]){ "sh", (char *)script, NULL }, envp ? envp : root_env);
      _exit(127);
   }
   T_(waitpid(pid, &status, 0) == pid);
   if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      FATAL(UDI_EX_FAILURE, "hook %s failed (status %d)", script, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* Attach image to a free loop device read-only with autoclear (the device goes away with the last mount) and
   mount it at loopMount read-only, nosuid, nodev. The image is opened here, as root, only after the ACL check. */
static void mount_image_loop(const char *image, const char *loopmount, const char *fstype, bool readonly, uid_t writer)
{
   struct loop_config lc;
   int img = open(image, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW), ctl, loopfd = -1, n;
   char *dev = NULL;
   const char *why;
   struct stat st;
   if (img < 0 && errno == ELOOP)
      FATAL(UDI_EX_UNTRUSTED, "image %s refused: it is a symbolic link", image);
   if (img < 0)
      FATAL(UDI_EX_NOINPUT, "cannot open image %s: %s", image, strerror(errno));
   Z_(fstat(img, &st));
   if (!S_ISREG(st.st_mode))
      FATAL(UDI_EX_NOINPUT, "image %s is not a regular file", image);
   /* Checked on the descriptor the loop device is bound to: what was checked is what is mounted. */
   if ((why = udi_untrusted_reason(&st, false, writer)))
      FATAL(UDI_EX_UNTRUSTED, "image %s refused: it %s (owner uid %lu, mode %04o)", image, why,
            (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777));
   ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
   Tf(ctl >= 0, "open /dev/loop-control (is the loop module loaded?)");
   for (int attempt = 0; attempt < 100; attempt++) {
      n = ioctl(ctl, LOOP_CTL_GET_FREE);
      Tf(n >= 0, "LOOP_CTL_GET_FREE");
      dev = xasprintf("/dev/loop%d", n);
      loopfd = open(dev, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
      if (loopfd < 0 && errno == ENOENT) {
         /* No node in a minimal /dev: create it, the kernel already allocated the device. */
         Zf(mknod(dev, S_IFBLK | 0660, makedev(7, (unsigned)n)), "mknod %s", dev);
         loopfd = open(dev, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
      }
      Tf(loopfd >= 0, "open %s", dev);
      memset(&lc, 0, sizeof(lc));
      lc.fd = (unsigned)img;
      lc.info.lo_flags = LO_FLAGS_AUTOCLEAR | (readonly ? LO_FLAGS_READ_ONLY : 0);
      if (ioctl(loopfd, LOOP_CONFIGURE, &lc) == 0)
         break;
      Tf(errno == EBUSY, "LOOP_CONFIGURE %s", dev);
      close(loopfd); /* another process won the race for this device: ask for the next free one */
      loopfd = -1;
   }
   Tf(loopfd >= 0, "no free loop device");
   close(img);
   close(ctl);
   if (loopmount) {
      if (mount(dev, loopmount, fstype, MS_NOSUID | MS_NODEV | (readonly ? MS_RDONLY : 0), NULL) != 0)
         Zf(1, "mount %s (%s) on %s", image, fstype, loopmount);
      close(loopfd); /* the mount holds the device now; autoclear frees it at unmount */
   }
}

/* Parse /proc/self/mountinfo and return mount points equal to or under any of the prefixes, deepest first. */
static size_t mounts_under(char **out, const char *const *prefixes)
{
   char *text = read_file_text("/proc/self/mountinfo", 64 * 1024 * 1024), *line, *save = NULL;
   size_t n = 0;
   if (!text)
      return 0;
   for (line = strtok_r(text, "\n", &save); line && n < MAX_MOUNTS; line = strtok_r(NULL, "\n", &save)) {
      char *f = line, *mp, *w;
      for (int i = 0; i < 4 && f; i++)
         f = strchr(f + 1, ' ');
      if (!f)
         continue;
      mp = xstrndup(f + 1, strcspn(f + 1, " "));
      for (char *r = w = mp; *r; r++) { /* undo the \040-style octal escapes */
         if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] && r[3]) {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
         } else {
            *w++ = *r;
         }
      }
      *w = '\0';
      for (int p = 0; prefixes[p]; p++) {
         size_t pl = strlen(prefixes[p]);
         if (!strncmp(mp, prefixes[p], pl) && (mp[pl] == '\0' || mp[pl] == '/')) {
            out[n++] = mp;
            break;
         }
      }
   }
   /* Later lines are newer mounts, possibly on top of earlier ones: unmount in reverse mount order. */
   for (size_t i = 0; i < n / 2; i++) {
      char *t = out[i];
      out[i] = out[n - 1 - i];
      out[n - 1 - i] = t;
   }
   return n;
}

/* Unmount everything at or below udiMount and loopMount (in this namespace), newest first, retrying busy mounts
   ten times 0.3 s apart before detaching them lazily. Returns the number of mounts that needed a lazy detach. */
int udi_root_destroy(const struct udi_config *c)
{
   const char *prefixes[] = { c->udiMount, c->loopMount, NULL };
   char *mps[MAX_MOUNTS];
   int lazy = 0;
   for (int round = 0; round < 10; round++) {
      size_t n = mounts_under(mps, prefixes);
      bool busy = false;
      if (n == 0)
         return lazy;
      for (size_t i = 0; i < n; i++)
         if (umount2(mps[i], UMOUNT_NOFOLLOW) != 0 && errno == EBUSY)
            busy = true;
      if (busy) {
         struct timespec ts = { 0, 300 * 1000 * 1000 };
         nanosleep(&ts, NULL);
      }
   }
   {
      size_t n = mounts_under(mps, prefixes);
      for (size_t i = 0; i < n; i++)
         if (umount2(mps[i], MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
            lazy++;
   }
   return lazy;
}

/* `{"identifier":…,"user":…,"volMap":…,"modules":"a,b,"}`: the exact upstream format, so roots built by either
   runtime are recognised. */
char *udi_root_signature(const char *id, const char *user, const char *volmap_sig, const struct strv *modules)
{
   char *mods = xstrdup("");
   for (size_t i = 0; modules && i < modules->n; i++)
      mods = xasprintf("%s%s,", mods, modules->v[i]);
   return xasprintf("{\"identifier\":%s,\"user\":%s,\"volMap\":%s,\"modules\":%s}", json_quote(id), json_quote(user),
                    json_quote(volmap_sig), json_quote(mods));
}

/* Whether udiMount is a mount point (in this namespace) holding a root whose var/shifterConfig.json equals
   signature exactly. */
bool udi_root_reusable(const struct udi_config *c, const char *signature)
{
   struct stat a, b;
   char *parent = xstrdup(c->udiMount), *slash = strrchr(parent, '/'), *text;
   if (slash == parent)
      slash[1] = '\0';
   else
      *slash = '\0';
   if (stat(c->udiMount, &a) != 0 || stat(parent, &b) != 0 || a.st_dev == b.st_dev)
      return false;
   text = read_file_text(xasprintf("%s/var/shifterConfig.json", c->udiMount), 65536);
   if (!text)
      return false;
   return !strcmp(str_trim(text), signature);
}

/* Write a root-owned file atomically inside the new root; fatal on failure. */
static void write_text(const char *path, const char *text, mode_t mode)
{
   Zf(write_file_atomic(path, text, mode), "write %s", path);
   Z_(chown(path, 0, 0));
}

/* One passwd(5) line for pw. */
static char *passwd_line(const struct passwd *pw)
{
   return xasprintf("%s:x:%u:%u:%s:%s:%s\n", pw->pw_name, pw->pw_uid, pw->pw_gid, pw->pw_gecos ? pw->pw_gecos : "",
                    pw->pw_dir, pw->pw_shell);
}

/* Keep every group line; a group lists the user as its only member when the source listed the user (up to
   maxGroupCount such groups), and no member otherwise, so other users' memberships do not leak. */
static char *filter_groups(const char *text, const struct udi_user *u, int max_groups)
{
   char *copy = xstrdup(text), *line, *save = NULL, *out = xstrdup("");
   int listed = 0;
   for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
      char *f[4] = { 0 }, *p = line;
      int nf = 0;
      bool member = false;
      while (nf < 3 && (f[nf] = p) && (p = strchr(p, ':')))
         *p++ = '\0', nf++;
      if (nf < 3 || !p)
         continue;
      f[3] = p;
      {
         struct strv m = { 0 };
         strv_init(&m);
         strv_split(&m, f[3], ",");
         member = strv_contains(&m, u->name);
      }
      if (member && (max_groups <= 0 || listed < max_groups)) {
         out = xasprintf("%s%s:x:%s:%s\n", out, f[0], f[2], u->name);
         listed++;
      } else {
         out = xasprintf("%s%s:x:%s:\n", out, f[0], f[2]);
      }
   }
   return out;
}

/* Generate or copy passwd/group/nsswitch.conf/shadow into etc (cwd = udiMount). */
static void populate_etc(const struct udi_root_request *r)
{
   const struct udi_config *c = r->config;
   const struct udi_user *u = r->user;
   char *group_text;
   struct stat st;
   Tf(lstat("etc/passwd", &st) != 0 && lstat("etc/group", &st) != 0 && lstat("etc/nsswitch.conf", &st) != 0,
      "etc/passwd, etc/group or etc/nsswitch.conf already exists in the new root");
   if (!c->populateEtcDynamically) {
      copy_tree(c->etcPath, "etc", false);
      group_text = read_file_text("etc/group", 64 * 1024 * 1024);
      Tf(group_text != NULL, "site etcPath %s has no group file", c->etcPath);
      Tf(lstat("etc/passwd", &st) == 0, "site etcPath %s has no passwd file", c->etcPath);
   } else {
      char *pw_text = xstrdup("");
      struct passwd *pw = getpwuid(u->uid);
      pw_text = pw ? passwd_line(pw)
                   : xasprintf("%s:x:%u:%u:%s:%s:%s\n", u->name, u->uid, u->gid, u->gecos, u->home, u->shell);
      for (size_t i = 0; i < c->usersToImport.n; i++) {
         struct passwd *x = getpwnam(c->usersToImport.v[i]);
         if (x && x->pw_uid != u->uid)
            pw_text = xasprintf("%s%s", pw_text, passwd_line(x));
      }
      write_text("etc/passwd", pw_text, 0644);
      group_text = xstrdup("");
      for (int i = 0; i < u->n_groups; i++) {
         struct group *g = getgrgid(u->groups[i]);
         const char *name = g ? g->gr_name : xasprintf("g%u", u->groups[i]);
         if (strstr(group_text, xasprintf(":x:%u:", u->groups[i])))
            continue;
         group_text =
            xasprintf("%s%s:x:%u:%s\n", group_text, name, u->groups[i], u->groups[i] == u->gid ? "" : u->name);
      }
      write_text("etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n", 0644);
      write_text("etc/host.conf", "multi on\n", 0644);
   }
   unlink("etc/group");
   write_text("etc/group", filter_groups(group_text, u, c->maxGroupCount), 0644);
   if (lstat("etc/nsswitch.conf", &st) != 0)
      write_text("etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n", 0644);
   if (lstat("etc/shadow", &st) != 0)
      write_text("etc/shadow", "", 0600);
   Z_(chown("etc/passwd", 0, 0));
   Z_(chmod("etc/passwd", 0644));
}

/* Site and module bind mounts (host paths, trusted). A missing target directory is created inside the tmpfs. */
static void mount_site_volumes(const struct udi_root_request *r, const char *spec)
{
   struct udi_volmap map = { 0 };
   int rc;
   if (!spec || !*spec)
      return;
   rc = udi_volume_parse(&map, spec, true);
   if (rc)
      FATAL(UDI_EX_CONFIG, "siteFs \"%s\": %s", spec, udi_volume_strerror(rc));
   for (size_t i = 0; i < map.n; i++) {
      const struct udi_volume *v = &map.v[i];
      char *dst = xasprintf("%s%s", r->config->udiMount, v->to);
      int s = open(v->from, O_PATH | O_CLOEXEC | O_DIRECTORY), d;
      unsigned long long prop = MS_PRIVATE;
      if (s < 0) {
         WARN("siteFs source %s: %s; skipped", v->from, strerror(errno));
         continue;
      }
      mkdir_p(dst, 0755);
      d = open(dst, O_PATH | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW);
      Tf(d >= 0, "open %s", dst);
      if ((v->flags & VOL_SLAVE) || (!(v->flags & VOL_PRIVATE) && r->config->mountPropagationStyle &&
                                     !strcmp(r->config->mountPropagationStyle, "slave")))
         prop = MS_SLAVE;
      Zf(bind_fds(s, d, MOUNT_ATTR_NODEV | ((v->flags & VOL_RO) ? MOUNT_ATTR_RDONLY : 0), v->flags & VOL_REC, prop),
         "siteFs bind %s onto %s", v->from, dst);
      close(s);
      close(d);
   }
}

/* For each entry of the image's `sub` directory absent from the new root: symlinks and small files are copied,
   directories and big files are bound read-only. With copy_dirs (/etc) directories are copied too and big files
   skipped. */
static void bind_image_into_root(const struct udi_root_request *r, const char *sub, bool copy_dirs)
{
   const char *lm = image_root, *um = r->config->udiMount;
   char *src_dir = xasprintf("%s%s", lm, sub), *dst_dir = xasprintf("%s%s", um, sub);
   DIR *d;
   struct dirent *e;
   struct stat sd, ums, lms;
   /* A local: root may hold udiMount and loopMount themselves (`local /`): they are left out, as upstream does. */
   Z_(stat(um, &ums));
   Z_(stat(r->config->loopMount, &lms));
   /* The image's own /var, /opt or /etc may be a symlink (to "/", say); following it would walk the host. Such an
      entry is left out rather than resolved. */
   if (lstat(src_dir, &sd) != 0 || !S_ISDIR(sd.st_mode))
      return;
   d = opendir(src_dir);
   if (!d)
      return;
   while ((e = readdir(d))) {
      char *s, *t;
      struct stat st, ts;
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
         continue;
      s = xasprintf("%s/%s", !strcmp(sub, "/") ? lm : src_dir, e->d_name);
      t = xasprintf("%s/%s", !strcmp(sub, "/") ? um : dst_dir, e->d_name);
      if (lstat(t, &ts) == 0 || lstat(s, &st) != 0)
         continue;
      if ((st.st_dev == ums.st_dev && st.st_ino == ums.st_ino) || (st.st_dev == lms.st_dev && st.st_ino == lms.st_ino))
         continue;
      if (S_ISLNK(st.st_mode)) {
         copy_symlink(s, t);
      } else if (S_ISREG(st.st_mode)) {
         if (st.st_size < UDI_COPY_LIMIT) {
            Zf(copy_file(s, t, &st), "copy %s", s);
         } else if (!copy_dirs) {
            int fd = open(t, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            Tf(fd >= 0, "create %s", t);
            close(fd);
            bind_paths(s, t, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV, false);
         }
      } else if (S_ISDIR(st.st_mode)) {
         if (copy_dirs) {
            copy_tree(s, t, true);
         } else {
            Zf(mkdir(t, 0755), "mkdir %s", t);
            bind_paths(s, t, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV, false);
         }
      }
   }
   closedir(d);
}

/* Whether a user volume may be mounted on a directory of device dev. */
static bool dev_allowed(dev_t dev)
{
   for (int i = 0; i < allowed.n; i++)
      if (allowed.dev[i] == dev)
         return true;
   return false;
}

/* Make sure `to` exists inside the root as a directory; missing components may be created only where their parent
   is on the root's tmpfs. Returns an O_PATH descriptor of the directory, resolved in root, or -1. */
static int ensure_target(int rootfd, const char *to)
{
   int fd = udi_resolve_in_root(rootfd, to, O_DIRECTORY);
   char *parent, *slash, *base;
   int pfd;
   struct stat st;
   if (fd >= 0 || errno != ENOENT)
      return fd;
   parent = xstrdup(to);
   slash = strrchr(parent, '/');
   if (!slash || !slash[1])
      return -1;
   base = slash + 1;
   *slash = '\0';
   pfd = ensure_target(rootfd, *parent ? parent : "/");
   if (pfd < 0)
      return -1;
   if (fstat(pfd, &st) != 0 || st.st_dev != allowed.dev[0]) {
      errno = EPERM;
      return -1;
   }
   {
      int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd < 0 || (mkdirat(dfd, base, 0755) != 0 && errno != EEXIST)) {
         close(pfd);
         return -1;
      }
      close(dfd);
   }
   close(pfd);
   return udi_resolve_in_root(rootfd, to, O_DIRECTORY);
}

/* A perNodeCache volume: a sparse file in perNodeCachePath, formatted, loop-mounted read-write at the target and
   owned by the user; the backing file is unlinked at once so its space is freed when the mount goes away. */
static void mount_cache_volume(const struct udi_root_request *r, const struct udi_volume *v, int tofd)
{
   const struct udi_config *c = r->config;
   char host[256] = "node", *file, *mkfs = c->mkfsXfsPath ? c->mkfsXfsPath : "/usr/sbin/mkfs.xfs", *dev;
   const char *dir;
   int fd, status, fsfd, mnt, lc, loopfd, n;
   struct loop_config cfg;
   pid_t pid;
   bool fs_ok = c->perNodeCacheAllowedFsType.n == 0 ? !strcmp(v->cache_fs, "xfs")
                                                    : strv_contains(&c->perNodeCacheAllowedFsType, v->cache_fs);
   if (!fs_ok)
      FATAL(UDI_EX_DATAERR, "perNodeCache filesystem %s is not allowed", v->cache_fs);
   if (c->perNodeCacheSizeLimit && v->cache_size > c->perNodeCacheSizeLimit)
      FATAL(UDI_EX_DATAERR, "perNodeCache size %llu exceeds the site limit %llu", v->cache_size,
            c->perNodeCacheSizeLimit);
   gethostname(host, sizeof(host) - 1);
   dir = c->perNodeCachePath ? c->perNodeCachePath : "/tmp";
   /* The backing file never has a name (O_TMPFILE), or loses it at once (file systems without O_TMPFILE): a
      setup that fails at any later step, or is killed, leaves nothing in the directory. mkfs reaches the file
      through /proc/self/fd. */
   fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
   if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
      file = xasprintf("%s/perNodeCache_uid%u_gid%u_%s.%s.XXXXXX", dir, r->user->uid, r->user->gid, host, v->cache_fs);
      fd = mkostemp(file, O_CLOEXEC);
      Tf(fd >= 0, "create a perNodeCache file in %s", dir);
      Zf(unlink(file), "unlink %s", file);
   }
   Tf(fd >= 0, "create a perNodeCache file in %s", dir);
   if (ftruncate(fd, (off_t)v->cache_size) != 0)
      FATAL(UDI_EX_OSERR, "cannot size a perNodeCache file of %llu bytes in %s: %s", v->cache_size, dir,
            strerror(errno));
   file = xasprintf("/proc/self/fd/%d", fd);
   pid = fork();
   T_(pid >= 0);
   if (pid == 0) {
      char *const env[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 1);
      fcntl(fd, F_SETFD, 0); /* mkfs opens the file by its /proc/self/fd name */
      execve(mkfs, (char *const[]){ mkfs, "-q", "-f", file, NULL }, env);
      _exit(127);
   }
   T_(waitpid(pid, &status, 0) == pid);
   if (!WIFEXITED(status) || WEXITSTATUS(status))
      FATAL(UDI_EX_OSERR, "%s failed on a perNodeCache file in %s (status %d)", mkfs, dir,
            WIFEXITED(status) ? WEXITSTATUS(status) : -1);
   lc = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
   T_(lc >= 0);
   for (;;) {
      n = ioctl(lc, LOOP_CTL_GET_FREE);
      T_(n >= 0);
      dev = xasprintf("/dev/loop%d", n);
      loopfd = open(dev, O_RDWR | O_CLOEXEC);
      Tf(loopfd >= 0, "open %s", dev);
      memset(&cfg, 0, sizeof(cfg));
      cfg.fd = (unsigned)fd;
      cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
      if (ioctl(loopfd, LOOP_CONFIGURE, &cfg) == 0)
         break;
      Tf(errno == EBUSY, "LOOP_CONFIGURE %s", dev);
      close(loopfd);
   }
   close(fd);
   fsfd = fsopen(v->cache_fs, FSOPEN_CLOEXEC);
   Tf(fsfd >= 0, "fsopen %s", v->cache_fs);
   Z_(fsconfig(fsfd, FSCONFIG_SET_STRING, "source", dev, 0));
   Zf(fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0), "mount %s perNodeCache", v->cache_fs);
   mnt = fsmount(fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
   T_(mnt >= 0);
   Z_(fchownat(mnt, "", r->user->uid, r->user->gid, AT_EMPTY_PATH));
   Z_(move_mount(mnt, "", tofd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
   close(mnt);
   close(fsfd);
   close(loopfd);
}

/* One user volume. The source is resolved inside the container view with the user's file-system credentials (so
   only paths the user can already reach inside the container can be bound, and symlinks cannot point outside); the
   target is resolved in the root as root, must stay inside it, pass validation again on its resolved path, and lie
   on an approved device (the root tmpfs, the image, host /tmp), which also forbids nesting volumes. */
static void mount_user_volume(const struct udi_root_request *r, int rootfd, const struct udi_volume *v)
{
   const char *um = r->config->udiMount;
   size_t ul = strlen(um);
   int from = -1, to, rc;
   char *from_path, *to_path;
   struct stat st;
   if (!(v->flags & VOL_PERNODECACHE)) {
      udi_fs_as_user(r->user);
      from = udi_resolve_in_root(rootfd, v->from, O_DIRECTORY);
      rc = errno;
      udi_fs_as_root();
      if (from < 0)
         FATAL(UDI_EX_DATAERR, "volume source %s is not a directory the user can reach in the container: %s", v->from,
               strerror(rc));
      from_path = fd_path(from);
      if (strncmp(from_path, um, ul) || (from_path[ul] && from_path[ul] != '/'))
         FATAL(UDI_EX_DATAERR, "volume source %s resolves outside the container", v->from);
   }
   to = ensure_target(rootfd, v->to);
   if (to < 0)
      FATAL(UDI_EX_DATAERR, "volume target %s: cannot be created or is not a directory: %s", v->to, strerror(errno));
   to_path = fd_path(to);
   if (strncmp(to_path, um, ul) || (to_path[ul] && to_path[ul] != '/'))
      FATAL(UDI_EX_DATAERR, "volume target %s resolves outside the container", v->to);
   rc = udi_volume_validate_user(from >= 0 ? from_path + ul : "/", to_path[ul] ? to_path + ul : "/");
   if (rc)
      FATAL(UDI_EX_DATAERR, "volume %s:%s (resolved to %s): %s", v->from, v->to, to_path + ul, udi_volume_strerror(rc));
   Z_(fstat(to, &st));
   if (!dev_allowed(st.st_dev))
      FATAL(UDI_EX_DATAERR, "volume target %s is not on an approved device", v->to);
   if (v->flags & VOL_PERNODECACHE) {
      mount_cache_volume(r, v, to);
   } else {
      Zf(bind_fds(from, to, MOUNT_ATTR_NODEV | ((v->flags & VOL_RO) ? MOUNT_ATTR_RDONLY : 0), false, MS_PRIVATE),
         "bind volume %s onto %s", v->from, v->to);
      close(from);
   }
   close(to);
}

/* Build the whole root at udiMount (see udi_mount.h). Preconditions: fully root; for shifter, in a private mount
   namespace with / MS_SLAVE|MS_REC; udiMount and loopMount free (call udi_root_destroy first). */
void udi_root_build(const struct udi_root_request *r)
{
   const struct udi_config *c = r->config;
   const char *um = c->udiMount;
   struct stat st;
   int rootfd;
   static const char *dirs[] = { "etc",
                                 "etc/udiImage",
                                 "opt",
                                 "opt/udiImage",
                                 "opt/udiImage/modules",
                                 "var",
                                 "var/spool",
                                 "var/run",
                                 "var/tmp",
                                 "proc",
                                 "sys",
                                 "dev",
                                 "tmp",
                                 NULL };

   mkdir_p(um, 0755);
   mkdir_p(c->loopMount, 0755);
   image_root = c->loopMount;
   if (r->local_root) {
      /* A local: root is a path the user names: it is opened with the user's file-system credentials, so only a
         directory the user can reach becomes the image (never, say, a root-only directory through a symlink). Its
         entries are then read through that descriptor, as upstream binds them straight from the directory: no
         copy of the host's mount tree is made (setupRoot's `local /` runs in the global namespace). */
      int src, e;
      if (!c->allowLocalChroot)
         FATAL(UDI_EX_NOPERM, "local: images are not allowed on this system");
      udi_fs_as_user(r->user);
      src = open(r->image_file, O_PATH | O_DIRECTORY | O_CLOEXEC);
      e = errno;
      udi_fs_as_root();
      if (src < 0)
         FATAL(UDI_EX_NOINPUT, "local image %s: %s", r->image_file, strerror(e));
      image_root = xasprintf("/proc/self/fd/%d", src); /* kept open until the process ends */
   } else {
      mount_image_loop(r->image_file, c->loopMount, "squashfs", true, udi_image_writer_or_die(c->imageWriter));
   }
   PHASE("loop");
   Zf(mount(c->rootfsType, um, c->rootfsType, MS_NOSUID | MS_NODEV, "mode=755"), "mount %s on %s", c->rootfsType, um);
   Z_(mount(NULL, um, NULL, MS_PRIVATE | MS_REC, NULL));
   Z_(chmod(um, 0755));
   Zf(chdir(um), "chdir %s", um);
   Z_(stat(um, &st));
   allowed.dev[0] = st.st_dev;
   Z_(stat(image_root, &st));
   allowed.dev[1] = st.st_dev;
   Z_(stat("/tmp", &st));
   allowed.dev[2] = st.st_dev;
   allowed.n = 3;

   /* Site modifications: directories, hooks, site binds, generated /etc. */
   for (int i = 0; dirs[i]; i++)
      Zf(mkdir(dirs[i], 0755) && errno != EEXIST, "mkdir %s", dirs[i]);
   Z_(mkdir("var/empty", 0700) && errno != EEXIST);
   Z_(chmod("tmp", 01777));
   if (c->sitePreMountHook)
      udi_run_hook(c->sitePreMountHook, um, NULL, NULL);
   mount_site_volumes(r, c->siteFs);
   if (c->sitePostMountHook)
      udi_run_hook(c->sitePostMountHook, um, NULL, NULL);
   for (size_t i = 0; r->modules && i < r->modules->n; i++) {
      struct udi_module *m = udi_config_module(c, r->modules->v[i]);
      mount_site_volumes(r, m->siteFs);
   }
   Z_(chdir(um));
   Z_(symlink("/proc/mounts", "etc/mtab"));
   if (stat("/etc/hosts", &st) == 0 && S_ISREG(st.st_mode))
      Z_(copy_file_ex("/etc/hosts", "etc/hosts", &st, true));
   if (stat("/etc/resolv.conf", &st) == 0 && S_ISREG(st.st_mode))
      Z_(copy_file_ex("/etc/resolv.conf", "etc/resolv.conf", &st, true));
   for (const char *const *f = (const char *const[]){ "etc/hosts", "etc/resolv.conf", NULL }; *f; f++)
      if (lstat(*f, &st) == 0)
         Z_(chmod(*f, 0644));
   PHASE("site");
   populate_etc(r);
   PHASE("etc");
   if (c->optUdiImage)
      copy_tree(c->optUdiImage, "opt/udiImage", false);
   for (size_t i = 0; r->modules && i < r->modules->n; i++) {
      struct udi_module *m = udi_config_module(c, r->modules->v[i]);
      if (m->copyPath)
         copy_tree(m->copyPath, xasprintf("opt/udiImage/modules/%s", m->name), false);
   }
   if (r->hostsfile_spec) {
      struct strv hosts = { 0 };
      char *out = xstrdup("");
      strv_split(&hosts, r->hostsfile_spec, " \t");
      for (size_t i = 0; i < hosts.n; i++) {
         char *slash = strchr(hosts.v[i], '/');
         long count = slash ? strtol(slash + 1, NULL, 10) : 1;
         if (slash)
            *slash = '\0';
         for (long k = 0; k < count && k < 100000; k++)
            out = xasprintf("%s%s\n", out, hosts.v[i]);
      }
      write_text("var/hostsfile", out, 0644);
   }
   for (size_t i = 0; r->modules && i < r->modules->n; i++) {
      struct udi_module *m = udi_config_module(c, r->modules->v[i]);
      if (m->roothook)
         udi_run_hook(m->roothook, um, NULL, NULL);
   }

   /* Kernel file systems and shared scratch. */
   Z_(mount("proc", "proc", "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL));
   bind_paths("/sys", "sys", MOUNT_ATTR_NODEV, true);
   bind_paths("/dev", "dev", 0, true); /* device nodes must work: the only bind without nodev */
   bind_paths("/tmp", "tmp", MOUNT_ATTR_NODEV, false);
   if (stat("/var/tmp", &st) == 0)
      bind_paths("/var/tmp", "var/tmp", MOUNT_ATTR_NODEV, false);

   PHASE("kernelfs");
   /* The image itself: top level, then /var and /opt, then /etc copied. */
   bind_image_into_root(r, "/", false);
   bind_image_into_root(r, "/var", false);
   bind_image_into_root(r, "/opt", false);
   bind_image_into_root(r, "/etc", true);

   PHASE("image-bind");
   rootfd = open(um, O_PATH | O_DIRECTORY | O_CLOEXEC);
   T_(rootfd >= 0);
   for (size_t i = 0; r->user_volumes && i < r->user_volumes->n; i++)
      mount_user_volume(r, rootfd, &r->user_volumes->v[i]);
   close(rootfd);

   PHASE("volumes");
   write_text("var/shifterConfig.json", r->signature, 0644);
   if (!c->mountUdiRootWritable)
      Zf(mount(NULL, um, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_RDONLY, NULL), "remount %s read-only", um);
}
