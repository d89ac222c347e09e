//! Staging of upstream outputs: before a job that depends on other jobs
//! runs, the output files of the jobs it depends on (of each child, for an
//! array) are downloaded into its scratch directory, so a pipeline step
//! finds what the step before it produced. The job's own inputs are
//! staged afterwards and win when names clash.

use crate::backoff::{Backoff, retry};
use crate::error::AgentError;
use crate::stage::input_dest;
use std::path::Path;
use trestle_client::Client;

/// Tries per request while the server is unreachable.
const TRIES: u32 = 6;

/// Downloads every upstream output file of `job_id` into `scratch`;
/// returns how many.
pub async fn stage_upstream(
    client: &Client,
    job_id: i64,
    scratch: &Path,
) -> Result<usize, AgentError> {
    let list = retry(TRIES, Backoff::default(), || client.upstream(job_id))
        .await
        .map_err(|e| AgentError::Stage(format!("cannot list upstream outputs: {e}")))?;
    let mut n = 0;
    for job in &list.jobs {
        // Validate every path before downloading anything.
        let files = job
            .files
            .iter()
            .map(|f| input_dest(scratch, &f.path))
            .collect::<Result<Vec<_>, _>>()?;
        for (rel, dest) in &files {
            retry(TRIES, Backoff::default(), || {
                client.download_upstream(job_id, job.job_id, job.attempt, rel, dest)
            })
            .await
            .map_err(|e| AgentError::Stage(format!("upstream {rel} of job {}: {e}", job.job_id)))?;
            n += 1;
        }
    }
    Ok(n)
}
