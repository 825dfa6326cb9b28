//! Session counters exported on `/metrics`: loads, saves, conflicts, interruptions, store errors.
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use super::store::Gone;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Default)]
pub struct SessionMetrics {
    pub loads: Counter,
    pub saves: Counter,
    pub conflicts: Counter,
    pub update_retries: Counter,
    pub store_errors: Counter,
    pub interruptions: Family<ReasonLabel, Counter>,
}

impl SessionMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "bursar_session_loads",
            "Sessions loaded from the store",
            metrics.loads.clone(),
        );
        registry.register(
            "bursar_session_saves",
            "Atomic session saves and creations",
            metrics.saves.clone(),
        );
        registry.register(
            "bursar_session_conflicts",
            "Session keys whose late write was dropped because another request changed them first",
            metrics.conflicts.clone(),
        );
        registry.register(
            "bursar_session_update_retries",
            "Update-with-retry attempts that lost a race and re-read",
            metrics.update_retries.clone(),
        );
        registry.register(
            "bursar_session_store_errors",
            "Session store calls that failed (store down or slow)",
            metrics.store_errors.clone(),
        );
        registry.register(
            "bursar_session_interruptions",
            "Requests whose session was deleted, cycled or expired while they ran",
            metrics.interruptions.clone(),
        );
        // Every reason shows from the start, at zero, so alerts can rely on it.
        for why in [Gone::Deleted, Gone::Cycled, Gone::Expired] {
            drop(metrics.interruptions.get_or_create(&ReasonLabel {
                reason: why.as_str(),
            }));
        }
        metrics
    }

    pub fn interrupted(&self, why: Gone) {
        self.interruptions
            .get_or_create(&ReasonLabel {
                reason: why.as_str(),
            })
            .inc();
    }
}
