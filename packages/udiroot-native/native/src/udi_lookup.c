/* udi_lookup.c -- gateway lookup in an unprivileged child (see udi_lookup.h).

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <fcntl.h>
#include <munge.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "udi_lookup.h"
#include "udi_misc.h"

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

/* Split "http://host:port[/]" (host may be [v6]). Returns 0 or -1. */
int udi_parse_http_url(const char *url, char **host, char **port)
{
   const char *p, *end;
   if (!str_starts(url, "http://"))
      return -1;
   p = url + 7;
   end = p + strcspn(p, "/");
   if (*p == '[') {
      const char *rb = memchr(p, ']', (size_t)(end - p));
      if (!rb)
         return -1;
      *host = xstrndup(p + 1, (size_t)(rb - p - 1));
      p = rb + 1;
      *port = (*p == ':') ? xstrndup(p + 1, (size_t)(end - p - 1)) : xstrdup("80");
   } else {
      const char *colon = memchr(p, ':', (size_t)(end - p));
      *host = xstrndup(p, (size_t)((colon ? colon : end) - p));
      *port = colon ? xstrndup(colon + 1, (size_t)(end - colon - 1)) : xstrdup("80");
   }
   if (!**host || !**port || strspn(*port, "0123456789") != strlen(*port))
      return -1;
   if (*end && strcmp(end, "/"))
      return -1;
   return 0;
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

/* One attempt against url; returns the id or NULL (reason on stderr with --verbose; *not_found set on HTTP 404).
   Runs as the user. */
static char *try_gateway(const char *url, const char *request, int timeout_s, bool *not_found)
{
   char *host, *port, *buf;
   struct addrinfo hints, *ai = NULL;
   struct timespec deadline;
   size_t len = 0, rl = strlen(request), sent = 0;
   int fd = -1;
   if (udi_parse_http_url(url, &host, &port))
      return NULL;
   clock_gettime(CLOCK_MONOTONIC, &deadline);
   deadline.tv_sec += timeout_s > 0 ? timeout_s : 10;
   memset(&hints, 0, sizeof(hints));
   hints.ai_socktype = SOCK_STREAM;
   if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) {
      VERBOSE("gateway %s: cannot resolve %s", url, host);
      return NULL;
   }
   for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
      struct pollfd pfd;
      int err = 0;
      socklen_t el = sizeof(err);
      fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0)
         continue;
      if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
         close(fd);
         fd = -1;
         continue;
      }
      pfd.fd = fd;
      pfd.events = POLLOUT;
      if (poll(&pfd, 1, (int)(ms_left(&deadline) > 0 ? ms_left(&deadline) : 0)) != 1 ||
          getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err) {
         close(fd);
         fd = -1;
      }
   }
   freeaddrinfo(ai);
   if (fd < 0) {
      VERBOSE("gateway %s: cannot connect", url);
      return NULL;
   }
   while (sent < rl) {
      struct pollfd pfd = { fd, POLLOUT, 0 };
      ssize_t w;
      if (poll(&pfd, 1, (int)(ms_left(&deadline) > 0 ? ms_left(&deadline) : 0)) != 1)
         goto fail;
      w = send(fd, request + sent, rl - sent, MSG_NOSIGNAL);
      if (w < 0 && errno != EAGAIN && errno != EINTR)
         goto fail;
      if (w > 0)
         sent += (size_t)w;
   }
   buf = xmalloc(UDI_LOOKUP_MAX_RESPONSE + 1);
   for (;;) {
      struct pollfd pfd = { fd, POLLIN, 0 };
      ssize_t n;
      if (len >= UDI_LOOKUP_MAX_RESPONSE)
         goto fail;
      if (poll(&pfd, 1, (int)(ms_left(&deadline) > 0 ? ms_left(&deadline) : 0)) != 1) {
         VERBOSE("gateway %s: timed out", url);
         goto fail;
      }
      n = recv(fd, buf + len, UDI_LOOKUP_MAX_RESPONSE - len, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
         continue;
      if (n < 0)
         goto fail;
      if (n == 0)
         break;
      len += (size_t)n;
   }
   close(fd);
   buf[len] = '\0';
   {
      char *body = strstr(buf, "\r\n\r\n"), *id;
      int status = 0;
      if (!body || sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
         return NULL;
      if (status != 200) {
         if (status == 404)
            *not_found = true;
         VERBOSE("gateway %s: HTTP %d", url, status);
         return NULL;
      }
      *body = '\0';
      body += 4;
      for (char *h = buf; *h; h++)
         *h = (char)((*h >= 'A' && *h <= 'Z') ? *h + 32 : *h);
      if (strstr(buf, "\r\ntransfer-encoding: chunked") && dechunk(body)) {
         VERBOSE("gateway %s: malformed chunked body", url);
         return NULL;
      }
      id = udi_json_top_string(body, "id");
      if (!id || !*id || strspn(id, "0123456789abcdefABCDEF") != strlen(id))
         return NULL;
      return id;
   }
fail:
   close(fd);
   return NULL;
}

/* Resolve type:tag to an image id, or exit UDI_EX_UNAVAILABLE (no gateway answered) / UDI_EX_NOINPUT (a gateway
   answered 404 and none had the image). Preconditions: euid 0 (the child switches to the user), or already running
   as u without privilege (shifter-lookup, the submit-time entry point), where there is nothing to drop. */
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
   Z_ (pipe2(pfd, O_CLOEXEC));
   pid = fork();
   T_ (pid >= 0);
   if (pid == 0) {
      struct strv order = { 0 };
      bool not_found = false;
      close(pfd[0]);
      if (geteuid() == 0)
         udi_drop_to_user_nocheck_caps(u); // PRIV: child is the user from here on, before munge or network I/O
      else if (getuid() != u->uid)
         _exit(UDI_EX_NOPERM);
      strv_init(&order);
      for (size_t i = 0; i < c->imageGateway.n; i++)
         strv_push(&order, c->imageGateway.v[i]);
      srand((unsigned)(getpid() ^ time(NULL)));
      for (size_t i = order.n; i > 1; i--) { /* Fisher-Yates: spread the load of many nodes over gateways */
         size_t j = (size_t)rand() % i;
         char *t = order.v[i - 1];
         order.v[i - 1] = order.v[j];
         order.v[j] = t;
      }
      for (size_t i = 0; i < order.n; i++) {
         /* A munge credential can be used once: every attempt gets a fresh one, so a gateway that received it
            before failing cannot make the next attempt look like a replay. */
         char *cred = NULL, *request, *host, *port, *id;
         if (munge_encode(&cred, NULL, NULL, 0) != EMUNGE_SUCCESS || !cred) {
            fprintf(stderr, "%s: cannot get a munge credential (is munged running?)\n", udi_progname);
            _exit(UDI_EX_UNAVAILABLE);
         }
         if (udi_parse_http_url(order.v[i], &host, &port))
            continue;
         request = xasprintf("GET /api/lookup/%s/%s/%s/ HTTP/1.1\r\nHost: %s:%s\r\nauthentication: %s\r\n"
                             "Accept: application/json\r\nConnection: close\r\nUser-Agent: shifter-udiroot\r\n\r\n",
                             udi_url_escape(c->system), udi_url_escape(type), udi_url_escape(tag),
                             strchr(host, ':') ? xasprintf("[%s]", host) : host, port, cred);
         free(cred);
         id = try_gateway(order.v[i], request, c->gatewayTimeout, &not_found);
         if (id) {
            (void)!write(pfd[1], id, strlen(id));
            _exit(0);
         }
      }
      _exit(not_found ? UDI_EX_NOINPUT : UDI_EX_UNAVAILABLE);
   }
   close(pfd[1]);
   while ((n = read(pfd[0], idbuf + total, sizeof(idbuf) - 1 - (size_t)total)) > 0)
      total += n;
   close(pfd[0]);
   T_ (waitpid(pid, &status, 0) == pid);
   idbuf[total] = '\0';
   if (WIFEXITED(status) && WEXITSTATUS(status) == UDI_EX_NOINPUT)
      FATAL(UDI_EX_NOINPUT, "image %s:%s not found on the image gateway", type, tag);
   if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || total == 0)
      FATAL(UDI_EX_UNAVAILABLE, "failed to look up %s:%s on the image gateway(s)", type, tag);
   return xstrdup(idbuf);
}
