/* Print N fresh munge credentials, one per line, encoded through libmunge against SOCKET (argv[2], optional).
 * Used by the gateway benchmark to generate every request's credential ahead of the run. */
#include <munge.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
   if (argc < 2) {
      fprintf(stderr, "usage: gen-credentials N [SOCKET]\n");
      return 64;
   }
   long count = strtol(argv[1], NULL, 10);
   munge_ctx_t ctx = munge_ctx_create();
   if (ctx == NULL)
      return 71;
   if (argc > 2 && munge_ctx_set(ctx, MUNGE_OPT_SOCKET, argv[2]) != EMUNGE_SUCCESS)
      return 78;
   for (long i = 0; i < count; i++) {
      char *cred = NULL;
      munge_err_t err = munge_encode(&cred, ctx, NULL, 0);
      if (err != EMUNGE_SUCCESS) {
         fprintf(stderr, "munge_encode: %s\n", munge_strerror(err));
         return 69;
      }
      puts(cred);
      free(cred);
   }
   munge_ctx_destroy(ctx);
   return 0;
}
