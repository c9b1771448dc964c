//! The ten Lambda functions of the template as jobs of one binary
//! (`functions/`). Every function of `template.yaml` deploys the same
//! artifact and names its job in `Handler`, which Lambda hands the process
//! as `_HANDLER`. One binary means one optimised link instead of ten (the
//! release build is a third of the CPU time) and one zip that SAM builds
//! once for every function.

use crate::entry::http::{self, Function};
use crate::entry::lambda;
use crate::flows::App;

/// One Lambda function of the template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// An HTTP function: the API routes it serves.
    Http(Function),
    SyncWorker,
    Notifier,
    ExpirySweep,
    UploadProcessor,
}

impl Job {
    pub const ALL: [Job; 10] = [
        Job::Http(Function::ConnectStart),
        Job::Http(Function::OauthCallback),
        Job::Http(Function::ApiKeyConnect),
        Job::Http(Function::CsvUpload),
        Job::Http(Function::ConnectionsApi),
        Job::Http(Function::ServiceApi),
        Job::SyncWorker,
        Job::Notifier,
        Job::ExpirySweep,
        Job::UploadProcessor,
    ];

    /// The name in the template's `Handler` (kebab case of the logical id).
    pub fn name(self) -> &'static str {
        match self {
            Job::Http(function) => function.name(),
            Job::SyncWorker => "sync-worker",
            Job::Notifier => "notifier",
            Job::ExpirySweep => "expiry-sweep",
            Job::UploadProcessor => "upload-processor",
        }
    }

    pub fn from_name(name: &str) -> Option<Job> {
        Job::ALL.into_iter().find(|job| job.name() == name)
    }

    /// The job this process runs: `_HANDLER` (set by Lambda from the
    /// template's `Handler`), else the first argument (`cargo run -p
    /// functions -- sync-worker`).
    pub fn from_env() -> Result<Job, UnknownJob> {
        let name = std::env::var("_HANDLER").ok().or_else(|| std::env::args().nth(1)).unwrap_or_default();
        Job::from_name(&name).ok_or(UnknownJob(name))
    }

    /// Runs the job until the Lambda runtime stops it.
    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        super::telemetry::init_lambda();
        let app = App::from_env().await?;
        match self {
            Job::Http(function) => lambda_http::run(http::service(app, function)).await,
            Job::SyncWorker => {
                let handler = |app: App, event, deadline_ms: u64| async move {
                    lambda::sync_worker(&app, event, lambda::budget_from_deadline(deadline_ms)).await
                };
                lambda_runtime::run(lambda::sqs_service(app, handler)).await
            }
            Job::Notifier => {
                let handler = |app: App, event, _deadline_ms: u64| async move { lambda::notifier(&app, event).await };
                lambda_runtime::run(lambda::sqs_service(app, handler)).await
            }
            Job::ExpirySweep => lambda_runtime::run(lambda::sweep_service(app)).await,
            Job::UploadProcessor => lambda_runtime::run(lambda::upload_landed_service(app)).await,
        }
    }
}

/// `_HANDLER` (or the first argument) names no job.
#[derive(thiserror::Error)]
#[error(
    "unknown function {0:?}: set the template's Handler (or pass an argument) to one of: connect-start, \
     oauth-callback, api-key-connect, csv-upload, connections-api, service-api, sync-worker, notifier, \
     expiry-sweep, upload-processor"
)]
pub struct UnknownJob(pub String);

/// `main` returning this error prints its `Debug`: the message and what to
/// do, not a struct dump.
impl std::fmt::Debug for UnknownJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_is_found_by_its_name_and_the_error_lists_them_all() {
        for job in Job::ALL {
            assert_eq!(Job::from_name(job.name()), Some(job));
            assert!(UnknownJob("x".into()).to_string().contains(job.name()), "{}", job.name());
        }
        assert_eq!(Job::from_name("bootstrap"), None);
        assert_eq!(Job::from_name(""), None);
    }
}
