/* unsetup_root.c -- unsetupRoot: tear down what setupRoot built (workload manager epilog): every mount at or
   under udiMount and loopMount in the global namespace, newest first; the loop devices go with them (autoclear).
   `unsetupRoot [-V] -j JOBID` removes job JOBID's root only (udi_job.h) and its empty mount-point directories;
   nothing else, so jobs sharing the node keep theirs.

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "udi_config.h"
#include "udi_job.h"
#include "udi_misc.h"
#include "udi_mount.h"

/** Functions **/

/* Entry point. Precondition: run by root (the epilog). Always tries every mount; exits 0 unless refused. */
int main(int argc, char **argv)
{
   struct udi_config cfg;
   int lazy;
   unsigned long job = 0;
   udi_progname = "unsetupRoot";
   openlog("unsetupRoot", LOG_PID, LOG_AUTHPRIV);
   syslog(LOG_INFO, "uid=%u argv=%s %s %s %s", getuid(), argv[0], argc > 1 ? argv[1] : "", argc > 2 ? argv[2] : "",
          argc > 3 ? argv[3] : "");
   if (getuid() != 0 || geteuid() != 0)
      FATAL(UDI_EX_NOPERM, "must be run by root");
   for (int i = 1; i < argc; i++) {
      if (!strcmp(argv[i], "-V"))
         udi_verbose = 1;
      else if (!strcmp(argv[i], "-j") && i + 1 < argc && udi_parse_job_id(argv[i + 1], &job) == 0)
         i++;
      else
         FATAL(UDI_EX_USAGE, "usage: unsetupRoot [-V] [-j jobid]");
   }
   udi_config_load(&cfg, CONFIG_FILE, true);
   if (job)
      udi_config_use_job(&cfg, job);
   lazy = udi_root_destroy(&cfg);
   if (lazy)
      WARN("%d busy mount(s) detached lazily", lazy);
   if (job) {
      /* Only empty directories go (rmdir): a mount point still busy after the lazy detach is already empty. */
      char *dir = udi_job_dir(&cfg, job);
      (void)rmdir(cfg.udiMount);
      (void)rmdir(cfg.loopMount);
      if (rmdir(dir) != 0 && errno != ENOENT)
         WARN("cannot remove %s: %s", dir, strerror(errno));
      VERBOSE("job %lu: root removed", job);
   }
   return 0;
}
