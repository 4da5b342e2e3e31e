/* shifter_spank.c -- the Slurm SPANK plugin of the udiRoot runtime (docs/slurm.md).

   Submit (sbatch/salloc/srun, as the user): --image/--volume/--module are checked and the image resolved to its id
   once by shifter-lookup (the runtime's own validation and gateway lookup, unprivileged); the job carries
   `id:<hex>` from then on (SPANK_SHIFTER_* for the prolog/epilog, _SLURM_SPANK_OPTION_shifter_image for every later
   step). Job prolog (root, each node): `setupRoot -j JOB …` builds the job's own root. Steps (slurmstepd): every task
   gets SHIFTER_IMAGETYPE/SHIFTER_IMAGE/SHIFTER_VOLUME/SHIFTER_MODULE, so `shifter CMD` runs in the job's image and
   reuses the job's root. Job epilog (root): `unsetupRoot -j JOB` removes that root and nothing else.

   Failures: a user's mistake fails the submission (or, when only the node can see it, the job's steps, through the
   runtime's own message) and never drains the node; a node that cannot build roots is drained (-1 from the prolog).
   A bad plugstack.conf argument is logged and refuses only --image requests; other jobs are untouched.

   Built against the running Slurm's spank.h (a plugin built for another release is refused). No libslurm link:
   the loading Slurm program provides the symbols.

   Memory policy: the option strings live for the process (Slurm loads the plugin per command/step). */

#define _GNU_SOURCE
#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <slurm/spank.h>

/** Macros **/

#ifndef CONFIG_FILE
#define CONFIG_FILE "/etc/shifter/udiRoot.conf"
#endif
#ifndef UDI_PREFIX
#define UDI_PREFIX "/usr/local"
#endif

#define LOOKUP_BIN UDI_PREFIX "/bin/shifter-lookup"
#define SETUP_BIN UDI_PREFIX "/sbin/setupRoot"
#define UNSETUP_BIN UDI_PREFIX "/sbin/unsetupRoot"
#define OUT_MAX 8192 /* captured stdout/stderr of a helper program, bytes */

/* The runtime's exit codes that mean "the request is wrong", not "the node is broken" (udi_misc.h). */
#define EX_USAGE 64
#define EX_DATAERR 65
#define EX_NOINPUT 66
#define EX_NOPERM 77

SPANK_PLUGIN(shifter, 1);

/** Globals **/

static char *opt_image;        /* --image value, or NULL */
static char *opt_volume;       /* --volume value (';'-separated maps), or NULL */
static char *opt_module;       /* --module value, or NULL */
static char conf_error[512];   /* non-empty: plugstack.conf arguments are broken (the message) */
static bool container_aliases; /* container_aliases=1: also --container-image / --container-mounts */

/** Functions **/

/* Option callbacks: run in srun/sbatch/salloc (remote 0) and again in slurmstepd (remote 1), possibly more than once
   for one option; each keeps the last value. A missing value is refused (-1 fails the command). */
static int cb_image(int val, const char *arg, int remote)
{
   (void)val;
   (void)remote;
   if (!arg || !*arg) {
      slurm_error("shifter: --image needs a value (TYPE:TAG, for example docker:ubuntu:22.04)");
      return -1;
   }
   free(opt_image);
   opt_image = strdup(arg);
   return 0;
}

/* --volume takes the runtime's ';'-separated maps; --container-mounts (val 1) separates them with ',' as pyxis
   does. The last value wins: Slurm may run a callback more than once for the same option (upstream #190/#224). */
static int cb_volume(int val, const char *arg, int remote)
{
   (void)remote;
   if (!arg || !*arg) {
      slurm_error("shifter: --volume needs a value (SRC:DST[:FLAGS][;…])");
      return -1;
   }
   free(opt_volume);
   opt_volume = strdup(arg);
   if (val == 1)
      for (char *p = opt_volume; *p; p++)
         if (*p == ',')
            *p = ';';
   return 0;
}

static int cb_module(int val, const char *arg, int remote)
{
   (void)val;
   (void)remote;
   if (!arg || !*arg) {
      slurm_error("shifter: --module needs a value (A,B or none)");
      return -1;
   }
   free(opt_module);
   opt_module = strdup(arg);
   return 0;
}

static struct spank_option options[] = {
   { "image", "TYPE:TAG", "Run the job's `shifter` commands in this image (docker:REPO:TAG or id:HEX).", 1, 0,
     cb_image },
   { "volume", "SRC:DST[:FLAGS]", "Shifter volume maps for the job's containers (';'-separated).", 1, 0, cb_volume },
   { "module", "A,B|none", "Shifter site modules for the job's containers (default: the site's).", 1, 0, cb_module },
};

static struct spank_option alias_options[] = {
   { "container-image", "TYPE:TAG", "Alias of --image (container_aliases=1).", 1, 0, cb_image },
   { "container-mounts", "SRC:DST[:FLAGS][,…]", "Alias of --volume with ','-separated maps (container_aliases=1).", 1,
     1, cb_volume },
};

/* Record the first plugstack.conf problem. */
static void conf_fail(const char *fmt, const char *arg, const char *why)
{
   if (!conf_error[0])
      snprintf(conf_error, sizeof(conf_error), fmt, arg, why);
}

/* A 0/1 value; -1 when malformed. */
static int flag_value(const char *v)
{
   if (!strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false"))
      return 0;
   if (!strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "true"))
      return 1;
   return -1;
}

/* plugstack.conf arguments (docs/slurm.md): upstream's where they mean something here, refused where not. */
static void parse_args(int ac, char **av)
{
   for (int i = 0; i < ac; i++) {
      const char *a = av[i], *eq = strchr(a, '=');
      char key[64];
      const char *val;
      if (!eq || (size_t)(eq - a) >= sizeof(key)) {
         conf_fail("argument \"%s\" is not key=value%s", a, "");
         continue;
      }
      memcpy(key, a, (size_t)(eq - a));
      key[eq - a] = '\0';
      val = eq + 1;
      if (!strcmp(key, "shifter_config")) {
         if (strcmp(val, CONFIG_FILE))
            conf_fail("shifter_config=%s: %s", val,
                      "this runtime reads " CONFIG_FILE " (fixed when it is built: make CONFIG_FILE=…)");
      } else if (!strcmp(key, "container_aliases")) {
         int f = flag_value(val);
         if (f < 0)
            conf_fail("container_aliases=%s: %s", val, "expected 0 or 1");
         container_aliases = f == 1;
      } else if (!strcmp(key, "enable_ccm") || !strcmp(key, "enable_sshd") || !strcmp(key, "extern_cgroup")) {
         int f = flag_value(val);
         if (f < 0)
            conf_fail("%s: %s", a, "expected 0 or 1");
         else if (f == 1)
            conf_fail("%s: %s", a,
                      "not supported by this runtime (no CCM mode, per-user sshd or extern-step cgroup); use 0");
      } else if (!strcmp(key, "extern_setup") || !strcmp(key, "memory_cgroup")) {
         if (*val)
            conf_fail("%s: %s", a, "not supported by this runtime (there is no extern-step setup); remove it");
      } else {
         conf_fail("unknown argument \"%s\"%s", a, " (see docs/slurm.md for the accepted ones)");
      }
   }
}

/* Every context: parse the plugstack arguments (a problem is logged, never fatal) and, where users give options
   (srun, sbatch/salloc, slurmstepd), register them. Always 0, so a bad argument cannot break jobs without --image. */
int slurm_spank_init(spank_t sp, int ac, char **av)
{
   spank_context_t ctx = spank_context();
   parse_args(ac, av);
   if (conf_error[0])
      slurm_error("shifter: plugstack.conf: %s; jobs asking for --image are refused until this is fixed, other "
                  "jobs are not affected",
                  conf_error);
   if (ctx != S_CTX_LOCAL && ctx != S_CTX_ALLOCATOR && ctx != S_CTX_REMOTE)
      return 0;
   for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
      if (spank_option_register(sp, &options[i]) != ESPANK_SUCCESS)
         slurm_error("shifter: cannot register --%s", options[i].name);
   if (container_aliases)
      for (size_t i = 0; i < sizeof(alias_options) / sizeof(alias_options[0]); i++)
         if (spank_option_register(sp, &alias_options[i]) != ESPANK_SUCCESS)
            slurm_error("shifter: cannot register --%s", alias_options[i].name);
   return 0;
}

/* Run argv (absolute path), capturing stdout into out and stderr into err (each OUT_MAX bytes, NUL-terminated,
   trailing newlines removed). Returns the exit status, 128+signal, or -1 when it could not be started. */
static int run_capture(char *const argv[], char *out, char *err)
{
   int po[2], pe[2], status;
   pid_t pid;
   size_t no = 0, ne = 0;
   out[0] = err[0] = '\0';
   if (pipe(po) != 0)
      return -1;
   if (pipe(pe) != 0) {
      close(po[0]);
      close(po[1]);
      return -1;
   }
   pid = fork();
   if (pid < 0)
      return -1;
   if (pid == 0) {
      dup2(po[1], 1);
      dup2(pe[1], 2);
      close(po[0]);
      close(pe[0]);
      execv(argv[0], argv);
      fprintf(stderr, "cannot run %s: %s", argv[0], strerror(errno));
      _exit(127);
   }
   close(po[1]);
   close(pe[1]);
   for (;;) { /* stdout first, then stderr: the helpers write one short line to either */
      ssize_t r = read(po[0], out + no, OUT_MAX - 1 - no);
      if (r < 0 && errno == EINTR)
         continue;
      if (r <= 0)
         break;
      no += (size_t)r;
      if (no >= OUT_MAX - 1)
         break;
   }
   for (;;) {
      ssize_t r = read(pe[0], err + ne, OUT_MAX - 1 - ne);
      if (r < 0 && errno == EINTR)
         continue;
      if (r <= 0)
         break;
      ne += (size_t)r;
      if (ne >= OUT_MAX - 1)
         break;
   }
   close(po[0]);
   close(pe[0]);
   while (waitpid(pid, &status, 0) < 0)
      if (errno != EINTR)
         return -1;
   out[no] = err[ne] = '\0';
   while (no > 0 && (out[no - 1] == '\n' || out[no - 1] == '\r'))
      out[--no] = '\0';
   while (ne > 0 && (err[ne - 1] == '\n' || err[ne - 1] == '\r'))
      err[--ne] = '\0';
   if (WIFEXITED(status))
      return WEXITSTATUS(status);
   return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Submit time (sbatch, salloc, srun; as the user, after the options are parsed): validate and resolve once through
   shifter-lookup, then hand the id to the job. -1 fails the command with the message already printed. */
int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
   spank_context_t ctx = spank_context();
   char *argv[8], out[OUT_MAX], err[OUT_MAX], *id_opt;
   int n = 0, rc;
   (void)ac;
   (void)av;
   if ((ctx != S_CTX_LOCAL && ctx != S_CTX_ALLOCATOR) || !opt_image)
      return 0;
   if (conf_error[0]) {
      slurm_error("shifter: --image is unavailable: the plugin's plugstack.conf arguments are broken (%s); ask the "
                  "administrators",
                  conf_error);
      return -1;
   }
   argv[n++] = LOOKUP_BIN;
   if (opt_volume) {
      argv[n++] = "-v";
      argv[n++] = opt_volume;
   }
   if (opt_module) {
      argv[n++] = "-m";
      argv[n++] = opt_module;
   }
   argv[n++] = opt_image;
   argv[n] = NULL;
   rc = run_capture(argv, out, err);
   if (rc != 0) {
      slurm_error("shifter: %s", err[0] ? err : "shifter-lookup failed");
      return -1;
   }
   if (!out[0] || strspn(out, "0123456789abcdef") != strlen(out)) {
      slurm_error("shifter: unexpected answer from %s", LOOKUP_BIN);
      return -1;
   }
   /* The job's prolog/epilog see SPANK_SHIFTER_*, the batch script SLURM_SPANK_SHIFTER_*. In srun inside an
      existing allocation there is no job to change, and that is expected. */
   if (spank_job_control_setenv(sp, "SHIFTER_IMAGE", out, 1) == ESPANK_SUCCESS) {
      spank_job_control_setenv(sp, "SHIFTER_IMAGETYPE", "id", 1);
      spank_job_control_setenv(sp, "SHIFTER_IMAGEREQUEST", opt_image, 1);
      if (opt_volume)
         spank_job_control_setenv(sp, "SHIFTER_VOLUME", opt_volume, 1);
      if (opt_module)
         spank_job_control_setenv(sp, "SHIFTER_MODULE", opt_module, 1);
   }
   /* Every later step of the job sees the id, not the tag: no second lookup, and no other image. */
   if (asprintf(&id_opt, "id:%s", out) < 0)
      return -1;
   spank_job_control_setenv(sp, "_SLURM_SPANK_OPTION_shifter_image", id_opt, 1); /* batch job → its srun steps */
   setenv("_SLURM_SPANK_OPTION_shifter_image", id_opt, 1);                       /* salloc shell → its srun steps */
   if (container_aliases) { /* the alias would otherwise carry the tag into later steps */
      spank_job_control_setenv(sp, "_SLURM_SPANK_OPTION_shifter_container_image", id_opt, 1);
      setenv("_SLURM_SPANK_OPTION_shifter_container_image", id_opt, 1);
   }
   free(opt_image);
   opt_image = id_opt;
   return 0;
}

/* Steps (slurmstepd, as the user, before the tasks start): the job's container request as the runtime's variables,
   for the batch script and every task of every step. */
int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
   (void)ac;
   (void)av;
   if (spank_context() != S_CTX_REMOTE || !opt_image)
      return 0;
   if (!strncmp(opt_image, "id:", 3)) {
      spank_setenv(sp, "SHIFTER_IMAGETYPE", "id", 1);
      spank_setenv(sp, "SHIFTER_IMAGE", opt_image + 3, 1);
   } else {
      spank_unsetenv(sp, "SHIFTER_IMAGETYPE");
      spank_unsetenv(sp, "SHIFTER_IMAGE");
      spank_setenv(sp, "SHIFTER_IMAGEREQUEST", opt_image, 1);
   }
   if (opt_volume)
      spank_setenv(sp, "SHIFTER_VOLUME", opt_volume, 1);
   if (opt_module)
      spank_setenv(sp, "SHIFTER_MODULE", opt_module, 1);
   return 0;
}

/* Job id, uid and gid of the prolog/epilog's job. */
static int job_items(spank_t sp, uint32_t *job, uid_t *uid, gid_t *gid)
{
   if (spank_get_item(sp, S_JOB_ID, job) != ESPANK_SUCCESS || spank_get_item(sp, S_JOB_UID, uid) != ESPANK_SUCCESS ||
       spank_get_item(sp, S_JOB_GID, gid) != ESPANK_SUCCESS) {
      slurm_error("shifter: cannot read the job's id/uid/gid");
      return -1;
   }
   return 0;
}

/* Job prolog (root, every node of the allocation; SPANK_SHIFTER_* from submission): build this job's root. 0 for
   jobs without --image and for the request's own faults (the steps then fail with the runtime's message); -1, which
   drains the node, only when the node cannot build roots. */
int slurm_spank_job_prolog(spank_t sp, int ac, char **av)
{
   const char *image = getenv("SPANK_SHIFTER_IMAGE"), *volume = getenv("SPANK_SHIFTER_VOLUME"),
              *module = getenv("SPANK_SHIFTER_MODULE");
   char *argv[20], out[OUT_MAX], err[OUT_MAX], jobs[16], uids[16], gids[16], *unargv[4];
   uint32_t job;
   uid_t uid;
   gid_t gid;
   struct passwd *pw;
   int n = 0, rc;
   (void)ac;
   (void)av;
   if (!image)
      return 0;
   if (conf_error[0]) {
      slurm_error("shifter: job prolog: plugstack.conf arguments are broken (%s): cannot prepare containers on this "
                  "node",
                  conf_error);
      return -1;
   }
   if (job_items(sp, &job, &uid, &gid))
      return -1;
   if (uid == 0) { /* refused at submission; a job of root gets no root and its steps are refused by shifter */
      slurm_info("shifter: job %u belongs to root: no container root is prepared", job);
      return 0;
   }
   pw = getpwuid(uid);
   if (!pw) {
      slurm_error("shifter: job %u: uid %u is unknown on this node: cannot prepare its container", job, uid);
      return -1;
   }
   snprintf(jobs, sizeof(jobs), "%u", job);
   snprintf(uids, sizeof(uids), "%u", uid);
   snprintf(gids, sizeof(gids), "%u", gid);
   argv[n++] = SETUP_BIN;
   argv[n++] = "-j";
   argv[n++] = jobs;
   argv[n++] = "-U";
   argv[n++] = uids;
   argv[n++] = "-G";
   argv[n++] = gids;
   argv[n++] = "-u";
   argv[n++] = pw->pw_name;
   if (volume) {
      argv[n++] = "-v";
      argv[n++] = (char *)volume;
   }
   if (module) {
      argv[n++] = "-m";
      argv[n++] = (char *)module;
   }
   argv[n++] = "id";
   argv[n++] = (char *)image;
   argv[n] = NULL;
   rc = run_capture(argv, out, err);
   if (rc == 0) {
      slurm_info("shifter: job %u: container root ready (image %s)", job, image);
      return 0;
   }
   /* Whatever a failed build left mounted goes now. */
   unargv[0] = UNSETUP_BIN;
   unargv[1] = "-j";
   unargv[2] = jobs;
   unargv[3] = NULL;
   run_capture(unargv, out, out);
   if (rc == EX_USAGE || rc == EX_DATAERR || rc == EX_NOINPUT || rc == EX_NOPERM) {
      slurm_error("shifter: job %u: the container cannot be prepared (%s); its `shifter` steps will fail with the "
                  "same message; the node stays in service",
                  job, err);
      return 0;
   }
   slurm_error("shifter: job %u: setupRoot failed (exit %d: %s): this node cannot prepare containers", job, rc, err);
   return -1;
}

/* Job epilog (root, every node): remove this job's root, and only it; -1 (drain) only if unsetupRoot fails. */
int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
   char *argv[4], out[OUT_MAX], err[OUT_MAX], jobs[16];
   uint32_t job;
   uid_t uid;
   gid_t gid;
   int rc;
   (void)ac;
   (void)av;
   if (!getenv("SPANK_SHIFTER_IMAGE"))
      return 0;
   if (job_items(sp, &job, &uid, &gid))
      return -1;
   snprintf(jobs, sizeof(jobs), "%u", job);
   argv[0] = UNSETUP_BIN;
   argv[1] = "-j";
   argv[2] = jobs;
   argv[3] = NULL;
   rc = run_capture(argv, out, err);
   if (rc != 0) {
      slurm_error("shifter: job %u: unsetupRoot failed (exit %d: %s)", job, rc, err);
      return -1;
   }
   return 0;
}
