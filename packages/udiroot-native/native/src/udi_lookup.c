/* udi_lookup.c -- gateway lookup in an unprivileged child (see udi_lookup.h). TLS (https:// gateways) is OpenSSL's
   libssl, loaded with dlopen in the child when it first meets an https URL, after the drop to the user: the
   privileged process never maps it, and runs without https gateways pay nothing for it (bench/RESULTS.md).

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <munge.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "udi_lookup.h"
#include "udi_misc.h"

/** Macros **/

#ifndef UDI_LIBSSL
#define UDI_LIBSSL "libssl.so.3" /* the soname of the libssl the headers belong to (the Makefile finds it) */
#endif

/* The OpenSSL functions used here, called through pointers that tls_load fills with dlsym (libcrypto's come
   through libssl's handle, which depends on it). Each name below is redirected to its pointer, so the code reads as
   plain OpenSSL, header macros such as SSL_set_tlsext_host_name included. */
// clang-format off
#define UDI_OPENSSL_FUNCS(X)                                                                                           \
   X(TLS_client_method)                                                                                                \
   X(SSL_CTX_new) X(SSL_CTX_ctrl) X(SSL_CTX_set_verify) X(SSL_CTX_load_verify_locations)                               \
   X(SSL_CTX_set_default_verify_paths) X(SSL_CTX_free) X(SSL_CTX_set_options) X(SSL_new) X(SSL_set_fd)                 \
   X(SSL_get0_param) X(SSL_ctrl) X(SSL_set1_host) X(SSL_connect) X(SSL_get_error) X(SSL_get_verify_result)             \
   X(SSL_write) X(SSL_read) X(SSL_is_init_finished) X(SSL_shutdown) X(SSL_free)                                        \
   X(X509_VERIFY_PARAM_set1_ip_asc) X(X509_verify_cert_error_string) X(ERR_reason_error_string)                        \
   X(ERR_peek_last_error) X(ERR_get_error)
// clang-format on
#define UDI_OPENSSL_PTR(name) static __typeof__(&name) p_##name;
UDI_OPENSSL_FUNCS(UDI_OPENSSL_PTR)
#define TLS_client_method (*p_TLS_client_method)
#define SSL_CTX_new (*p_SSL_CTX_new)
#define SSL_CTX_ctrl (*p_SSL_CTX_ctrl)
#define SSL_CTX_set_verify (*p_SSL_CTX_set_verify)
#define SSL_CTX_load_verify_locations (*p_SSL_CTX_load_verify_locations)
#define SSL_CTX_set_default_verify_paths (*p_SSL_CTX_set_default_verify_paths)
#define SSL_new (*p_SSL_new)
#define SSL_set_fd (*p_SSL_set_fd)
#define SSL_get0_param (*p_SSL_get0_param)
#define SSL_ctrl (*p_SSL_ctrl)
#define SSL_set1_host (*p_SSL_set1_host)
#define SSL_connect (*p_SSL_connect)
#define SSL_get_error (*p_SSL_get_error)
#define SSL_get_verify_result (*p_SSL_get_verify_result)
#define SSL_write (*p_SSL_write)
#define SSL_read (*p_SSL_read)
#define SSL_is_init_finished (*p_SSL_is_init_finished)
#define SSL_shutdown (*p_SSL_shutdown)
#define SSL_free (*p_SSL_free)
#define SSL_CTX_free (*p_SSL_CTX_free)
#define SSL_CTX_set_options (*p_SSL_CTX_set_options)
#define X509_VERIFY_PARAM_set1_ip_asc (*p_X509_VERIFY_PARAM_set1_ip_asc)
#define X509_verify_cert_error_string (*p_X509_verify_cert_error_string)
#define ERR_reason_error_string (*p_ERR_reason_error_string)
#define ERR_peek_last_error (*p_ERR_peek_last_error)
#define ERR_get_error (*p_ERR_get_error)

/** Functions **/

/* Percent-escape everything but unreserved characters (so '/' and ':' in tags become %2F and %3A). */
char *udi_url_escape(const char *s)
{
   char *r = xmalloc(strlen(s) * 3 + 1), *w = r;
   for (; *s; s++) {
      unsigned char c = (unsigned char)*s;
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
          c == '.' || c == '~')
         *w++ = (char)c;
      else
         w += sprintf(w, "%%%02X", c);
   }
   *w = '\0';
   return r;
}

/* Split "http://host[:port][/]" or "https://host[:port][/]" (host may be [v6]; default port 80 or 443); *tls tells
   which. Returns 0 or -1. */
int udi_parse_gateway_url(const char *url, bool *tls, char **host, char **port)
{
   const char *p, *end, *defport;
   if (str_starts(url, "http://")) {
      *tls = false;
      p = url + 7;
      defport = "80";
   } else if (str_starts(url, "https://")) {
      *tls = true;
      p = url + 8;
      defport = "443";
   } else {
      return -1;
   }
   end = p + strcspn(p, "/");
   if (*p == '[') {
      const char *rb = memchr(p, ']', (size_t)(end - p));
      if (!rb)
         return -1;
      *host = xstrndup(p + 1, (size_t)(rb - p - 1));
      p = rb + 1;
      if (*p && *p != ':' && p != end)
         return -1;
      *port = (*p == ':') ? xstrndup(p + 1, (size_t)(end - p - 1)) : xstrdup(defport);
   } else {
      const char *colon = memchr(p, ':', (size_t)(end - p));
      *host = xstrndup(p, (size_t)((colon ? colon : end) - p));
      *port = colon ? xstrndup(colon + 1, (size_t)(end - colon - 1)) : xstrdup(defport);
   }
   if (!**host || !**port || strspn(*port, "0123456789") != strlen(*port))
      return -1;
   if (*end && strcmp(end, "/"))
      return -1;
   return 0;
}

/* Split "http://host[:port][/]" (host may be [v6]); https:// is refused. Returns 0 or -1. */
int udi_parse_http_url(const char *url, char **host, char **port)
{
   bool tls;
   return udi_parse_gateway_url(url, &tls, host, port) || tls ? -1 : 0;
}

/* Skip one JSON value starting at p (after blanks); returns the position after it or NULL if malformed. */
/* Skip one JSON value of any kind; NULL if malformed. */
static const char *skip_value(const char *p);

/* Skip JSON blanks. */
static const char *skip_ws(const char *p)
{
   while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
      p++;
   return p;
}

/* Skip one JSON string (p at its opening quote); NULL if unterminated. */
static const char *skip_string(const char *p)
{
   if (*p != '"')
      return NULL;
   for (p++; *p && *p != '"'; p++)
      if (*p == '\\' && !*++p)
         return NULL;
   return *p == '"' ? p + 1 : NULL;
}

static const char *skip_value(const char *p)
{
   p = skip_ws(p);
   if (*p == '"')
      return skip_string(p);
   if (*p == '{' || *p == '[') {
      char close = *p == '{' ? '}' : ']';
      p = skip_ws(p + 1);
      if (*p == close)
         return p + 1;
      for (;;) {
         if (close == '}') {
            p = skip_string(skip_ws(p));
            if (!p || *(p = skip_ws(p)) != ':')
               return NULL;
            p++;
         }
         p = skip_value(p);
         if (!p)
            return NULL;
         p = skip_ws(p);
         if (*p == ',') {
            p++;
            continue;
         }
         return *p == close ? p + 1 : NULL;
      }
   }
   if (!*p)
      return NULL;
   while (*p && !strchr(",}] \t\r\n", *p))
      p++;
   return p;
}

/* The string value of a top-level key of a JSON object (simple escapes decoded), or NULL. Nested objects are
   skipped, so a nested "id" cannot be mistaken for the image id. */
char *udi_json_top_string(const char *json, const char *key)
{
   const char *p = skip_ws(json);
   if (*p != '{')
      return NULL;
   p = skip_ws(p + 1);
   while (*p == '"') {
      const char *kend = skip_string(p), *v;
      bool match;
      if (!kend)
         return NULL;
      match = (size_t)(kend - p - 2) == strlen(key) && !strncmp(p + 1, key, strlen(key));
      p = skip_ws(kend);
      if (*p != ':')
         return NULL;
      v = skip_ws(p + 1);
      if (match && *v == '"') {
         const char *vend = skip_string(v);
         char *out, *w;
         if (!vend)
            return NULL;
         out = w = xmalloc((size_t)(vend - v));
         for (const char *s = v + 1; s < vend - 1; s++) {
            if (*s == '\\') {
               s++;
               *w++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s;
            } else {
               *w++ = *s;
            }
         }
         *w = '\0';
         return out;
      }
      p = skip_value(v);
      if (!p)
         return NULL;
      p = skip_ws(p);
      if (*p == ',')
         p = skip_ws(p + 1);
   }
   return NULL;
}

/* Decode a chunked HTTP/1.1 body in place; returns 0 or -1 if malformed. */
static int dechunk(char *body)
{
   char *r = body, *w = body;
   for (;;) {
      char *end;
      unsigned long n = strtoul(r, &end, 16);
      if (end == r)
         return -1;
      r = strstr(end, "\r\n");
      if (!r)
         return -1;
      r += 2;
      if (n == 0)
         break;
      if (strlen(r) < n + 2)
         return -1;
      memmove(w, r, n);
      w += n;
      r += n + 2;
   }
   *w = '\0';
   return 0;
}

/* Milliseconds until deadline (negative when past). */
static long ms_left(const struct timespec *deadline)
{
   struct timespec now;
   clock_gettime(CLOCK_MONOTONIC, &now);
   return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Wait until fd is ready for events or the deadline passes. Returns 0 when ready, -1 on timeout or error. */
static int wait_fd(int fd, short events, const struct timespec *deadline)
{
   struct pollfd pfd = { fd, events, 0 };
   long ms = ms_left(deadline);
   return poll(&pfd, 1, (int)(ms > 0 ? ms : 0)) == 1 ? 0 : -1;
}

/* One connection to a gateway: a non-blocking socket, with TLS on top for https. */
struct gw_conn {
   int fd;
   SSL *ssl;                        /* NULL for http:// */
   const struct timespec *deadline; /* end of this attempt */
};

/* After a non-blocking TLS call returned rc, wait for what OpenSSL needs. Returns 0 to retry, -1 to give up. */
static int tls_wait(struct gw_conn *cn, int rc)
{
   switch (SSL_get_error(cn->ssl, rc)) {
   case SSL_ERROR_WANT_READ: return wait_fd(cn->fd, POLLIN, cn->deadline);
   case SSL_ERROR_WANT_WRITE: return wait_fd(cn->fd, POLLOUT, cn->deadline);
   default: return -1;
   }
}

/* Send all of buf. Returns 0 or -1. */
static int conn_send(struct gw_conn *cn, const char *buf, size_t len)
{
   size_t sent = 0;
   while (sent < len) {
      if (cn->ssl) {
         int w = SSL_write(cn->ssl, buf + sent, (int)(len - sent));
         if (w > 0)
            sent += (size_t)w;
         else if (tls_wait(cn, w))
            return -1;
      } else {
         ssize_t w;
         if (wait_fd(cn->fd, POLLOUT, cn->deadline))
            return -1;
         w = send(cn->fd, buf + sent, len - sent, MSG_NOSIGNAL);
         if (w < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
         if (w > 0)
            sent += (size_t)w;
      }
   }
   return 0;
}

/* Receive up to len bytes. Returns the count, 0 at the end of the stream (a TLS close_notify), or -1 on error or
   timeout (*timed_out set for the latter). */
static ssize_t conn_recv(struct gw_conn *cn, char *buf, size_t len, bool *timed_out)
{
   for (;;) {
      if (cn->ssl) {
         int n = SSL_read(cn->ssl, buf, (int)len), e;
         if (n > 0)
            return n;
         e = SSL_get_error(cn->ssl, n);
         if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
         if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return -1;
         if (tls_wait(cn, n)) {
            *timed_out = true;
            return -1;
         }
      } else {
         ssize_t n;
         if (wait_fd(cn->fd, POLLIN, cn->deadline)) {
            *timed_out = true;
            return -1;
         }
         n = recv(cn->fd, buf, len, 0);
         if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
         return n;
      }
   }
}

/* Load libssl (system library directories only: the process is setuid, so LD_LIBRARY_PATH is ignored) and resolve
   the functions above. Returns 0, or -1 after printing why (once). */
static int tls_load(void)
{
   static int state; /* 0 not tried, 1 loaded, -1 failed */
   void *h;
   if (state)
      return state > 0 ? 0 : -1;
   state = -1;
   h = dlopen(UDI_LIBSSL, RTLD_NOW | RTLD_LOCAL);
   if (!h) {
      WARN("https gateways need OpenSSL's %s: %s", UDI_LIBSSL, dlerror());
      return -1;
   }
#define UDI_OPENSSL_SYM(name)                                                                                          \
   if (!(*(void **)&p_##name = dlsym(h, #name))) {                                                                     \
      WARN("%s has no %s", UDI_LIBSSL, #name);                                                                         \
      return -1;                                                                                                       \
   }
#ifndef UDI_STATIC_ANALYSIS /* cppcheck (lint.sh) cannot expand this list of redirected names */
   UDI_OPENSSL_FUNCS(UDI_OPENSSL_SYM)
#endif
   state = 1;
   return 0;
}

/* The TLS client context of this lookup, made on first use: TLS 1.2 or newer, peer verification on, trust anchors
   from gatewayCaPath (a PEM file, read whole, or a directory hashed by `openssl rehash`, read lazily: only the
   issuers a chain needs) or else OpenSSL's default store (on Debian the whole system bundle plus /etc/ssl/certs).
   Runs as the user, so the CA path must be readable by users (it holds only public certificates). Returns NULL,
   having said why (once), when gatewayCaPath cannot be used. */
static SSL_CTX *tls_context(const struct udi_config *c)
{
   static SSL_CTX *ctx;
   static bool failed;
   struct stat st;
   if (ctx || failed)
      return ctx;
   failed = true;
   ctx = SSL_CTX_new(TLS_client_method());
   if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
      fprintf(stderr, "%s: cannot set up TLS: %s\n", udi_progname, ERR_reason_error_string(ERR_get_error()));
      return ctx = NULL;
   }
   SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
   /* Some TLS terminators close without close_notify; the end of the stream is then taken as the end of the answer,
      which try_gateway checks against Content-Length or the chunked framing (a truncated answer is refused). */
   SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
   if (c->gatewayCaPath) {
      bool dir = stat(c->gatewayCaPath, &st) == 0 && S_ISDIR(st.st_mode);
      if (access(c->gatewayCaPath, dir ? R_OK | X_OK : R_OK) != 0) {
         fprintf(stderr, "%s: gatewayCaPath %s: %s (it must be readable by users)\n", udi_progname, c->gatewayCaPath,
                 strerror(errno));
         SSL_CTX_free(ctx);
         return ctx = NULL;
      }
      if (SSL_CTX_load_verify_locations(ctx, dir ? NULL : c->gatewayCaPath, dir ? c->gatewayCaPath : NULL) != 1) {
         fprintf(stderr, "%s: gatewayCaPath %s: no PEM certificate could be loaded (%s)\n", udi_progname,
                 c->gatewayCaPath, ERR_reason_error_string(ERR_get_error()));
         SSL_CTX_free(ctx);
         return ctx = NULL;
      }
   } else {
      SSL_CTX_set_default_verify_paths(ctx);
   }
   failed = false;
   return ctx;
}

/* Start TLS on cn->fd for host (a name: SNI and name check; an address: address check). Returns 0, or -1 with
   *untrusted set when the certificate did not verify or OpenSSL cannot be loaded (the reason is always printed: a
   site must see it). */
static int tls_start(struct gw_conn *cn, const struct udi_config *c, const char *url, const char *host, bool *untrusted)
{
   unsigned char addr[16];
   int rc;
   if (tls_load() || !tls_context(c)) {
      *untrusted = true;
      return -1;
   }
   cn->ssl = SSL_new(tls_context(c));
   if (!cn->ssl || SSL_set_fd(cn->ssl, cn->fd) != 1)
      return -1;
   if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) {
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(cn->ssl), host) != 1)
         return -1;
   } else if (SSL_set_tlsext_host_name(cn->ssl, host) != 1 || SSL_set1_host(cn->ssl, host) != 1) {
      return -1;
   }
   while ((rc = SSL_connect(cn->ssl)) != 1) {
      long vr = SSL_get_verify_result(cn->ssl);
      if (rc <= 0 &&
          (SSL_get_error(cn->ssl, rc) == SSL_ERROR_WANT_READ || SSL_get_error(cn->ssl, rc) == SSL_ERROR_WANT_WRITE)) {
         if (tls_wait(cn, rc) == 0)
            continue;
         VERBOSE("gateway %s: timed out during the TLS handshake", url);
         return -1;
      }
      if (vr != X509_V_OK) {
         *untrusted = true;
         WARN("gateway %s: TLS certificate not trusted: %s (trust anchors: %s)", url, X509_verify_cert_error_string(vr),
              c->gatewayCaPath ? c->gatewayCaPath : "the system store");
      } else {
         VERBOSE("gateway %s: TLS handshake failed: %s", url, ERR_reason_error_string(ERR_peek_last_error()));
      }
      return -1;
   }
   return 0;
}

/* Close a connection (TLS close_notify first when the handshake completed). */
static void conn_close(struct gw_conn *cn)
{
   if (cn->ssl) {
      if (SSL_is_init_finished(cn->ssl))
         SSL_shutdown(cn->ssl);
      SSL_free(cn->ssl);
      cn->ssl = NULL;
   }
   if (cn->fd >= 0)
      close(cn->fd);
   cn->fd = -1;
}

/* Outcome of one attempt beyond "no id": what the caller reports when no gateway answers. */
struct attempt_flags {
   bool not_found; /* a gateway answered 404 */
   bool untrusted; /* a gateway's TLS certificate did not verify (or OpenSSL is missing) */
};

/* One attempt against url; returns the id or NULL (reason on stderr with --verbose, always for an untrusted
   certificate; flags set for a 404 or an untrusted certificate). Runs as the user. */
static char *try_gateway(const struct udi_config *c, const char *url, const char *request, struct attempt_flags *fl)
{
   char *host, *port, *buf;
   struct addrinfo hints, *ai = NULL;
   struct timespec deadline;
   struct gw_conn cn = { -1, NULL, &deadline };
   size_t len = 0;
   bool tls, timed_out = false;
   if (udi_parse_gateway_url(url, &tls, &host, &port))
      return NULL;
   clock_gettime(CLOCK_MONOTONIC, &deadline);
   deadline.tv_sec += c->gatewayTimeout > 0 ? c->gatewayTimeout : 10;
   memset(&hints, 0, sizeof(hints));
   hints.ai_socktype = SOCK_STREAM;
   if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) {
      VERBOSE("gateway %s: cannot resolve %s", url, host);
      return NULL;
   }
   for (struct addrinfo *a = ai; a && cn.fd < 0; a = a->ai_next) {
      int err = 0;
      socklen_t el = sizeof(err);
      cn.fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
      if (cn.fd < 0)
         continue;
      if ((connect(cn.fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) ||
          wait_fd(cn.fd, POLLOUT, &deadline) || getsockopt(cn.fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err) {
         close(cn.fd);
         cn.fd = -1;
      }
   }
   freeaddrinfo(ai);
   if (cn.fd < 0) {
      VERBOSE("gateway %s: cannot connect", url);
      return NULL;
   }
   if (tls && tls_start(&cn, c, url, host, &fl->untrusted))
      goto fail;
   if (conn_send(&cn, request, strlen(request)))
      goto fail;
   buf = xmalloc(UDI_LOOKUP_MAX_RESPONSE + 1);
   for (;;) {
      ssize_t n;
      if (len >= UDI_LOOKUP_MAX_RESPONSE)
         goto fail;
      n = conn_recv(&cn, buf + len, UDI_LOOKUP_MAX_RESPONSE - len, &timed_out);
      if (n < 0) {
         if (timed_out)
            VERBOSE("gateway %s: timed out", url);
         goto fail;
      }
      if (n == 0)
         break;
      len += (size_t)n;
   }
   conn_close(&cn);
   buf[len] = '\0';
   {
      char *body = strstr(buf, "\r\n\r\n"), *id, *cl;
      int status = 0;
      if (!body || sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
         return NULL;
      if (status != 200) {
         if (status == 404)
            fl->not_found = true;
         VERBOSE("gateway %s: HTTP %d", url, status);
         return NULL;
      }
      *body = '\0';
      body += 4;
      for (char *h = buf; *h; h++)
         *h = (char)((*h >= 'A' && *h <= 'Z') ? *h + 32 : *h);
      if (strstr(buf, "\r\ntransfer-encoding: chunked")) {
         if (dechunk(body)) {
            VERBOSE("gateway %s: malformed chunked body", url);
            return NULL;
         }
      } else if ((cl = strstr(buf, "\r\ncontent-length:")) && strlen(body) < strtoul(cl + 17, NULL, 10)) {
         /* A TLS peer may close without close_notify (accepted, see tls_context): a short body is a failure. */
         VERBOSE("gateway %s: answer shorter than its Content-Length", url);
         return NULL;
      }
      id = udi_json_top_string(body, "id");
      if (!id || !*id || strspn(id, "0123456789abcdefABCDEF") != strlen(id))
         return NULL;
      return id;
   }
fail:
   conn_close(&cn);
   return NULL;
}

/* Resolve type:tag as the calling process (no fork, no identity change: the caller must already be the user whose
   munge credential is to be sent, e.g. a workload manager plugin at submit time). Tries every imageGateway URL in
   a shuffled order with a fresh credential each. Returns 0 with *id set, or UDI_EX_NOINPUT (a gateway answered 404
   and none had the image), UDI_EX_CONFIG (no gateway answered, and a TLS certificate did not verify or
   gatewayCaPath or libssl could not be used), UDI_EX_UNAVAILABLE (no gateway answered). Never exits; messages go
   to stderr; the SIGPIPE disposition is restored before returning. */
int udi_lookup_as_caller(const struct udi_config *c, const char *type, const char *tag, char **id)
{
   struct strv order = { 0 };
   struct attempt_flags fl = { false, false };
   unsigned seed = (unsigned)(getpid() ^ time(NULL));
   void (*old_sigpipe)(int) = signal(SIGPIPE, SIG_IGN); /* a TLS write to a closed socket must fail, not kill */
   int rc = -1;
   *id = NULL;
   strv_init(&order);
   for (size_t i = 0; i < c->imageGateway.n; i++)
      strv_push(&order, c->imageGateway.v[i]);
   for (size_t i = order.n; i > 1; i--) { /* Fisher-Yates: spread the load of many nodes over gateways */
      size_t j = (size_t)rand_r(&seed) % i;
      char *t = order.v[i - 1];
      order.v[i - 1] = order.v[j];
      order.v[j] = t;
   }
   for (size_t i = 0; i < order.n && !*id; i++) {
      /* A munge credential can be used once: every attempt gets a fresh one, so a gateway that received it
         before failing cannot make the next attempt look like a replay. */
      char *cred = NULL, *request, *host, *port;
      bool tls;
      if (munge_encode(&cred, NULL, NULL, 0) != EMUNGE_SUCCESS || !cred) {
         fprintf(stderr, "%s: cannot get a munge credential (is munged running?)\n", udi_progname);
         rc = UDI_EX_UNAVAILABLE;
         break;
      }
      if (udi_parse_gateway_url(order.v[i], &tls, &host, &port)) {
         WARN("imageGateway %s is not http://host[:port] or https://host[:port]; skipped", order.v[i]);
         free(cred);
         continue;
      }
      request = xasprintf("GET /api/lookup/%s/%s/%s/ HTTP/1.1\r\nHost: %s:%s\r\nauthentication: %s\r\n"
                          "Accept: application/json\r\nConnection: close\r\nUser-Agent: shifter-udiroot\r\n\r\n",
                          udi_url_escape(c->system), udi_url_escape(type), udi_url_escape(tag),
                          strchr(host, ':') ? xasprintf("[%s]", host) : host, port, cred);
      free(cred);
      *id = try_gateway(c, order.v[i], request, &fl);
   }
   signal(SIGPIPE, old_sigpipe);
   if (*id)
      return 0;
   if (rc >= 0)
      return rc;
   return fl.not_found ? UDI_EX_NOINPUT : fl.untrusted ? UDI_EX_CONFIG : UDI_EX_UNAVAILABLE;
}

/* Resolve type:tag to an image id, or exit UDI_EX_UNAVAILABLE (no gateway answered) / UDI_EX_NOINPUT (a gateway
   answered 404 and none had the image) / UDI_EX_CONFIG (none answered and an https one was not trusted).
   Preconditions: euid 0 (the child switches to the user), or already running as u without privilege
   (shifter-lookup, the submit-time entry point), where there is nothing to drop. */
char *udi_lookup_image(const struct udi_config *c, const struct udi_user *u, const char *type, const char *tag)
{
   int pfd[2], status;
   pid_t pid;
   char idbuf[256];
   ssize_t n, total = 0;
   if (c->imageGateway.n == 0)
      FATAL(UDI_EX_CONFIG, "no imageGateway configured; use --image=id:<id>");
   if (!c->system)
      FATAL(UDI_EX_CONFIG, "system is not set in udiRoot.conf; cannot look up images");
   Z_(pipe2(pfd, O_CLOEXEC));
   pid = fork();
   T_(pid >= 0);
   if (pid == 0) {
      char *id = NULL;
      int rc;
      close(pfd[0]);
      if (geteuid() == 0)
         udi_drop_to_user_nocheck_caps(u); // PRIV: child is the user from here on, before munge, TLS or network I/O
      else if (getuid() != u->uid)
         _exit(UDI_EX_NOPERM);
      rc = udi_lookup_as_caller(c, type, tag, &id);
      if (rc == 0)
         (void)!write(pfd[1], id, strlen(id));
      _exit(rc);
   }
   close(pfd[1]);
   while ((n = read(pfd[0], idbuf + total, sizeof(idbuf) - 1 - (size_t)total)) > 0)
      total += n;
   close(pfd[0]);
   T_(waitpid(pid, &status, 0) == pid);
   idbuf[total] = '\0';
   if (WIFEXITED(status) && WEXITSTATUS(status) == UDI_EX_NOINPUT)
      FATAL(UDI_EX_NOINPUT, "image %s:%s not found on the image gateway", type, tag);
   if (WIFEXITED(status) && WEXITSTATUS(status) == UDI_EX_CONFIG)
      FATAL(UDI_EX_CONFIG,
            "failed to look up %s:%s: no image gateway could be trusted; check imageGateway and "
            "gatewayCaPath in udiRoot.conf",
            type, tag);
   if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || total == 0)
      FATAL(UDI_EX_UNAVAILABLE, "failed to look up %s:%s on the image gateway(s)", type, tag);
   return xstrdup(idbuf);
}
