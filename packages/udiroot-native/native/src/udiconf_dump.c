/* udiconf_dump.c -- test/debug tool (never installed setuid): parse the udiRoot.conf given as the last argument with the
   runtime's own parser and print it as normalised JSON (udi_config_json) and its warnings on stderr (one per line),
   or the error and exit UDI_EX_CONFIG.
   With --validate, also apply the runtime's checks (required keys, value domains). Used by the
   C/TypeScript parser parity test. No ownership check: it reads any file the caller can read.

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "udi_config.h"
#include "udi_misc.h"

/** Functions **/

/* Entry point: parse, print JSON, exit 0 or UDI_EX_CONFIG. */
int main(int argc, char **argv)
{
   struct udi_config cfg;
   char err[600], *text;
   udi_progname = "udiconf-dump";
   bool validate = argc == 3 && !strcmp(argv[1], "--validate");
   if (argc != 2 && !validate)
      FATAL(UDI_EX_USAGE, "usage: udiconf-dump [--validate] FILE");
   text = read_file_text(argv[argc - 1], UDI_CONF_MAX_BYTES);
   if (!text)
      FATAL(UDI_EX_CONFIG, "%s: %s", argv[argc - 1], strerror(errno));
   if (udi_config_parse_text(&cfg, text, err, sizeof(err)) ||
       (validate && udi_config_validate(&cfg, err, sizeof(err)))) {
      printf("{\"error\":%s}\n", json_quote(err));
      return UDI_EX_CONFIG;
   }
   for (size_t i = 0; i < cfg.warnings.n; i++)
      fprintf(stderr, "%s\n", cfg.warnings.v[i]);
   printf("%s\n", udi_config_json(&cfg));
   return 0;
}
