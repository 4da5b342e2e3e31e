/* shifter.c -- the setuid-root runtime: run a command as the caller inside a container built from a squashfs
   image (or reuse one prepared by setupRoot).

   Flow: verify setuid + trusted config → copy and clear the environment → parse options → resolve the caller →
   resolve the image (gateway child as the user, or id:) → read .meta and enforce its ACL before the image is
   opened → reuse a matching root, or unshare a private mount namespace and build one → chroot → drop every
   privilege (verified) → workdir → environment → module user hooks → exec (127 on failure).

   Memory policy: short-lived (ends in exec); nothing is freed. */

#define _GNU_SOURCE
#include <getopt.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "udi_config.h"
#include "udi_env.h"
#include "udi_image.h"
#include "udi_job.h"
#include "udi_lookup.h"
#include "udi_misc.h"
#include "udi_mount.h"
#include "udi_privs.h"
#include "udi_volume.h"

/** Types **/

/* Everything the command line and the caller's environment asked for. */
struct options {
   char *image_request;   /* raw descriptor as given (SHIFTER_IMAGEREQUEST inside the container) */
   char *volumes;         /* ';'-joined user volume maps, or NULL */
   bool use_entry;        /* --entrypoint given */
   char *entry;           /* --entrypoint=X, or NULL */
   bool use_workdir;      /* --workdir given */
   char *workdir;         /* --workdir=X, or NULL (then image WORKDIR) */
   struct strv env;       /* --env NAME=value, in order */
   struct strv env_files; /* --env-file paths, in order */
   bool clearenv;         /* --clearenv */
   char *modules;         /* --module value, or NULL (defaults) */
   struct strv args;      /* the command */
};

/** Functions **/

static void usage(int code)
{
   fprintf(code ? stderr : stdout,
           "Usage: shifter [options] [--] [command [args…]]\n"
           "  -i, --image=TYPE:TAG     image to use (docker:, custom:, id:, local:); or SHIFTER_IMAGETYPE +\n"
           "                           SHIFTER_IMAGE, or SHIFTER_IMAGEREQUEST\n"
           "  -V, --volume=FROM:TO[:ro][;…]  bind a directory visible in the container to TO (repeatable)\n"
           "      --entrypoint[=CMD]   run the image ENTRYPOINT (or CMD) instead of the command\n"
           "  -w, --workdir[=DIR]      start in DIR (default: the current directory; without DIR: image WORKDIR)\n"
           "  -e, --env=NAME=VALUE     set a variable (repeatable)\n"
           "      --env-file=FILE      NAME=VALUE lines, # comments (repeatable)\n"
           "  -E, --clearenv           do not pass the host environment\n"
           "  -m, --module=A,B|none    site modules to activate (default: defaultModules)\n"
           "  -v, --verbose            trace what is done\n"
           "  -h, --help               this text\n"
           "Forbidden volume targets: /etc, /var (except /var/tmp), /opt/udiImage, /opt, /proc, /sys, /dev.\n");
   exit(code);
}

/* Parse the command line into o (already holding the defaults taken from SHIFTER_* variables). Stops at the
   first non-option; the rest is the command. Precondition: environment already cleared. */
static void parse_options(struct options *o, int argc, char **argv)
{
   static const struct option longs[] = { { "image", required_argument, 0, 'i' },
                                          { "volume", required_argument, 0, 'V' },
                                          { "entrypoint", optional_argument, 0, 'N' },
                                          { "entry", optional_argument, 0, 'N' },
                                          { "workdir", optional_argument, 0, 'w' },
                                          { "env", required_argument, 0, 'e' },
                                          { "env-file", required_argument, 0, 'F' },
                                          { "clearenv", no_argument, 0, 'E' },
                                          { "module", required_argument, 0, 'm' },
                                          { "verbose", no_argument, 0, 'v' },
                                          { "help", no_argument, 0, 'h' },
                                          { 0, 0, 0, 0 } };
   bool cli_volume = false;
   int c;
   while ((c = getopt_long(argc, argv, "+hvV:i:e:Ew::m:", longs, NULL)) != -1) {
      switch (c) {
      case 'i': o->image_request = xstrdup(optarg); break;
      case 'V':
         /* The first --volume replaces SHIFTER_VOLUME from the environment; later ones accumulate. */
         o->volumes = (cli_volume && o->volumes) ? xasprintf("%s;%s", o->volumes, optarg) : xstrdup(optarg);
         cli_volume = true;
         break;
      case 'N':
         o->use_entry = true;
         o->entry = optarg ? xstrdup(optarg) : NULL;
         break;
      case 'w':
         o->use_workdir = true;
         o->workdir = optarg ? xstrdup(optarg) : NULL;
         break;
      case 'e':
         if (!env_name_ok(optarg) || !strchr(optarg, '=')[1])
            FATAL(UDI_EX_USAGE, "--env needs NAME=VALUE with a non-empty name and value: \"%s\"", optarg);
         strv_push(&o->env, optarg);
         break;
      case 'F': strv_push(&o->env_files, optarg); break;
      case 'E': o->clearenv = true; break;
      case 'm': o->modules = xstrdup(optarg); break;
      case 'v': udi_verbose = 1; break;
      case 'h': usage(0); break;
      default: usage(UDI_EX_USAGE);
      }
   }
   for (int i = optind; i < argc; i++)
      strv_push(&o->args, argv[i]);
}

/* Read NAME=VALUE lines with the user's file-system credentials (the path is the user's; reading it as root
   would disclose files the user cannot read). */
static void read_env_file(struct strv *env, const char *path, const struct udi_user *u)
{
   char *text, *line, *save = NULL;
   int e;
   udi_fs_as_user(u);
   text = read_file_text(path, 16 * 1024 * 1024);
   e = errno;
   udi_fs_as_root();
   if (!text)
      FATAL(UDI_EX_USAGE, "--env-file %s: %s", path, strerror(e));
   for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
      char *t = str_trim(line);
      if (!*t || *t == '#')
         continue;
      if (env_set(env, t))
         FATAL(UDI_EX_USAGE, "--env-file %s: not NAME=VALUE: \"%s\"", path, t);
   }
}

/* Active modules: --module (or SHIFTER_MODULE) replaces defaultModules, "none" disables all. Unknown or
   conflicting modules are fatal, disabled ones are skipped with a warning. */
static void select_modules(struct strv *active, const struct udi_config *c, const char *request)
{
   struct strv want = { 0 };
   strv_init(active);
   strv_init(&want);
   if (request)
      strv_split(&want, request, ",");
   else
      for (size_t i = 0; i < c->defaultModules.n; i++)
         strv_push(&want, c->defaultModules.v[i]);
   if (want.n == 1 && !strcmp(want.v[0], "none"))
      return;
   for (size_t i = 0; i < want.n; i++) {
      struct udi_module *m = udi_config_module(c, want.v[i]);
      if (!m)
         FATAL(UDI_EX_USAGE, "unknown module \"%s\"", want.v[i]);
      if (!m->enabled) {
         WARN("module %s is disabled on this system; skipped", m->name);
         continue;
      }
      if (!strv_contains(active, m->name))
         strv_push(active, m->name);
   }
   for (size_t i = 0; i < active->n; i++) {
      struct udi_module *m = udi_config_module(c, active->v[i]);
      for (size_t j = 0; j < m->conflict.n; j++)
         if (strv_contains(active, m->conflict.v[j]))
            FATAL(UDI_EX_USAGE, "modules %s and %s conflict", m->name, m->conflict.v[j]);
   }
}

/* execve with a PATH search over the container's PATH (not the host's). Returns only on failure. */
static void exec_in_path(char **argv, char **envp, const char *path)
{
   int saved = ENOENT;
   if (strchr(argv[0], '/')) {
      execve(argv[0], argv, envp);
      return;
   }
   {
      struct strv dirs = { 0 };
      strv_split(&dirs, path && *path ? path : "/usr/local/bin:/usr/bin:/bin", ":");
      for (size_t i = 0; i < dirs.n; i++) {
         execve(xasprintf("%s/%s", dirs.v[i], argv[0]), argv, envp);
         if (errno == EACCES)
            saved = EACCES;
         else if (errno != ENOENT && errno != ENOTDIR)
            saved = errno;
      }
   }
   errno = saved;
}

/* Entry point (see the file header for the order of steps). Preconditions: installed setuid root; returns only
   through exec, or exits with a UDI_EX_* code. */
int main(int argc, char **argv)
{
   struct udi_config cfg;
   struct options o;
   struct udi_user user;
   struct udi_image_ref ref;
   struct udi_meta meta;
   struct udi_volmap vols = { 0 };
   struct strv host_env = { 0 }, env = { 0 }, args, modules;
   char *image_id, *image_file = NULL, *sig, *cwd, *meta_text, err[512], *imagetype, *imagetag, *root_dir;
   bool local_root = false;
   mode_t user_umask;
   uid_t uid = getuid();
   gid_t gid = getgid();

   udi_progname = "shifter";
   memset(&o, 0, sizeof(o));
   strv_init(&o.env);
   strv_init(&o.env_files);
   strv_init(&o.args);

   PHASE("start");
   openlog("shifter", LOG_PID, LOG_AUTHPRIV);
   {
      struct strv a = { 0 };
      strv_init(&a);
      for (int i = 0; i < argc; i++)
         strv_push(&a, argv[i]);
      syslog(LOG_INFO, "uid=%u gid=%u argv=%s", uid, gid, strv_join(&a, " "));
   }
   if (geteuid() != 0)
      FATAL(UDI_EX_NOPERM, "not running with root privileges: shifter must be installed setuid root");
   /* The caller's umask must not shape the directories and files root creates; the command gets it back. */
   user_umask = umask(022);
   PHASE("syslog");
   udi_config_load(&cfg, CONFIG_FILE, true);
   PHASE("config");

   /* The host environment as the loader left it (it already removed LD_* and friends for a setuid program). */
   strv_init(&host_env);
   for (char **e = environ; e && *e; e++)
      strv_push(&host_env, *e);
   imagetype = getenv("SHIFTER_IMAGETYPE")               ? xstrdup(getenv("SHIFTER_IMAGETYPE"))
               : getenv("SLURM_SPANK_SHIFTER_IMAGETYPE") ? xstrdup(getenv("SLURM_SPANK_SHIFTER_IMAGETYPE"))
                                                         : NULL;
   imagetag = getenv("SHIFTER_IMAGE")               ? xstrdup(getenv("SHIFTER_IMAGE"))
              : getenv("SLURM_SPANK_SHIFTER_IMAGE") ? xstrdup(getenv("SLURM_SPANK_SHIFTER_IMAGE"))
                                                    : NULL;
   if (imagetype && imagetag)
      o.image_request = xasprintf("%s:%s", imagetype, imagetag);
   else if (getenv("SHIFTER_IMAGEREQUEST"))
      o.image_request = xstrdup(getenv("SHIFTER_IMAGEREQUEST"));
   if (getenv("SHIFTER_MODULE"))
      o.modules = xstrdup(getenv("SHIFTER_MODULE"));
   if (getenv("SHIFTER_VOLUME"))
      o.volumes = xstrdup(getenv("SHIFTER_VOLUME"));
   Z_(clearenv());
   parse_options(&o, argc, argv);
   if (!o.image_request)
      FATAL(UDI_EX_USAGE, "no image given (--image=TYPE:TAG)");

   udi_user_lookup(&user, &cfg, uid, gid);
   PHASE("user");
   if (udi_parse_image_ref(&ref, o.image_request, cfg.defaultImageType))
      FATAL(UDI_EX_DATAERR, "invalid image descriptor \"%s\"", o.image_request);
   if (o.volumes) {
      int rc = udi_volume_parse(&vols, o.volumes, false);
      if (rc)
         FATAL(UDI_EX_DATAERR, "invalid volume \"%s\": %s", o.volumes, udi_volume_strerror(rc));
   }
   select_modules(&modules, &cfg, o.modules);

   /* Image identity and metadata. The ACL is checked before the image file is ever opened. */
   if (!strcmp(ref.type, "local")) {
      image_id = ref.tag;
      image_file = ref.tag;
      local_root = true;
      if (!cfg.allowLocalChroot)
         FATAL(UDI_EX_NOPERM, "local: images are not allowed on this system");
      udi_meta_parse_text(&meta, "FORMAT: VFS\n", err, sizeof(err));
   } else {
      image_id = !strcmp(ref.type, "id") ? ref.tag : udi_lookup_image(&cfg, &user, ref.type, ref.tag);
      /* Directory and .meta checked on their open descriptors: root's or imageWriter's, no symlink, not g/o-writable. */
      meta_text = udi_load_meta_or_die(cfg.imagePath, cfg.imageWriter, image_id);
      if (udi_meta_parse_text(&meta, meta_text, err, sizeof(err)))
         FATAL(UDI_EX_DATAERR, "image %s: bad metadata: %s", image_id, err);
      if (!udi_meta_allows(&meta, user.uid, user.gid, user.groups, user.n_groups))
         FATAL(UDI_EX_NOPERM, "permission denied to image %s", image_id);
      if (meta.format && *meta.format && strcmp(meta.format, "squashfs"))
         FATAL(UDI_EX_DATAERR, "image %s: unsupported format %s", image_id, meta.format);
      image_file = xasprintf("%s/%s.squashfs", cfg.imagePath, image_id);
   }

   PHASE("image");
   if (udi_calculate_args(&args, o.use_entry, o.entry, &o.args, &meta.entry, &meta.cmd, err, sizeof(err)))
      FATAL(UDI_EX_DATAERR, "%s", err);
   if (o.use_workdir && !o.workdir) {
      if (!meta.workdir)
         FATAL(UDI_EX_DATAERR, "--workdir without a value needs an image WORKDIR, and this image has none");
      o.workdir = meta.workdir;
   }
   cwd = getcwd(NULL, 0);

   /* Environment (built now, while the env files can still be read with the user's credentials). */
   strv_init(&env);
   if (!o.clearenv)
      for (size_t i = 0; i < host_env.n; i++)
         strv_push(&env, host_env.v[i]);
   env_set(&env, xasprintf("SHIFTER_IMAGEREQUEST=%s", o.image_request));
   env_set(&env, xasprintf("SHIFTER_IMAGE=%s", image_id));
   for (size_t i = 0; i < meta.env.n; i++)
      if (env_set(&env, meta.env.v[i]))
         WARN("image ENV entry \"%s\" is not NAME=value; ignored", meta.env.v[i]);
   for (size_t i = 0; i < o.env_files.n; i++)
      read_env_file(&env, o.env_files.v[i], &user);
   for (size_t i = 0; i < o.env.n; i++)
      env_set(&env, o.env.v[i]);
   for (size_t i = 0; i < modules.n; i++) {
      struct udi_module *m = udi_config_module(&cfg, modules.v[i]);
      if (env_apply_site(&env, &m->siteEnv, &m->siteEnvAppend, &m->siteEnvPrepend, &m->siteEnvUnset))
         FATAL(UDI_EX_CONFIG, "module %s: malformed siteEnv entry", m->name);
   }
   if (env_apply_site(&env, &cfg.siteEnv, &cfg.siteEnvAppend, &cfg.siteEnvPrepend, &cfg.siteEnvUnset))
      FATAL(UDI_EX_CONFIG, "malformed siteEnv entry in udiRoot.conf");

   /* Reuse a root prepared by setupRoot (this job's, found through the trusted step daemon, or the node's), or build
      a private one. */
   sig = udi_root_signature(image_id, user.name, udi_volume_signature(&vols), &modules);
   udi_become_root(); // PRIV: uid/gid 0/0/0, groups {0}
   root_dir = cfg.udiMount;
   {
      unsigned long job = udi_slurm_job_of_caller();
      struct udi_config jobcfg = cfg;
      if (job)
         udi_config_use_job(&jobcfg, job);
      if (job && udi_root_reusable(&jobcfg, sig)) {
         root_dir = jobcfg.udiMount;
         VERBOSE("reusing the root of job %lu at %s", job, root_dir);
      } else if (udi_root_reusable(&cfg, sig)) {
         VERBOSE("reusing the root at %s", cfg.udiMount);
      } else {
         struct udi_root_request req = { &cfg, image_id, image_file, local_root, &user, &vols, &modules, NULL, sig };
         PHASE("env");
         Z_(unshare(CLONE_NEWNS));
         Z_(mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL));
         PHASE("unshare");
         udi_root_destroy(&cfg);
         PHASE("destroy");
         udi_root_build(&req);
      }
   }
   Zf(chdir(root_dir), "chdir %s", root_dir);
   Z_(chroot("."));
   Z_(chdir("/"));

   PHASE("chroot");
   udi_drop_privileges(&user); // PRIV: uid/gid = user, no capabilities, bounding set empty, no_new_privs
   umask(user_umask);

   {
      const char *wd = o.workdir ? o.workdir : cwd;
      if (wd && chdir(wd) != 0) {
         if (o.workdir)
            FATAL(UDI_EX_FAILURE, "cannot change to working directory %s: %s", wd, strerror(errno));
         WARN("cannot change to %s inside the container; staying in /", wd);
      }
   }
   for (size_t i = 0; i < modules.n; i++) {
      struct udi_module *m = udi_config_module(&cfg, modules.v[i]);
      if (m->userhook)
         udi_run_hook(m->userhook, NULL, env.v, NULL);
   }
   PHASE("drop+hooks");
   exec_in_path(args.v, env.v, env_get(&env, "PATH"));
   fprintf(stderr, "shifter: %s: %s\n", args.v[0], strerror(errno));
   return UDI_EX_EXEC_FAILED;
}
