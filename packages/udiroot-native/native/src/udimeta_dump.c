/* udimeta_dump.c -- test/debug tool (never installed setuid): parse the .meta file given as argv[1] with the
   runtime's reader and print {"format","entrypoint","cmd","workdir","env","userACL","groupACL","user"} as JSON,
   or {"error":…} and exit UDI_EX_DATAERR. Used to check the C reader against the shared vectors and the
   TypeScript reader.

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "udi_image.h"
#include "udi_misc.h"

/** Functions **/

/* Print `,"key":[…]` (or null), items as strings or as bare numbers. */
static void print_list(const char *key, const struct strv *sv, bool null_if_empty, bool numbers)
{
   printf(",\"%s\":", key);
   if (null_if_empty && sv->n == 0) {
      printf("null");
      return;
   }
   printf("[");
   for (size_t i = 0; i < sv->n; i++)
      printf("%s%s", i ? "," : "", numbers ? sv->v[i] : json_quote(sv->v[i]));
   printf("]");
}

/* Entry point: parse, print JSON, exit 0 or UDI_EX_DATAERR. */
int main(int argc, char **argv)
{
   struct udi_meta m;
   char err[256], *text;
   udi_progname = "udimeta-dump";
   if (argc != 2)
      FATAL(UDI_EX_USAGE, "usage: udimeta-dump FILE");
   text = read_file_text(argv[1], UDI_META_MAX_BYTES);
   if (!text)
      FATAL(UDI_EX_NOINPUT, "%s: %s", argv[1], strerror(errno));
   if (udi_meta_parse_text(&m, text, err, sizeof(err))) {
      printf("{\"error\":%s}\n", json_quote(err));
      return UDI_EX_DATAERR;
   }
   printf("{\"format\":%s", json_quote(m.format ? m.format : ""));
   print_list("entrypoint", &m.entry, true, false);
   print_list("cmd", &m.cmd, true, false);
   printf(",\"workdir\":%s", m.workdir ? json_quote(m.workdir) : "null");
   print_list("env", &m.env, false, false);
   print_list("userACL", &m.useracl, false, true);
   print_list("groupACL", &m.groupacl, false, true);
   printf(",\"user\":%s}\n", m.user ? json_quote(m.user) : "null");
   return 0;
}
