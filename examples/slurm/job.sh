#!/bin/sh
# A Shifter batch job: the prolog prepares the image once per node, every `srun shifter` step reuses it.
# Submit with `sbatch job.sh` (needs the Shifter SPANK plugin in plugstack.conf, docs/slurm.md).
#SBATCH --image=docker:debian:bookworm
#SBATCH --ntasks=1

# The batch script itself runs on the host, with the job's image in SHIFTER_IMAGE (an id fixed at submission).
echo "image id: $SHIFTER_IMAGE"
# Each step runs inside the image; no --image needed.
srun shifter cat /etc/os-release
# shellcheck disable=SC2016 # expanded inside the container, not by the batch script
srun shifter sh -c 'echo "running in $SHIFTER_IMAGE as $(id -un)"'
