/* udi_job.c -- per-job roots and the trusted job id of the caller (see udi_job.h).

   Memory policy: short-lived; never freed. */

#define _GNU_SOURCE
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "udi_job.h"
#include "udi_misc.h"

/** Functions **/

/* `<udiMount>.jobs/<job>`: the directory holding job's root and loop mount points. */
char *udi_job_dir(const struct udi_config *c, unsigned long job)
{
   return xasprintf("%s.jobs/%lu", c->udiMount, job);
}

/* Create `<udiMount>.jobs` (0755) and the job's directory (0700, root's), so no other user on the node can look
   into the job's root from the host; a process enters it only through `shifter` (root until it has chrooted).
   Anything but a root-owned real directory there is fatal. Precondition: root; c not yet pointed at the job. */
void udi_job_make_dir(const struct udi_config *c, unsigned long job)
{
   char *parent = xasprintf("%s.jobs", c->udiMount), *dir = udi_job_dir(c, job);
   struct stat st;
   if (mkdir(parent, 0755) != 0 && errno != EEXIST)
      FATAL(UDI_EX_OSERR, "mkdir %s: %s", parent, strerror(errno));
   if (lstat(parent, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022))
      FATAL(UDI_EX_CONFIG, "%s must be a directory owned by root and writable only by root", parent);
   if (mkdir(dir, 0700) != 0 && errno != EEXIST)
      FATAL(UDI_EX_OSERR, "mkdir %s: %s", dir, strerror(errno));
   if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0)
      FATAL(UDI_EX_CONFIG, "%s must be a directory owned by root", dir);
   Zf(chmod(dir, 0700), "chmod %s", dir);
}

/* Point c at job's root and loop mount points (call before anything reads udiMount/loopMount). */
void udi_config_use_job(struct udi_config *c, unsigned long job)
{
   char *dir = udi_job_dir(c, job);
   c->udiMount = xasprintf("%s/root", dir);
   c->loopMount = xasprintf("%s/loop", dir);
}

/* Parse a decimal job id (1 … 2^32-1, nothing else). Returns 0 or -1. */
int udi_parse_job_id(const char *s, unsigned long *out)
{
   char *end;
   unsigned long v;
   if (!s || *s < '1' || *s > '9' || strlen(s) > 10)
      return -1;
   errno = 0;
   v = strtoul(s, &end, 10);
   if (errno || *end || v > 4294967295UL)
      return -1;
   *out = v;
   return 0;
}

/* Parent pid of pid from /proc/<pid>/stat (the field after the parenthesised name); 0 when unknown. */
static pid_t parent_of(pid_t pid)
{
   char *text = read_file_text(xasprintf("/proc/%d/stat", (int)pid), 4096), *p;
   int ppid;
   if (!text || !(p = strrchr(text, ')')) || sscanf(p + 1, " %*c %d", &ppid) != 1)
      return 0;
   return (pid_t)ppid;
}

/* The job of the nearest root-owned slurmstepd ancestor, or 0. Precondition: euid 0 (to read the ancestor's exe
   link). A process can only have a step daemon of its own job as an ancestor, so the answer cannot be forged; the
   reuse check still compares the whole root signature (image, user, volumes, modules). */
unsigned long udi_slurm_job_of_caller(void)
{
   pid_t pid = getppid();
   for (int depth = 0; pid > 1 && depth < 64; depth++, pid = parent_of(pid)) {
      char exe[PATH_MAX], *cmd, *p;
      const char *base;
      struct stat st;
      ssize_t n;
      unsigned long job;
      if (stat(xasprintf("/proc/%d", (int)pid), &st) != 0 || st.st_uid != 0)
         continue;
      n = readlink(xasprintf("/proc/%d/exe", (int)pid), exe, sizeof(exe) - 1);
      if (n <= 0)
         continue;
      exe[n] = '\0';
      base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
      if (strcmp(base, "slurmstepd") && !str_starts(base, "slurmstepd-")) /* Debian: slurmstepd-wlm */
         continue;
      cmd = read_file_text(xasprintf("/proc/%d/cmdline", (int)pid), 4096);
      if (!cmd || !str_starts(cmd, "slurmstepd: [") || !(p = cmd + strlen("slurmstepd: [")))
         return 0;
      p[strcspn(p, ".]")] = '\0';
      return udi_parse_job_id(p, &job) == 0 ? job : 0;
   }
   return 0;
}
