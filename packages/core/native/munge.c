/*
 * munge.c: a small N-API binding of libmunge for the image gateway.
 *
 * Purpose: verify (and, for tests and clients, create) munge credentials in-process instead of running
 * `unmunge` once per request. Each call talks to munged over its Unix socket; that blocking round trip runs on
 * libuv's thread pool (napi_create_async_work), so the event loop never waits on munged.
 *
 * Exports (both return Promises):
 *   encode(payload: Buffer, socketPath: string, ttl: number) -> string credential
 *   decode(credential: string, socketPath: string) -> { uid, gid, payload: Buffer, encodeTime, decodeTime }
 * A rejection is an Error with `mungeCode` (libmunge's munge_err_t) and `mungeMessage`; the TypeScript wrapper
 * maps codes to Shifter's error catalogue.
 *
 * Memory policy: every request owns one heap struct, freed in its complete callback after the Promise settles;
 * libmunge buffers are released with free() as its documentation requires. A munge context is created per call
 * (contexts are not shared across threads).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <munge.h>
#include <node_api.h>

/** Macros **/

/* NAPI_CALL: evaluate an N-API call; on failure throw a JS error naming the call and return NULL. */
#define NAPI_CALL(env, call)                                                                                           \
  do {                                                                                                                 \
    if ((call) != napi_ok) {                                                                                           \
      napi_throw_error((env), NULL, "shifter munge addon: " #call " failed");                                          \
      return NULL;                                                                                                     \
    }                                                                                                                  \
  } while (0)

/* Longest socket path accepted (sun_path is 108 bytes on Linux). */
#define MAX_SOCKET_PATH 108
/* Largest payload or credential accepted: munge's own limit on a message is far below this. */
#define MAX_INPUT_BYTES (1024 * 1024)

/** Types **/

typedef enum { OP_ENCODE, OP_DECODE } op_t;

/* One encode or decode request, from the JS call to the settled Promise. */
typedef struct {
  op_t op;                          /* which libmunge call to make */
  napi_async_work work;             /* the queued work item */
  napi_deferred deferred;           /* settles the returned Promise */
  char socket[MAX_SOCKET_PATH + 1]; /* munged socket path, NUL-terminated */
  char *input;                      /* encode: payload bytes; decode: credential string (NUL-terminated); malloc'd */
  size_t input_len;                 /* length of input in bytes (without the NUL) */
  int ttl;                          /* encode: credential lifetime in seconds; 0 = munged's default */
  munge_err_t err;                  /* result code of the libmunge call */
  char message[256];                /* libmunge's error text, copied before the context is destroyed */
  char *cred;                       /* encode result, malloc'd by libmunge */
  void *payload;                    /* decode result payload, malloc'd by libmunge (may be NULL) */
  int payload_len;                  /* its length */
  uid_t uid;                        /* decode: encoder's uid */
  gid_t gid;                        /* decode: encoder's gid */
  time_t encode_time;               /* decode: when the credential was encoded */
  time_t decode_time;               /* decode: when it was decoded */
} request_t;

/** Function prototypes **/

static void execute(napi_env env, void *data);
static void complete(napi_env env, napi_status status, void *data);
static void free_request(request_t *req);
static napi_value queue_request(napi_env env, request_t *req);

/** Functions **/

/*
 * Runs on a thread-pool thread. On entry req holds copies of every input; nothing here touches JS values.
 */
static void execute(napi_env env, void *data)
{
  (void)env;
  request_t *req = data;
  munge_ctx_t ctx = munge_ctx_create();
  if (ctx == NULL) {
    req->err = EMUNGE_NO_MEMORY;
    snprintf(req->message, sizeof req->message, "%s", "cannot create a munge context");
    return;
  }
  req->err = munge_ctx_set(ctx, MUNGE_OPT_SOCKET, req->socket);
  if (req->err == EMUNGE_SUCCESS && req->op == OP_ENCODE && req->ttl > 0) {
    req->err = munge_ctx_set(ctx, MUNGE_OPT_TTL, req->ttl);
  }
  if (req->err == EMUNGE_SUCCESS) {
    if (req->op == OP_ENCODE) {
      req->err = munge_encode(&req->cred, ctx, req->input, (int)req->input_len);
    } else {
      req->err = munge_decode(req->input, ctx, &req->payload, &req->payload_len, &req->uid, &req->gid);
      /* Times are also known for expired/replayed credentials; fetch them regardless, ignoring failures. */
      (void)munge_ctx_get(ctx, MUNGE_OPT_ENCODE_TIME, &req->encode_time);
      (void)munge_ctx_get(ctx, MUNGE_OPT_DECODE_TIME, &req->decode_time);
    }
  }
  if (req->err != EMUNGE_SUCCESS) {
    const char *text = munge_ctx_strerror(ctx);
    snprintf(req->message, sizeof req->message, "%s", text ? text : munge_strerror(req->err));
  }
  munge_ctx_destroy(ctx);
}

/* Set a numeric property on obj; returns napi_ok or the failing status. */
static napi_status set_number(napi_env env, napi_value obj, const char *name, double value)
{
  napi_value v;
  napi_status s = napi_create_double(env, value, &v);
  if (s != napi_ok)
    return s;
  return napi_set_named_property(env, obj, name, v);
}

/*
 * Runs on the JS thread after execute. Settles the Promise and frees the request.
 */
static void complete(napi_env env, napi_status status, void *data)
{
  request_t *req = data;
  napi_value result = NULL;
  int ok = status == napi_ok && req->err == EMUNGE_SUCCESS;

  if (ok && req->op == OP_ENCODE) {
    if (napi_create_string_utf8(env, req->cred, NAPI_AUTO_LENGTH, &result) != napi_ok)
      ok = 0;
  } else if (ok) {
    napi_value payload;
    void *copy = NULL;
    if (napi_create_object(env, &result) != napi_ok ||
        napi_create_buffer_copy(env, (size_t)req->payload_len, req->payload ? req->payload : "", &copy, &payload) !=
            napi_ok ||
        napi_set_named_property(env, result, "payload", payload) != napi_ok ||
        set_number(env, result, "uid", (double)req->uid) != napi_ok ||
        set_number(env, result, "gid", (double)req->gid) != napi_ok ||
        set_number(env, result, "encodeTime", (double)req->encode_time) != napi_ok ||
        set_number(env, result, "decodeTime", (double)req->decode_time) != napi_ok) {
      ok = 0;
    }
  }

  if (ok) {
    napi_resolve_deferred(env, req->deferred, result);
  } else {
    napi_value message, error;
    const char *text = status != napi_ok ? "the munge request was cancelled" : req->message;
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
    set_number(env, error, "mungeCode", status != napi_ok ? (double)EMUNGE_SNAFU : (double)req->err);
    napi_set_named_property(env, error, "mungeMessage", message);
    napi_reject_deferred(env, req->deferred, error);
  }
  napi_delete_async_work(env, req->work);
  free_request(req);
}

static void free_request(request_t *req)
{
  free(req->input);
  free(req->cred);    /* libmunge: the caller frees the credential */
  free(req->payload); /* libmunge: the caller frees the payload */
  free(req);
}

/* Queue req on the thread pool and return its Promise. On failure req is freed and a JS error is pending. */
static napi_value queue_request(napi_env env, request_t *req)
{
  napi_value promise, name;
  if (napi_create_promise(env, &req->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, req->op == OP_ENCODE ? "munge_encode" : "munge_decode", NAPI_AUTO_LENGTH, &name) !=
          napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, req, &req->work) != napi_ok) {
    free_request(req);
    napi_throw_error(env, NULL, "shifter munge addon: cannot queue the request");
    return NULL;
  }
  if (napi_queue_async_work(env, req->work) != napi_ok) {
    napi_delete_async_work(env, req->work);
    free_request(req);
    napi_throw_error(env, NULL, "shifter munge addon: cannot queue the request");
    return NULL;
  }
  return promise;
}

/* Copy a JS string argument into a fresh NUL-terminated heap buffer of at most max bytes. */
static char *copy_string(napi_env env, napi_value value, size_t max, size_t *len_out)
{
  size_t len;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a string");
    return NULL;
  }
  if (len > max) {
    napi_throw_range_error(env, NULL, "string argument too long");
    return NULL;
  }
  char *buf = malloc(len + 1);
  if (buf == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, value, buf, len + 1, &len);
  if (len_out)
    *len_out = len;
  return buf;
}

/* Fill req->socket from a JS string; returns 0 on success with a JS error pending otherwise. */
static int set_socket(napi_env env, request_t *req, napi_value value)
{
  size_t len;
  char *path = copy_string(env, value, MAX_SOCKET_PATH, &len);
  if (path == NULL)
    return 0;
  memcpy(req->socket, path, len + 1);
  free(path);
  return 1;
}

/* encode(payload: Buffer, socketPath: string, ttl: number): Promise<string> */
static napi_value js_encode(napi_env env, napi_callback_info info)
{
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "encode(payload, socketPath, ttl)");
    return NULL;
  }
  bool is_buffer;
  NAPI_CALL(env, napi_is_buffer(env, argv[0], &is_buffer));
  if (!is_buffer) {
    napi_throw_type_error(env, NULL, "payload must be a Buffer");
    return NULL;
  }
  void *data;
  size_t len;
  NAPI_CALL(env, napi_get_buffer_info(env, argv[0], &data, &len));
  if (len > MAX_INPUT_BYTES) {
    napi_throw_range_error(env, NULL, "payload too large");
    return NULL;
  }
  request_t *req = calloc(1, sizeof *req);
  if (req == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  req->op = OP_ENCODE;
  req->input = malloc(len ? len : 1);
  if (req->input == NULL) {
    free(req);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  memcpy(req->input, data, len);
  req->input_len = len;
  int32_t ttl = 0;
  if (napi_get_value_int32(env, argv[2], &ttl) != napi_ok || ttl < 0) {
    free_request(req);
    napi_throw_type_error(env, NULL, "ttl must be a non-negative integer");
    return NULL;
  }
  req->ttl = ttl;
  if (!set_socket(env, req, argv[1])) {
    free_request(req);
    return NULL;
  }
  return queue_request(env, req);
}

/* decode(credential: string, socketPath: string): Promise<{uid, gid, payload, encodeTime, decodeTime}> */
static napi_value js_decode(napi_env env, napi_callback_info info)
{
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "decode(credential, socketPath)");
    return NULL;
  }
  request_t *req = calloc(1, sizeof *req);
  if (req == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  req->op = OP_DECODE;
  req->input = copy_string(env, argv[0], MAX_INPUT_BYTES, &req->input_len);
  if (req->input == NULL || !set_socket(env, req, argv[1])) {
    free_request(req);
    return NULL;
  }
  return queue_request(env, req);
}

static napi_value init(napi_env env, napi_value exports)
{
  napi_property_descriptor props[] = {
    { "encode", NULL, js_encode, NULL, NULL, NULL, napi_default, NULL },
    { "decode", NULL, js_decode, NULL, NULL, NULL, napi_default, NULL },
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
