/* udi_lookup.h -- resolve `type:tag` to an image id through the image gateway.

   The lookup runs in a forked child that drops to the user (groups, gid, uid; verified) before any network I/O or
   munge call, so the credential is the user's and a hostile gateway talks only to an unprivileged process. The
   child speaks minimal HTTP/1.1 to each `imageGateway` URL (http://host[:port], or https://host[:port] over TLS 1.2+
   with OpenSSL, the certificate verified against `gatewayCaPath` or the system trust store, name or address
   checked) in a shuffled order, `gatewayTimeout` seconds each, sending
   `GET /api/lookup/<system>/<type>/<tag-url-escaped>/` with the header `authentication: <munge credential>`, and
   returns the `"id"` field of a 200 JSON answer through a pipe. No TLS code runs with privileges.

   Memory policy: short-lived; never freed. */

#ifndef UDI_LOOKUP_H
#define UDI_LOOKUP_H

#include "udi_config.h"
#include "udi_privs.h"

/** Macros **/

#define UDI_LOOKUP_MAX_RESPONSE (256 * 1024) /* a larger gateway answer is treated as a failure */

/** Function prototypes **/

char *udi_lookup_image(const struct udi_config *c, const struct udi_user *u, const char *type, const char *tag);
int udi_lookup_as_caller(const struct udi_config *c, const char *type, const char *tag, char **id);
char *udi_url_escape(const char *s);
char *udi_json_top_string(const char *json, const char *key);
int udi_parse_http_url(const char *url, char **host, char **port);
int udi_parse_gateway_url(const char *url, bool *tls, char **host, char **port);

#endif
