/* setup_root.c -- setupRoot: build the container root once per node per job in the global mount namespace (run as
   root by the workload manager's prolog), so later `shifter` calls with the same image, user, volumes and modules
   reuse it through var/shifterConfig.json.

   Usage: setupRoot [-V] [-j JOBID] [-v VOLMAP] [-s SSHPUBKEY] -u USER -U UID -G GID [-N "host/n …"] [-m MODULES]
                    TYPE ID
   TYPE is `id` (the prolog resolves tags at submit time) or `local` with a host directory as ID: `local /` is the
   CCM mode of upstream's Slurm plugin (the host's own tree as the image, with the site's /etc, mounts and modules),
   allowed only with allowLocalChroot=1; the directory is opened as the user. -s is accepted and refused: the
   per-user sshd is not part of this runtime. With -j the root is job JOBID's own (udi_job.h), so jobs sharing a
   node each get theirs and `unsetupRoot -j JOBID` removes only that one; without -j it is the node's udiMount.

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "udi_config.h"
#include "udi_image.h"
#include "udi_job.h"
#include "udi_misc.h"
#include "udi_mount.h"
#include "udi_privs.h"
#include "udi_volume.h"

/** Functions **/

/* Entry point. Preconditions: run by root (real and effective uid 0) from the prolog; exits non-zero on any
   refusal, leaving nothing mounted it did not finish (a failed build exits before shifterConfig.json is written). */
int main(int argc, char **argv)
{
   struct udi_config cfg, base;
   struct udi_user user;
   struct udi_image_ref ref;
   struct udi_meta meta;
   struct udi_volmap vols = { 0 };
   struct strv modules = { 0 };
   char *volspec = NULL, *username = NULL, *nodes = NULL, *modspec = NULL, *meta_text, err[512], *sig, *image_file;
   bool local_root;
   long uid = -1, gid = -1;
   unsigned long job = 0;
   int c;

   udi_progname = "setupRoot";
   openlog("setupRoot", LOG_PID, LOG_AUTHPRIV);
   {
      struct strv a = { 0 };
      strv_init(&a);
      for (int i = 0; i < argc; i++)
         strv_push(&a, argv[i]);
      syslog(LOG_INFO, "uid=%u argv=%s", getuid(), strv_join(&a, " "));
   }
   if (getuid() != 0 || geteuid() != 0)
      FATAL(UDI_EX_NOPERM, "must be run by root");
   umask(022);
   while ((c = getopt(argc, argv, "+Vj:v:s:u:U:G:N:m:")) != -1) {
      switch (c) {
      case 'V': udi_verbose = 1; break;
      case 'j':
         if (udi_parse_job_id(optarg, &job))
            FATAL(UDI_EX_USAGE, "invalid job id \"%s\"", optarg);
         break;
      case 'v': volspec = optarg; break;
      case 's': FATAL(UDI_EX_USAGE, "-s (per-user sshd) is not supported by this runtime");
      case 'u': username = optarg; break;
      case 'U': uid = strtol(optarg, NULL, 10); break;
      case 'G': gid = strtol(optarg, NULL, 10); break;
      case 'N': nodes = optarg; break;
      case 'm': modspec = optarg; break;
      default:
         FATAL(UDI_EX_USAGE, "usage: setupRoot [-V] [-j jobid] [-v volmap] -u user -U uid -G gid [-N nodes] "
                             "[-m modules] id <id> | local <dir>");
      }
   }
   if (argc - optind != 2 || !username || uid <= 0 || gid <= 0)
      FATAL(UDI_EX_USAGE, "usage: setupRoot [-V] [-j jobid] [-v volmap] -u user -U uid -G gid [-N nodes] [-m modules] "
                          "id <id> | local <dir>");
   udi_config_load(&cfg, CONFIG_FILE, true);
   base = cfg;
   udi_user_lookup(&user, &cfg, (uid_t)uid, (gid_t)gid);
   if (strcmp(user.name, username))
      FATAL(UDI_EX_NOUSER, "uid %ld is %s, not %s", uid, user.name, username);
   if (udi_parse_image_ref(&ref, xasprintf("%s:%s", argv[optind], argv[optind + 1]), "id") ||
       (strcmp(ref.type, "id") && strcmp(ref.type, "local")))
      FATAL(UDI_EX_DATAERR, "setupRoot needs an image id (id <id>) or a local directory (local <dir>)");
   local_root = !strcmp(ref.type, "local");
   if (local_root && !cfg.allowLocalChroot)
      FATAL(UDI_EX_NOPERM, "local images (CCM mode) need allowLocalChroot=1 in udiRoot.conf");
   if (local_root && ref.tag[0] != '/')
      FATAL(UDI_EX_DATAERR, "local image %s: an absolute directory is required", ref.tag);
   if (volspec) {
      int rc = udi_volume_parse(&vols, volspec, false);
      if (rc)
         FATAL(UDI_EX_DATAERR, "invalid volume \"%s\": %s", volspec, udi_volume_strerror(rc));
   }
   strv_init(&modules);
   {
      struct strv want = { 0 };
      strv_init(&want);
      if (modspec)
         strv_split(&want, modspec, ",");
      else
         for (size_t i = 0; i < cfg.defaultModules.n; i++)
            strv_push(&want, cfg.defaultModules.v[i]);
      if (!(want.n == 1 && !strcmp(want.v[0], "none")))
         for (size_t i = 0; i < want.n; i++) {
            struct udi_module *m = udi_config_module(&cfg, want.v[i]);
            if (!m)
               FATAL(UDI_EX_USAGE, "unknown module %s", want.v[i]);
            if (m->enabled && !strv_contains(&modules, m->name))
               strv_push(&modules, m->name);
         }
   }
   if (local_root) {
      /* A host directory has no .meta and no ACL; the user must be able to reach it (checked when it is opened). */
      image_file = ref.tag;
   } else {
      meta_text = udi_load_meta_or_die(cfg.imagePath, cfg.imageWriter, ref.tag);
      if (udi_meta_parse_text(&meta, meta_text, err, sizeof(err)))
         FATAL(UDI_EX_DATAERR, "image %s: %s", ref.tag, err);
      if (!udi_meta_allows(&meta, user.uid, user.gid, user.groups, user.n_groups))
         FATAL(UDI_EX_NOPERM, "permission denied to image %s for %s", ref.tag, user.name);
      image_file = xasprintf("%s/%s.squashfs", cfg.imagePath, ref.tag);
   }
   sig = udi_root_signature(ref.tag, user.name, udi_volume_signature(&vols), &modules);
   udi_become_root(); // PRIV: already root; normalise groups to {0}
   if (job) {
      udi_job_make_dir(&base, job);
      udi_config_use_job(&cfg, job);
   }
   udi_root_destroy(&cfg);
   {
      struct udi_root_request req = { &cfg, ref.tag, image_file, local_root, &user, &vols, &modules, nodes, sig };
      udi_root_build(&req);
   }
   VERBOSE("root ready at %s", cfg.udiMount);
   return 0;
}
