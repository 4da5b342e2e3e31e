/* udi_env.h -- the container environment and the command line to exec (pure functions, unit tested).

   Precedence, lowest first: host environment (unless --clearenv), SHIFTER_IMAGEREQUEST/SHIFTER_IMAGE, image ENV,
   --env-file, --env, then per active module siteEnv/siteEnvAppend/siteEnvPrepend/siteEnvUnset, then the site-wide
   siteEnv/siteEnvAppend/siteEnvPrepend/siteEnvUnset.

   Memory policy: short-lived; never freed. */

#ifndef UDI_ENV_H
#define UDI_ENV_H

#include <stdbool.h>

#include "udi_misc.h"

/** Function prototypes **/

const char *env_get(const struct strv *env, const char *name);
int env_set(struct strv *env, const char *assignment);
int env_append(struct strv *env, const char *assignment);
int env_prepend(struct strv *env, const char *assignment);
void env_unset(struct strv *env, const char *name);
int env_apply_site(struct strv *env, const struct strv *set, const struct strv *append, const struct strv *prepend,
                   const struct strv *unset);
bool env_name_ok(const char *assignment);

int udi_calculate_args(struct strv *out, bool use_entry, const char *entry_override, const struct strv *user_args,
                       const struct strv *image_entry, const struct strv *image_cmd, char *err, size_t errlen);

#endif
