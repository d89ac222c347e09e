#!/bin/bash
#SBATCH --job-name=hello-slurm
#SBATCH --cpus-per-task=1
#SBATCH --mem=512M
#SBATCH --time=00:05:00
#SBATCH --output=hello-%j.out

echo "running as job $SLURM_JOB_ID on $(hostname)"
