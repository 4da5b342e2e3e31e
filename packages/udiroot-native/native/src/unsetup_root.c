/* unsetup_root.c -- unsetupRoot: tear down what setupRoot built (workload manager epilog): every mount at or
   under udiMount and loopMount in the global namespace, newest first; the loop devices go with them (autoclear).

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <syslog.h>
#include <unistd.h>

#include "udi_config.h"
#include "udi_misc.h"
#include "udi_mount.h"

/** Functions **/

/* Entry point. Precondition: run by root (the epilog). Always tries every mount; exits 0 unless refused. */
int main(int argc, char **argv)
{
   struct udi_config cfg;
   int lazy;
   udi_progname = "unsetupRoot";
   openlog("unsetupRoot", LOG_PID, LOG_AUTHPRIV);
   syslog(LOG_INFO, "uid=%u argv=%s %s", getuid(), argv[0], argc > 1 ? argv[1] : "");
   if (getuid() != 0 || geteuid() != 0)
      FATAL(UDI_EX_NOPERM, "must be run by root");
   if (argc > 1 && argv[1][0] == '-' && argv[1][1] == 'V')
      udi_verbose = 1;
   udi_config_load(&cfg, CONFIG_FILE, true);
   lazy = udi_root_destroy(&cfg);
   if (lazy)
      WARN("%d busy mount(s) detached lazily", lazy);
   return 0;
}
