/* udi_job.h -- per-job container roots for workload managers (the Slurm plugin's prolog builds one root per job).

   Layout: job J's root is `<udiMount>.jobs/J/root` with its image loop-mounted at `<udiMount>.jobs/J/loop`, next to
   udiMount rather than under it, so a plain setupRoot/unsetupRoot (or a private build in `shifter`) never touches a
   job's root, and `unsetupRoot -j J` removes job J's mounts and nothing else.

   Which job a `shifter` call belongs to is never taken from its environment: it is read from the nearest ancestor
   process that is a root-owned `slurmstepd` or `slurmstepd-*` (whose title `slurmstepd: [J.STEP]` is written by Slurm and cannot be
   changed by the user). The job's directory is 0700 root: other users on the node cannot look into its root. A process outside any step (for instance one that daemonized) has no job and builds a
   private root as usual.

   Memory policy: short-lived; never freed. */

#ifndef UDI_JOB_H
#define UDI_JOB_H

#include "udi_config.h"

/** Function prototypes **/

void udi_config_use_job(struct udi_config *c, unsigned long job);
char *udi_job_dir(const struct udi_config *c, unsigned long job);
void udi_job_make_dir(const struct udi_config *c, unsigned long job);
unsigned long udi_slurm_job_of_caller(void);
int udi_parse_job_id(const char *s, unsigned long *out);

#endif
