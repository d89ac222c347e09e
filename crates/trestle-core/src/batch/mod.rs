//! Batch work: the job specification and its validation, arrays,
//! dependencies, pipelines, `#SBATCH` scripts and the variables they read,
//! placement of jobs on a worker, the attempt state machine, resubmission
//! and "why is it not running".

pub mod array;
pub mod deps;
pub mod efficiency;
pub mod job;
pub mod limits;
pub mod logs;
pub mod outcome;
pub mod pipeline;
pub mod placement;
pub mod progress;
pub mod redact;
pub mod resubmit;
pub mod sbatch;
pub mod slurm;
pub mod slurm_view;
pub mod spec;
pub mod state;
pub mod why;
pub mod workdir;
pub mod workflow;
