/* shifter_lookup.c -- shifter-lookup: the submit-time check of a workload manager's container request, run without
   privilege as the submitting user (the Slurm plugin runs it from sbatch/salloc/srun).

   Usage: shifter-lookup [-v VOLMAP] [-m MODULES] TYPE:TAG
   Validates the image descriptor, the volume syntax and flags (udi_volume_parse, as `shifter` and setupRoot do) and
   the module names against udiRoot.conf, then resolves a tag to its image id through the gateway with the runtime's
   own lookup (munge credential of the caller, gateways in shuffled order, gatewayTimeout each) and prints the id
   on stdout. An `id:` descriptor is printed as given (no gateway call). Volume paths are not checked here: they
   can only be checked on the node, where setupRoot and shifter check them.

   Exit codes: 0, or the runtime's (64 usage/module, 65 descriptor/volume, 66 unknown image, 67 root, 69 no
   gateway answered, 78 configuration). Messages go to stderr, one line, prefixed "shifter-lookup: ".

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "udi_config.h"
#include "udi_image.h"
#include "udi_lookup.h"
#include "udi_misc.h"
#include "udi_privs.h"
#include "udi_volume.h"

/** Functions **/

/* Whether s is a plausible image id: 1-128 lowercase hex digits. */
static bool hex_id(const char *s)
{
   size_t n = strlen(s);
   return n > 0 && n <= 128 && strspn(s, "0123456789abcdef") == n;
}

/* Entry point. Preconditions: none (runs as the calling user; refuses to run set-id). */
int main(int argc, char **argv)
{
   struct udi_config cfg;
   struct udi_user user;
   struct udi_image_ref ref;
   struct udi_volmap vols = { 0 };
   char *volspec = NULL, *modspec = NULL;
   int c;

   udi_progname = "shifter-lookup";
   openlog("shifter-lookup", LOG_PID, LOG_AUTHPRIV);
   {
      struct strv a = { 0 };
      strv_init(&a);
      for (int i = 0; i < argc; i++)
         strv_push(&a, argv[i]);
      syslog(LOG_INFO, "uid=%u argv=%s", getuid(), strv_join(&a, " "));
   }
   if (geteuid() != getuid() || getegid() != getgid())
      FATAL(UDI_EX_NOPERM, "must not be installed set-id");
   while ((c = getopt(argc, argv, "+v:m:")) != -1) {
      switch (c) {
      case 'v': volspec = optarg; break;
      case 'm': modspec = optarg; break;
      default: FATAL(UDI_EX_USAGE, "usage: shifter-lookup [-v volmap] [-m modules] TYPE:TAG");
      }
   }
   if (argc - optind != 1)
      FATAL(UDI_EX_USAGE, "usage: shifter-lookup [-v volmap] [-m modules] TYPE:TAG");
   udi_config_load(&cfg, CONFIG_FILE, true);
   if (getuid() == 0)
      FATAL(UDI_EX_NOUSER, "containers never run as root: submit the job as a user");
   udi_user_lookup(&user, &cfg, getuid(), getgid());
   if (udi_parse_image_ref(&ref, argv[optind], cfg.defaultImageType))
      FATAL(UDI_EX_DATAERR, "invalid image descriptor \"%s\"", argv[optind]);
   if (!strcmp(ref.type, "local"))
      FATAL(UDI_EX_DATAERR, "local: images cannot be prepared for a job; use shifter --image=local:… in the job");
   if (volspec) {
      int rc = udi_volume_parse(&vols, volspec, false);
      if (rc)
         FATAL(UDI_EX_DATAERR, "invalid volume \"%s\": %s", volspec, udi_volume_strerror(rc));
   }
   if (modspec) {
      struct strv want = { 0 };
      strv_init(&want);
      strv_split(&want, modspec, ",");
      if (!(want.n == 1 && !strcmp(want.v[0], "none")))
         for (size_t i = 0; i < want.n; i++)
            if (!udi_config_module(&cfg, want.v[i]))
               FATAL(UDI_EX_USAGE, "unknown module \"%s\"", want.v[i]);
   }
   if (!strcmp(ref.type, "id")) {
      if (!hex_id(ref.tag))
         FATAL(UDI_EX_DATAERR, "invalid image id \"%s\"", ref.tag);
      printf("%s\n", ref.tag);
      return 0;
   }
   printf("%s\n", udi_lookup_image(&cfg, &user, ref.type, ref.tag));
   return 0;
}
