//! Leader election on a `coordination.k8s.io` Lease (`kube-lease-manager`, which renews with
//! server-side apply so two replicas can never both hold it). The controller runs only while
//! this replica holds the Lease; losing it stops the controller after its passes in flight, and
//! shutdown releases the Lease at once so a standby takes over without waiting for expiry.

use std::future::Future;
use std::sync::Arc;

use kube::Client;
use kube_lease_manager::{LeaseCreateMode, LeaseManagerBuilder, LeaseManagerError};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Settings;
use crate::metrics::Metrics;

/// Runs `lead_term` for each term this replica holds the Lease, until `shutdown` is cancelled.
/// Each term gets a token cancelled when the term ends (leadership lost, or shutdown).
pub async fn lead<F, Fut>(
    client: Client,
    settings: &Settings,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    mut lead_term: F,
) -> Result<(), LeaseManagerError>
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let duration = settings.lease_duration.as_secs().max(2);
    let manager = LeaseManagerBuilder::new(client, &settings.lease_name)
        .with_namespace(&settings.lease_namespace)
        .with_identity(&settings.identity)
        .with_create_mode(LeaseCreateMode::AutoCreate)
        .with_duration(duration)
        // Renew a third of the way before expiry so one slow API call does not lose the Lease.
        .with_grace((duration / 3).max(1))
        .build()
        .await?;
    let (mut leading, lease_task) = manager.watch().await;

    while !shutdown.is_cancelled() {
        if !*leading.borrow_and_update() {
            metrics.leader.set(0);
            info!(identity = %settings.identity, lease = %settings.lease_name, "standing by for the leader Lease");
            tokio::select! {
                changed = leading.changed() => if changed.is_err() { break },
                () = shutdown.cancelled() => break,
            }
            continue;
        }
        metrics.leader.set(1);
        info!(identity = %settings.identity, "holding the leader Lease: reconciling");
        let term = shutdown.child_token();
        // Losing the Lease cancels the term; the controller then finishes its passes in flight
        // and returns, rather than being dropped mid-pass.
        let on_loss = {
            let term = term.clone();
            let mut still_leading = leading.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        changed = still_leading.changed() => {
                            if changed.is_err() || !*still_leading.borrow() {
                                warn!("lost the leader Lease: stopping after passes in flight");
                                term.cancel();
                                break;
                            }
                        }
                        () = term.cancelled() => break,
                    }
                }
            })
        };
        lead_term(term.clone()).await;
        term.cancel();
        if let Err(e) = on_loss.await {
            warn!(error = %e, "the leadership watch task ended abnormally");
        }
    }

    metrics.leader.set(0);
    // Closing the channel makes the manager release the Lease so a standby takes over now.
    drop(leading);
    match lease_task.await {
        Ok(Ok(_)) => info!("released the leader Lease"),
        Ok(Err(e)) => return Err(e),
        Err(e) => warn!(error = %e, "the Lease task ended abnormally"),
    }
    Ok(())
}
