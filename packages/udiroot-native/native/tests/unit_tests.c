/* unit_tests.c -- C unit tests of the runtime's pure functions (ports of upstream's CppUTest cases for VolumeMap,
   ImageData, shifter_core calculate_args / setupenv / realpath / shifterConfig, utility config parsing), plus the
   .meta reader and the gateway-lookup helpers. No root needed.

   Output: one "ok NAME" or "FAIL NAME: file:line: expr" line per test, last line "N passed, N failed".
   Memory policy: test process; nothing is freed. */

#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "udi_config.h"
#include "udi_env.h"
#include "udi_image.h"
#include "udi_job.h"
#include "udi_lookup.h"
#include "udi_misc.h"
#include "udi_mount.h"
#include "udi_volume.h"

/** Macros **/

#define CHECK(x)                                                                                                       \
   do {                                                                                                                \
      if (!(x)) {                                                                                                      \
         if (!failed_at)                                                                                               \
            failed_at = xasprintf("%s:%d: %s", __FILE__, __LINE__, #x);                                                \
      }                                                                                                                \
   } while (0)
#define STREQ(a, b) CHECK(streq((a), (b)))
#define TEST(name) static void test_##name(void)
#define RUN(name) run(#name, test_##name)

/** Globals **/

static char *failed_at;
static int passed, failed;

/** Functions **/

static bool streq(const char *a, const char *b)
{
   return a && b && !strcmp(a, b);
}

static void run(const char *name, void (*fn)(void))
{
   failed_at = NULL;
   fn();
   if (failed_at) {
      printf("FAIL %s: %s\n", name, failed_at);
      failed++;
   } else {
      printf("ok %s\n", name);
      passed++;
   }
}

static struct strv sv(const char *words)
{
   struct strv s = { 0 };
   strv_init(&s);
   if (words)
      strv_split(&s, words, " ");
   return s;
}

static char *joined(const struct strv *s)
{
   return strv_join(s, " ");
}

TEST(volume_validate_user)
{
   CHECK(udi_volume_validate_user("/test1Loc", "/etc/passwd") != 0);
   CHECK(udi_volume_validate_user("/test1Loc", "/var/log") != 0);
   CHECK(udi_volume_validate_user("/test1Loc", "/opt") != 0);
   CHECK(udi_volume_validate_user("/test1Loc", "/opt/") != 0);
   CHECK(udi_volume_validate_user("/test1Loc", "/etc") != 0);
   CHECK(udi_volume_validate_user("/test1Loc", "/opt/udiImage/x") != 0);
   CHECK(udi_volume_validate_user("/test1Loc", "/") != 0);
   CHECK(udi_volume_validate_user("/a/../etc", "/mnt") != 0);
   CHECK(udi_volume_validate_user("/a", "/mnt/../etc") != 0);
   CHECK(udi_volume_validate_user("relative", "/mnt") != 0);
   CHECK(udi_volume_validate_user("/test1Loc", "/var/tmp") == 0);
   CHECK(udi_volume_validate_user("/testLoc", "/mnt") == 0);
   CHECK(udi_volume_validate_user("/test1Loc", "/opt/myStuff") == 0);
   CHECK(udi_volume_validate_user("/scratch1/data", "/input") == 0);
   CHECK(udi_volume_validate_user("/a", "/etcetera") == 0);
   CHECK(udi_volume_validate_user("/a..b", "/x..y") == 0);
}

TEST(volume_validate_site)
{
   CHECK(udi_volume_validate_site("/x", "/etc") != 0);
   CHECK(udi_volume_validate_site("/x", "/opt") != 0);
   CHECK(udi_volume_validate_site("/x", "/var") != 0);
   CHECK(udi_volume_validate_site("/x", "/etc/passwd") != 0);
   CHECK(udi_volume_validate_site("/x", "/etc/group") != 0);
   CHECK(udi_volume_validate_site("/x", "/etc/nsswitch.conf") != 0);
   CHECK(udi_volume_validate_site("/x", "/var/log") == 0);
   CHECK(udi_volume_validate_site("/x", "/etc/site") == 0);
}

TEST(volume_parse_user)
{
   struct udi_volmap m = { 0 };
   CHECK(udi_volume_parse(&m, "/path1/is/here:/target1", false) == 0 && m.n == 1);
   CHECK(udi_volume_parse(&m, "/evilPath:/etc", false) != 0 && m.n == 1);
   CHECK(udi_volume_parse(&m, "/scratch1/test:/input:ro", false) == 0 && m.n == 2);
   CHECK(m.v[1].flags == VOL_RO);
   CHECK(udi_volume_parse(&m, "/scratch1/test:/input:rec", false) == VOL_ERR_FLAG && m.n == 2);
   CHECK(udi_volume_parse(&m, "/scratch1/test:/input:slave", false) == VOL_ERR_FLAG);
   CHECK(udi_volume_parse(&m, "/scratch1/output:/output", false) == 0 && m.n == 3);
   CHECK(udi_volume_parse(&m, "/no/to/specified", false) == VOL_ERR_SYNTAX && m.n == 3);
   CHECK(udi_volume_parse(&m, "/a:/b:ro:ro", false) == VOL_ERR_DUPFLAG);
   CHECK(udi_volume_parse(&m, "/a:/b:bogus", false) == VOL_ERR_FLAG);
   CHECK(udi_volume_parse(&m, "/a:/b:ro=1", false) == VOL_ERR_FLAG);
   /* one bad entry rejects the whole request */
   CHECK(udi_volume_parse(&m, "/a:/b;/c:/etc", false) != 0 && m.n == 3);
   CHECK(udi_volume_parse(&m, "\"/a:/b;/c:/d\"", false) == 0 && m.n == 5);
   /* relative targets are taken from "/" (upstream accepts "mnt"; "opt" and "etc" stay forbidden) */
   CHECK(udi_volume_parse(&m, "/testLoc:mnt", false) == 0 && m.n == 6);
   STREQ(m.v[5].to, "/mnt");
   CHECK(udi_volume_parse(&m, "/test1Loc:opt", false) != 0);
   CHECK(udi_volume_parse(&m, "/test1Loc:etc", false) != 0);
   /* characters outside the allowed set are dropped */
   CHECK(udi_volume_parse(&m, "/we$ird:/t*o", false) == 0);
   STREQ(m.v[m.n - 1].from, "/weird");
   STREQ(m.v[m.n - 1].to, "/to");
}

TEST(volume_parse_site)
{
   struct udi_volmap m = { 0 };
   CHECK(udi_volume_parse(&m, "/global/cscratch1", true) == 0 && m.n == 1);
   STREQ(m.v[0].to, "/global/cscratch1");
   CHECK(udi_volume_parse(&m, "/global/cscratch1:/global/cscratch1:ro", true) == 0 && m.n == 2);
   CHECK(udi_volume_parse(&m, "/global/cscratch1:/global/cscratch1:rec", true) == 0 && m.n == 3);
   CHECK(udi_volume_parse(&m, "/a:/b:slave:private", true) == VOL_ERR_EXCLUSIVE);
   CHECK(udi_volume_parse(&m, "/a:/etc", true) == VOL_ERR_PATH);
}

TEST(volume_flags_and_bytes)
{
   struct udi_volmap m = { 0 };
   unsigned long long b = 0;
   CHECK(udi_parse_bytes("5", &b) == 0 && b == 5);
   CHECK(udi_parse_bytes("5k", &b) == 0 && b == 5 * 1024);
   CHECK(udi_parse_bytes("500K", &b) == 0 && b == 500 * 1024);
   CHECK(udi_parse_bytes("500KB", &b) == 0 && b == 500 * 1024);
   CHECK(udi_parse_bytes("4T", &b) == 0 && b == 4ULL << 40);
   CHECK(udi_parse_bytes("x", &b) != 0);
   CHECK(udi_parse_bytes("-1", &b) != 0);
   CHECK(udi_parse_bytes("5q", &b) != 0);
   CHECK(udi_volume_parse(&m, "/a:/cache:perNodeCache", false) != 0); /* no default size */
   CHECK(udi_volume_parse(&m, "/a:/cache:perNodeCache=size=4T,bs=4M", false) == 0 && m.n == 1);
   CHECK(m.v[0].flags == VOL_PERNODECACHE && m.v[0].cache_size == 4ULL << 40 && m.v[0].cache_bs == 4ULL << 20);
   CHECK(udi_volume_parse(&m, "/a:/cache:perNodeCache=size=1G,method=nfs", false) != 0);
   CHECK(udi_volume_parse(&m, "/a:/cache:perNodeCache=size=1G,color=red", false) != 0);
}

TEST(volume_multiple_with_flags)
{
   struct udi_volmap m = { 0 };
   CHECK(udi_volume_parse(&m, "/a:/b:ro;/c:/d;/e:/f:ro;/g:/h;/i:/j:perNodeCache=size=1G", false) == 0);
   CHECK(m.n == 5);
   CHECK(m.v[0].flags == VOL_RO && m.v[1].flags == 0 && m.v[2].flags == VOL_RO && m.v[4].flags == VOL_PERNODECACHE);
}

TEST(volume_signature)
{
   struct udi_volmap m = { 0 };
   CHECK(udi_volume_parse(&m, "/d:/c;/a:/b;/q:/r;/a:/c:rec:perNodeCache=size=100M:ro", true) == 0 && m.n == 4);
   STREQ(udi_volume_signature(&m),
         "/a:/b;/a:/c:ro:rec:perNodeCache=size=104857600,bs=1048576,method=loop,fstype=xfs;/d:/c;/q:/r");
   {
      struct udi_volmap e = { 0 };
      STREQ(udi_volume_signature(&e), "");
   }
}

TEST(image_descriptor)
{
   struct udi_image_ref r;
   CHECK(udi_parse_image_ref(&r, "docker:ubuntu:14.04", "docker") == 0);
   STREQ(r.type, "docker");
   STREQ(r.tag, "ubuntu:14.04");
   CHECK(udi_parse_image_ref(&r, "ubuntu:14.04", "docker") == 0);
   STREQ(r.type, "docker");
   STREQ(r.tag, "ubuntu:14.04");
   CHECK(udi_parse_image_ref(NULL, "x", "docker") == -1);
   CHECK(udi_parse_image_ref(&r, NULL, "docker") == -1);
   CHECK(udi_parse_image_ref(&r, "", "docker") == -1);
   CHECK(udi_parse_image_ref(&r, "id:0123abcd", "docker") == 0);
   STREQ(r.type, "id");
   CHECK(udi_parse_image_ref(&r, "id:../../etc", "docker") == -1); /* ids are hex only */
   CHECK(udi_parse_image_ref(&r, "custom:a/b", "docker") == 0);
   STREQ(r.tag, "ab"); /* '/' only for docker and local */
   CHECK(udi_parse_image_ref(&r, "docker:registry.example:5000/ns/img;rm -rf@sha256:ab", "docker") == 0);
   STREQ(r.tag, "registry.example:5000/ns/imgrm-rf@sha256:ab");
   CHECK(udi_parse_image_ref(&r, "local:/srv/root", "docker") == 0);
   STREQ(r.tag, "/srv/root");
}

TEST(calculate_args_matrix)
{
   struct strv out, entry = sv("echo howdy"), cmd = sv("guys"), none = sv(NULL), you = sv("you");
   char err[128];
   /* without --entrypoint: user args, else /bin/sh; image ENTRY/CMD ignored */
   CHECK(udi_calculate_args(&out, false, NULL, &you, &entry, &cmd, err, sizeof(err)) == 0);
   STREQ(joined(&out), "you");
   CHECK(udi_calculate_args(&out, false, NULL, &none, &entry, &cmd, err, sizeof(err)) == 0);
   STREQ(joined(&out), "/bin/sh");
   /* --entry → echo howdy guys */
   CHECK(udi_calculate_args(&out, true, NULL, &none, &entry, &cmd, err, sizeof(err)) == 0);
   STREQ(joined(&out), "echo howdy guys");
   /* --entry you → echo howdy you */
   CHECK(udi_calculate_args(&out, true, NULL, &you, &entry, &cmd, err, sizeof(err)) == 0);
   STREQ(joined(&out), "echo howdy you");
   /* --entry=echo → echo */
   CHECK(udi_calculate_args(&out, true, "echo", &none, &entry, &cmd, err, sizeof(err)) == 0);
   STREQ(joined(&out), "echo");
   /* --entry=echo you → echo you */
   CHECK(udi_calculate_args(&out, true, "echo", &you, &entry, &cmd, err, sizeof(err)) == 0);
   STREQ(joined(&out), "echo you");
   /* --entry on an image without ENTRY → error */
   CHECK(udi_calculate_args(&out, true, NULL, &none, &none, &cmd, err, sizeof(err)) != 0);
   CHECK(strstr(err, "entrypoint") != NULL);
}

TEST(env_operations)
{
   struct strv e = sv("A=1 PATH=/bin");
   CHECK(env_set(&e, "A=2") == 0);
   STREQ(env_get(&e, "A"), "2");
   CHECK(e.n == 2);
   CHECK(env_append(&e, "PATH=/x") == 0);
   STREQ(env_get(&e, "PATH"), "/bin:/x");
   CHECK(env_prepend(&e, "PATH=/y") == 0);
   STREQ(env_get(&e, "PATH"), "/y:/bin:/x");
   CHECK(env_append(&e, "NEW=v") == 0);
   STREQ(env_get(&e, "NEW"), "v");
   env_unset(&e, "NEW");
   CHECK(env_get(&e, "NEW") == NULL);
   CHECK(env_set(&e, "=x") != 0);
   CHECK(env_set(&e, "NOEQUALS") != 0);
   CHECK(env_set(&e, "EMPTY=") == 0);
   STREQ(env_get(&e, "EMPTY"), "");
   CHECK(env_get(&e, "PAT") == NULL); /* prefix of a name is not the name */
}

TEST(env_precedence_setupenv)
{
   /* upstream setupenv_test: host PATH=/incorrect, image PATH=/usr/bin, prepend /sbin, append /opt/udiImage/bin,
      unset NEW_VAR ⇒ PATH=/sbin:/usr/bin:/opt/udiImage/bin */
   struct strv e = sv("PATH=/incorrect NEW_VAR=1"), image = sv("PATH=/usr/bin");
   struct strv set = sv("SHIFTER_RUNTIME=1"), app = sv("PATH=/opt/udiImage/bin"), pre = sv("PATH=/sbin"),
               unset = sv("NEW_VAR");
   for (size_t i = 0; i < image.n; i++)
      env_set(&e, image.v[i]);
   CHECK(env_apply_site(&e, &set, &app, &pre, &unset) == 0);
   STREQ(env_get(&e, "PATH"), "/sbin:/usr/bin:/opt/udiImage/bin");
   STREQ(env_get(&e, "SHIFTER_RUNTIME"), "1");
   CHECK(env_get(&e, "NEW_VAR") == NULL);
   CHECK(e.n == 2);
}

static int parse_conf(struct udi_config *c, const char *text, char *err)
{
   return udi_config_parse_text(c, text, err, 512) || udi_config_validate(c, err, 512);
}

#define MINIMAL                                                                                                        \
   "udiMount=/var/udiMount\nloopMount=/var/udiLoopMount\nimagePath=/images\nudiRootPath=/opt/shifter\n"                \
   "etcPath=/etc/shifter/shifter_etc_files\nrootfsType=tmpfs\n"

TEST(config_basic)
{
   struct udi_config c;
   char err[512];
   CHECK(parse_conf(&c,
                    MINIMAL "# comment\n\n   siteFs = /global:/global;/scratch  \n"
                            "siteEnv=A=1 B=2\nsiteEnvAppend=PATH=/opt/udiImage/bin\nimageGateway=http://a:7777 "
                            "http://b:7777\ngatewayTimeout=3\nsystem=test\ndefaultImageType=docker\n"
                            "mountUdiRootWritable=0\nmaxGroupCount=31\nperNodeCacheSizeLimit=50G\n",
                    err) == 0);
   STREQ(c.udiMount, "/var/udiMount");
   STREQ(c.siteFs, "/global:/global;/scratch");
   CHECK(c.siteEnv.n == 2);
   CHECK(c.imageGateway.n == 2 && c.gatewayTimeout == 3 && c.maxGroupCount == 31);
   CHECK(c.perNodeCacheSizeLimit == 50ULL << 30);
   CHECK(!c.mountUdiRootWritable);
}

TEST(config_continuation_and_errors)
{
   struct udi_config c;
   char err[512];
   CHECK(parse_conf(&c, MINIMAL "siteEnv=A=1 \\\n   B=2 \\\n C=3\n", err) == 0);
   CHECK(c.siteEnv.n == 3);
   STREQ(c.siteEnv.v[2], "C=3");
   CHECK(parse_conf(&c, MINIMAL "bogusKey=1\n", err) != 0);
   CHECK(strstr(err, "bogusKey") && strstr(err, "line 7"));
   CHECK(parse_conf(&c, MINIMAL "siteResources=/x\n", err) != 0); /* removed upstream key: rejected */
   CHECK(parse_conf(&c, MINIMAL "justtext\n", err) != 0);
   CHECK(parse_conf(&c, "udiMount=/u\n", err) != 0); /* required keys */
   CHECK(strstr(err, "loopMount") != NULL);
   CHECK(parse_conf(&c, MINIMAL "gatewayTimeout=ten\n", err) != 0);
   CHECK(parse_conf(&c, MINIMAL "imageGateway=ftp://gw:443\n", err) != 0);
   CHECK(parse_conf(&c, MINIMAL "imageGateway=https://gw:443 http://gw2\ngatewayCaPath=/etc/ca.pem\n", err) == 0);
   STREQ(c.gatewayCaPath, "/etc/ca.pem");
   CHECK(parse_conf(&c, MINIMAL "gatewayCaPath=ca.pem\n", err) != 0); /* relative */
   CHECK(parse_conf(&c, MINIMAL "mountPropagationStyle=shared\n", err) != 0);
   CHECK(parse_conf(&c, MINIMAL "optionalSshdAsRoot=1\nnodeContextPrefix=x\nkmodBasePath=/lib\n", err) == 0);
}

/* Spellings upstream tolerated: read as upstream read them (strtol; a misspelt module subkey ignored), warned. */
TEST(config_upstream_spellings)
{
   struct udi_config c;
   char err[512];
   CHECK(parse_conf(&c,
                    MINIMAL "allowLocalChroot=yes\nmountUdiRootWritable=true\nallowLibcPwdCalls=2x\n"
                            "module_mpich_copypath=/opt/mpich\n",
                    err) == 0);
   CHECK(!c.allowLocalChroot && !c.mountUdiRootWritable && c.allowLibcPwdCalls);
   CHECK(c.warnings.n == 4);
   STREQ(c.warnings.v[0], "line 7: allowLocalChroot=yes is not 0 or 1: read as 0 (off), as upstream Shifter's strtol "
                          "read it; write allowLocalChroot=0 or allowLocalChroot=1");
   CHECK(strstr(c.warnings.v[2], "read as 1 (on)") != NULL);
   STREQ(c.warnings.v[3], "line 10: module_mpich_copypath is ignored, as upstream Shifter ignored it; the key is "
                          "module_mpich_copyPath");
   CHECK(udi_config_module(&c, "mpich") && !udi_config_module(&c, "mpich")->copyPath);
   CHECK(parse_conf(&c, MINIMAL "allowLocalChroot=1\nmodule_mpich_copyPath=/x\n", err) == 0 && c.warnings.n == 0);
   CHECK(parse_conf(&c, MINIMAL "module_mpich_copydir=/x\n", err) != 0); /* not a known subkey in any case */
}

TEST(config_modules)
{
   struct udi_config c;
   char err[512];
   struct udi_module *m;
   CHECK(parse_conf(&c,
                    MINIMAL "module_mpich_siteEnvPrepend=LD_LIBRARY_PATH=/opt/udiImage/modules/mpich/lib\n"
                            "module_mpich_copyPath=/opt/mpich\nmodule_mpich_userhook=/opt/udiImage/modules/mpich/h.sh\n"
                            "module_mpich_conflict=openmpi\nmodule_openmpi_enabled=0\n"
                            "module_cvmfs_siteFs=/cvmfs_nfs:/cvmfs\ndefaultModules=cvmfs\n",
                    err) == 0);
   CHECK(c.n_modules == 3);
   m = udi_config_module(&c, "mpich");
   CHECK(m && m->siteEnvPrepend.n == 1 && m->copyPath && m->conflict.n == 1 && m->enabled);
   CHECK(!udi_config_module(&c, "openmpi")->enabled);
   STREQ(udi_config_module(&c, "cvmfs")->siteFs, "/cvmfs_nfs:/cvmfs");
   CHECK(parse_conf(&c, MINIMAL "module_x_bogus=1\n", err) != 0);
   CHECK(parse_conf(&c, MINIMAL "module_.._copyPath=/x\n", err) != 0);
   CHECK(parse_conf(&c, MINIMAL "module_a/b_copyPath=/x\n", err) != 0);
   CHECK(parse_conf(&c, MINIMAL "defaultModules=nothere\n", err) != 0);
   CHECK(parse_conf(&c, MINIMAL "module_a_conflict=nothere\n", err) != 0);
}

TEST(config_json)
{
   struct udi_config c;
   char err[512], *j;
   CHECK(parse_conf(&c, MINIMAL "module_m_siteEnv=A=\"q\"\n", err) == 0);
   j = udi_config_json(&c);
   CHECK(strstr(j, "\"udiMount\":\"/var/udiMount\"") != NULL);
   CHECK(strstr(j, "\"siteEnv\":[\"A=\\\"q\\\"\"]") != NULL);
   CHECK(strstr(j, "\"gatewayTimeout\":10") != NULL);
}

TEST(meta_parse)
{
   struct udi_meta m;
   char err[256];
   CHECK(udi_meta_parse_text(&m,
                             "FORMAT: squashfs\nENTRY: [u'echo', u'howdy']\nCMD: ['guys']\nWORKDIR: /work\n"
                             "ENV: PATH=/usr/bin:/bin\nENV: %SPACED=%20%20a%20b%20\nUSERACL: 1000, 1001\n"
                             "GROUPACL: 2000,2001\nUSER: nobody\nLABELS: ignored\nno colon line\n# c: x\n",
                             err, sizeof(err)) == 0);
   STREQ(m.format, "squashfs");
   STREQ(joined(&m.entry), "echo howdy");
   STREQ(joined(&m.cmd), "guys");
   STREQ(m.workdir, "/work");
   CHECK(m.env.n == 2);
   STREQ(m.env.v[1], "SPACED=  a b ");
   CHECK(m.useracl.n == 2 && m.groupacl.n == 2);
   gid_t g[] = { 5, 2001 };
   CHECK(udi_meta_allows(&m, 1000, 1, NULL, 0));
   CHECK(!udi_meta_allows(&m, 999, 1, NULL, 0));
   CHECK(udi_meta_allows(&m, 999, 2000, NULL, 0));
   CHECK(udi_meta_allows(&m, 999, 1, g, 2));
   CHECK(udi_meta_parse_text(&m, "FORMAT: squashfs\n", err, sizeof(err)) == 0);
   CHECK(udi_meta_allows(&m, 999, 1, NULL, 0)); /* no ACL: public */
   CHECK(!m.has_entry && !m.workdir);
   CHECK(udi_meta_parse_text(&m, "ENV: A=one \\\n two\nWORKDIR: /x\r\n", err, sizeof(err)) == 0);
   STREQ(m.env.v[0], "A=one two");
   STREQ(m.workdir, "/x");
}

TEST(meta_list_syntax)
{
   struct strv s = { 0 };
   CHECK(udi_parse_list_value(&s, "%['it%27s', '%C3%BC', 'a%0ab']") == 0);
   CHECK(s.n == 3);
   STREQ(s.v[0], "it's");
   STREQ(s.v[1], "\xc3\xbc");
   STREQ(s.v[2], "a\nb");
   s.n = 0;
   CHECK(udi_parse_list_value(&s, "[u'echo hello, world [x]', u'']") == 0 && s.n == 2);
   STREQ(s.v[0], "echo hello, world [x]");
   STREQ(s.v[1], "");
   s.n = 0;
   CHECK(udi_parse_list_value(&s, "[]") == 0 && s.n == 0);
   CHECK(udi_parse_list_value(&s, "/bin/sh -c date") == 0 && s.n == 1); /* one argument, as upstream */
   s.n = 0;
   CHECK(udi_parse_list_value(&s, "[u'a', u'b]") != 0);
   CHECK(udi_parse_list_value(&s, "%['a'") != 0);
   CHECK(udi_parse_list_value(&s, "%['%zz']") != 0);
   CHECK(udi_meta_percent_decode("%FF") == NULL);       /* not UTF-8 */
   CHECK(udi_meta_percent_decode("%00") == NULL);       /* NUL cannot be passed to exec */
   CHECK(udi_meta_percent_decode("%ED%A0%80") == NULL); /* surrogate */
   STREQ(udi_meta_percent_decode("%25d%0A"), "%d\n");
   {
      struct udi_meta m;
      char err[128];
      CHECK(udi_meta_parse_text(&m, "CMD: [u'a', u'b]\n", err, sizeof(err)) != 0);
      CHECK(udi_meta_parse_text(&m, "ENV: %A=%zz\n", err, sizeof(err)) != 0);
      CHECK(udi_meta_parse_text(&m, "USERACL: 1000,bob\n", err, sizeof(err)) != 0);
   }
}

TEST(shifterconfig_signature)
{
   struct strv none = sv(NULL), mods = sv("a b");
   STREQ(udi_root_signature("testImage", "dmj", "", &none),
         "{\"identifier\":\"testImage\",\"user\":\"dmj\",\"volMap\":\"\",\"modules\":\"\"}");
   STREQ(udi_root_signature("x", "u", "/a:/b", &mods),
         "{\"identifier\":\"x\",\"user\":\"u\",\"volMap\":\"/a:/b\",\"modules\":\"a,b,\"}");
}

TEST(resolve_in_root)
{
   /* upstream shifterRealpath_test: relative and absolute symlinks are re-rooted at the container root */
   char tmpl[] = "/tmp/udi-unit-XXXXXX", *root = mkdtemp(tmpl);
   int rootfd, fd;
   CHECK(root != NULL);
   if (!root)
      return;
   CHECK(mkdir(xasprintf("%s/a", root), 0755) == 0);
   CHECK(mkdir(xasprintf("%s/a/b", root), 0755) == 0);
   CHECK(symlink("/a/b", xasprintf("%s/abs", root)) == 0);
   CHECK(symlink("a/b", xasprintf("%s/rel", root)) == 0);
   CHECK(symlink("../../../../..", xasprintf("%s/up", root)) == 0);
   CHECK(symlink("/etc", xasprintf("%s/etclink", root)) == 0);
   rootfd = open(root, O_PATH | O_DIRECTORY);
   fd = udi_resolve_in_root(rootfd, "/abs", O_DIRECTORY);
   CHECK(fd >= 0);
   {
      char buf[4096];
      ssize_t n = readlink(xasprintf("/proc/self/fd/%d", fd), buf, sizeof(buf) - 1);
      if (n > 0)
         buf[n] = '\0';
      STREQ(n > 0 ? buf : NULL, xasprintf("%s/a/b", root));
   }
   CHECK(udi_resolve_in_root(rootfd, "rel", O_DIRECTORY) >= 0);
   fd = udi_resolve_in_root(rootfd, "/up", O_DIRECTORY);
   {
      char buf[4096];
      ssize_t n = readlink(xasprintf("/proc/self/fd/%d", fd), buf, sizeof(buf) - 1);
      if (n > 0)
         buf[n] = '\0';
      STREQ(n > 0 ? buf : NULL, root); /* ".." stops at the root */
   }
   CHECK(udi_resolve_in_root(rootfd, "/etclink/passwd", 0) < 0); /* /etc is the container's, which is absent */
}

TEST(lookup_helpers)
{
   char *h, *p;
   STREQ(udi_url_escape("ubuntu:16.04"), "ubuntu%3A16.04");
   STREQ(udi_url_escape("library/ubuntu"), "library%2Fubuntu");
   CHECK(udi_parse_http_url("http://gw:7777", &h, &p) == 0);
   STREQ(h, "gw");
   STREQ(p, "7777");
   CHECK(udi_parse_http_url("http://127.0.0.1:5000/", &h, &p) == 0);
   CHECK(udi_parse_http_url("http://[::1]:80", &h, &p) == 0);
   STREQ(h, "::1");
   CHECK(udi_parse_http_url("https://gw:7777", &h, &p) != 0);
   CHECK(udi_parse_http_url("http://gw:77x", &h, &p) != 0);
   CHECK(udi_parse_http_url("http://gw:80/api", &h, &p) != 0);
   {
      bool tls = false;
      CHECK(udi_parse_gateway_url("https://gw.example.org", &tls, &h, &p) == 0 && tls);
      STREQ(h, "gw.example.org");
      STREQ(p, "443");
      CHECK(udi_parse_gateway_url("https://[::1]:8443/", &tls, &h, &p) == 0 && tls);
      STREQ(h, "::1");
      STREQ(p, "8443");
      CHECK(udi_parse_gateway_url("http://gw", &tls, &h, &p) == 0 && !tls);
      STREQ(p, "80");
      CHECK(udi_parse_gateway_url("ftp://gw:21", &tls, &h, &p) != 0);
      CHECK(udi_parse_gateway_url("https://:443", &tls, &h, &p) != 0);
      CHECK(udi_parse_gateway_url("https://[::1]x:443", &tls, &h, &p) != 0);
      CHECK(udi_parse_gateway_url("https://gw:443/api/", &tls, &h, &p) != 0);
   }
   STREQ(udi_json_top_string("{\"status\":\"READY\",\"id\":\"abc123\"}", "id"), "abc123");
   STREQ(udi_json_top_string("{\"meta\":{\"id\":\"nested\"},\"x\":[1,{\"id\":2}],\"id\":\"top\"}", "id"), "top");
   CHECK(udi_json_top_string("{\"meta\":{\"id\":\"nested\"}}", "id") == NULL);
   CHECK(udi_json_top_string("[\"id\"]", "id") == NULL);
   CHECK(udi_json_top_string("{\"id\":", "id") == NULL);
}

/* Ownership and mode checks of the image directory, .meta and image file, on descriptors opened without
   following symlinks. */
static void test_trusted_image_files(void)
{
   struct stat st;
   char err[512], dir[] = "/tmp/udi-trust-XXXXXX", *meta, *link;
   uid_t writer = 0;
   int fd, code = 0;
   memset(&st, 0, sizeof(st));
   st.st_mode = S_IFREG | 0644;
   CHECK(udi_untrusted_reason(&st, false, UDI_NO_WRITER) == NULL);
   st.st_mode = S_IFREG | 0664;
   CHECK(udi_untrusted_reason(&st, false, UDI_NO_WRITER) != NULL);
   st.st_mode = S_IFREG | 0646;
   CHECK(udi_untrusted_reason(&st, false, UDI_NO_WRITER) != NULL);
   st.st_mode = S_IFREG | 0600;
   st.st_uid = 2001;
   CHECK(udi_untrusted_reason(&st, false, UDI_NO_WRITER) != NULL);
   CHECK(udi_untrusted_reason(&st, false, 2001) == NULL);
   CHECK(udi_untrusted_reason(&st, false, 2002) != NULL);
   st.st_uid = 0;
   CHECK(udi_untrusted_reason(&st, true, UDI_NO_WRITER) != NULL); /* a file where a directory is wanted */
   st.st_mode = S_IFDIR | 01777;
   CHECK(udi_untrusted_reason(&st, true, UDI_NO_WRITER) != NULL); /* /tmp-like directories too */
   st.st_mode = S_IFDIR | 0755;
   CHECK(udi_untrusted_reason(&st, true, UDI_NO_WRITER) == NULL);

   CHECK(udi_image_writer_uid(NULL, &writer) == 0 && writer == UDI_NO_WRITER);
   CHECK(udi_image_writer_uid("4242", &writer) == 0 && writer == 4242);
   CHECK(udi_image_writer_uid("root", &writer) == 0 && writer == 0);
   CHECK(udi_image_writer_uid("no-such-user-xyz", &writer) != 0);
   CHECK(udi_image_writer_uid("99999999999", &writer) != 0);

   if (geteuid() != 0)
      return; /* the file checks below need root-owned files */
   CHECK(mkdtemp(dir) != NULL);
   chmod(dir, 0755);
   meta = xasprintf("%s/abc.meta", dir);
   link = xasprintf("%s/lnk.meta", dir);
   fd = open(meta, O_WRONLY | O_CREAT | O_EXCL, 0644);
   CHECK(fd >= 0 && write(fd, "FORMAT: squashfs\n", 17) == 17);
   close(fd);
   chmod(meta, 0644);
   CHECK(symlink(meta, link) == 0);
   {
      char *text = udi_read_trusted_meta(dir, "abc", UDI_NO_WRITER, &code, err, sizeof(err));
      CHECK(text && streq(text, "FORMAT: squashfs\n"));
   }
   CHECK(udi_read_trusted_meta(dir, "lnk", UDI_NO_WRITER, &code, err, sizeof(err)) == NULL && code == UDI_EX_UNTRUSTED);
   CHECK(udi_read_trusted_meta(dir, "missing", UDI_NO_WRITER, &code, err, sizeof(err)) == NULL &&
         code == UDI_EX_NOINPUT);
   chmod(meta, 0666);
   CHECK(udi_read_trusted_meta(dir, "abc", UDI_NO_WRITER, &code, err, sizeof(err)) == NULL && code == UDI_EX_UNTRUSTED);
   chmod(meta, 0644);
   CHECK(chown(meta, 4242, 4242) == 0);
   CHECK(udi_read_trusted_meta(dir, "abc", UDI_NO_WRITER, &code, err, sizeof(err)) == NULL && code == UDI_EX_UNTRUSTED);
   CHECK(udi_read_trusted_meta(dir, "abc", 4242, &code, err, sizeof(err)) != NULL);
   chmod(dir, 0777);
   CHECK(udi_read_trusted_meta(dir, "abc", 4242, &code, err, sizeof(err)) == NULL && code == UDI_EX_UNTRUSTED);
   chmod(dir, 0755);
   CHECK((fd = udi_open_trusted(AT_FDCWD, dir, true, UDI_NO_WRITER, err, sizeof(err))) >= 0);
   close(fd);
   CHECK(udi_open_trusted(AT_FDCWD, link, true, UDI_NO_WRITER, err, sizeof(err)) < 0);
   unlink(link);
   unlink(meta);
   rmdir(dir);
}

TEST(job_roots)
{
   struct udi_config c;
   unsigned long j = 0;
   memset(&c, 0, sizeof(c));
   c.udiMount = "/var/udiMount";
   c.loopMount = "/var/udiLoop";
   CHECK(udi_parse_job_id("1", &j) == 0 && j == 1);
   CHECK(udi_parse_job_id("4294967295", &j) == 0 && j == 4294967295UL);
   CHECK(udi_parse_job_id("4294967296", &j) != 0);
   CHECK(udi_parse_job_id("0", &j) != 0);
   CHECK(udi_parse_job_id("012", &j) != 0);
   CHECK(udi_parse_job_id("12a", &j) != 0);
   CHECK(udi_parse_job_id("-1", &j) != 0);
   CHECK(udi_parse_job_id("", &j) != 0);
   CHECK(udi_parse_job_id(NULL, &j) != 0);
   CHECK(udi_parse_job_id("12345678901", &j) != 0);
   STREQ(udi_job_dir(&c, 42), "/var/udiMount.jobs/42");
   udi_config_use_job(&c, 42);
   STREQ(c.udiMount, "/var/udiMount.jobs/42/root");
   STREQ(c.loopMount, "/var/udiMount.jobs/42/loop");
   /* Outside any Slurm step (this test), there is no job, whatever the environment says. */
   setenv("SLURM_JOB_ID", "42", 1);
   CHECK(udi_slurm_job_of_caller() == 0);
   unsetenv("SLURM_JOB_ID");
}

int main(void)
{
   RUN(volume_validate_user);
   RUN(volume_validate_site);
   RUN(volume_parse_user);
   RUN(volume_parse_site);
   RUN(volume_flags_and_bytes);
   RUN(volume_multiple_with_flags);
   RUN(volume_signature);
   RUN(image_descriptor);
   RUN(calculate_args_matrix);
   RUN(env_operations);
   RUN(env_precedence_setupenv);
   RUN(config_basic);
   RUN(config_continuation_and_errors);
   RUN(config_modules);
   RUN(config_json);
   RUN(meta_parse);
   RUN(meta_list_syntax);
   RUN(shifterconfig_signature);
   RUN(resolve_in_root);
   RUN(lookup_helpers);
   RUN(trusted_image_files);
   RUN(config_upstream_spellings);
   RUN(job_roots);
   printf("%d passed, %d failed\n", passed, failed);
   return failed ? 1 : 0;
}
