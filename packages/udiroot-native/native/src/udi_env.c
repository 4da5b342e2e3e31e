/* udi_env.c -- environment edits and entrypoint/command selection (see udi_env.h).

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <string.h>

#include "udi_env.h"

/** Functions **/

static size_t name_len(const char *assignment)
{
   const char *eq = strchr(assignment, '=');
   return eq ? (size_t)(eq - assignment) : strlen(assignment);
}

/* Index of the variable whose name is the first nl bytes of name, or -1. */
static long find(const struct strv *env, const char *name, size_t nl)
{
   for (size_t i = 0; i < env->n; i++)
      if (!strncmp(env->v[i], name, nl) && env->v[i][nl] == '=')
         return (long)i;
   return -1;
}

/* Whether assignment is NAME=value with a non-empty NAME free of '=' (the value may be empty). */
bool env_name_ok(const char *assignment)
{
   const char *eq = strchr(assignment, '=');
   return eq && eq != assignment;
}

/* Value of name in env, or NULL. */
const char *env_get(const struct strv *env, const char *name)
{
   long i = find(env, name, strlen(name));
   return i < 0 ? NULL : strchr(env->v[i], '=') + 1;
}

/* Set NAME=value, replacing an earlier NAME. Returns 0, or -1 if assignment is not NAME=value. */
int env_set(struct strv *env, const char *assignment)
{
   long i;
   if (!env_name_ok(assignment))
      return -1;
   i = find(env, assignment, name_len(assignment));
   if (i >= 0)
      env->v[i] = xstrdup(assignment);
   else
      strv_push(env, assignment);
   return 0;
}

/* Join value onto NAME with ':' before (prepend) or after the old value; plain set when unset or empty. */
static int env_join(struct strv *env, const char *assignment, bool prepend)
{
   size_t nl = name_len(assignment);
   long i;
   if (!env_name_ok(assignment))
      return -1;
   i = find(env, assignment, nl);
   if (i < 0 || env->v[i][nl + 1] == '\0')
      return env_set(env, assignment);
   env->v[i] =
      prepend ? xasprintf("%s:%s", assignment, env->v[i] + nl + 1) : xasprintf("%s:%s", env->v[i], assignment + nl + 1);
   return 0;
}

/* NAME=value: NAME becomes old:value (or value when unset or empty). */
int env_append(struct strv *env, const char *assignment)
{
   return env_join(env, assignment, false);
}

/* NAME=value: NAME becomes value:old (or value when unset or empty). */
int env_prepend(struct strv *env, const char *assignment)
{
   return env_join(env, assignment, true);
}

/* Remove every definition of name. */
void env_unset(struct strv *env, const char *name)
{
   long i;
   while ((i = find(env, name, strlen(name))) >= 0)
      strv_remove(env, (size_t)i);
}

/* Apply one set/append/prepend/unset group in that order (a module's or the site's). Returns 0 or -1 on a
   malformed assignment (configuration error). */
int env_apply_site(struct strv *env, const struct strv *set, const struct strv *append, const struct strv *prepend,
                   const struct strv *unset)
{
   for (size_t i = 0; set && i < set->n; i++)
      if (env_set(env, set->v[i]))
         return -1;
   for (size_t i = 0; append && i < append->n; i++)
      if (env_append(env, append->v[i]))
         return -1;
   for (size_t i = 0; prepend && i < prepend->n; i++)
      if (env_prepend(env, prepend->v[i]))
         return -1;
   for (size_t i = 0; unset && i < unset->n; i++)
      env_unset(env, unset->v[i]);
   return 0;
}

/* Choose the argv to exec (upstream's calculate_args).
   Without --entrypoint: the user's args, else /bin/sh; image ENTRY and CMD are ignored.
   With --entrypoint: the entry is entry_override (one word) or the image ENTRY (error if none); the args are the
   user's args, else the image CMD only when no override was given.
   Returns 0, or -1 with a message in err. */
int udi_calculate_args(struct strv *out, bool use_entry, const char *entry_override, const struct strv *user_args,
                       const struct strv *image_entry, const struct strv *image_cmd, char *err, size_t errlen)
{
   strv_init(out);
   if (!use_entry) {
      if (user_args && user_args->n)
         for (size_t i = 0; i < user_args->n; i++)
            strv_push(out, user_args->v[i]);
      else
         strv_push(out, "/bin/sh");
      return 0;
   }
   if (entry_override && *entry_override) {
      strv_push(out, entry_override);
   } else {
      if (!image_entry || image_entry->n == 0) {
         snprintf(err, errlen, "image does not have a defined entrypoint");
         return -1;
      }
      for (size_t i = 0; i < image_entry->n; i++)
         strv_push(out, image_entry->v[i]);
   }
   if (user_args && user_args->n) {
      for (size_t i = 0; i < user_args->n; i++)
         strv_push(out, user_args->v[i]);
   } else if (!(entry_override && *entry_override) && image_cmd) {
      for (size_t i = 0; i < image_cmd->n; i++)
         strv_push(out, image_cmd->v[i]);
   }
   return 0;
}
