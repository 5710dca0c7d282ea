//! Every metric amends exports, with its description and unit. Label values are bounded:
//! channels come from config, reasons, rules and severities from enums, partitions from the
//! topic's partition count.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

pub const EVENTS_IN: &str = "amends_events_total";
pub const DEAD_LETTERS: &str = "amends_dead_letters_total";
pub const OUTCOMES_IN: &str = "amends_recovery_outcomes_total";
pub const TASKS: &str = "amends_tasks_total";
pub const EVENT_TO_TASK: &str = "amends_event_to_task_seconds";
pub const CONSUMER_LAG: &str = "amends_consumer_lag_records";
pub const STATE_CUSTOMERS: &str = "amends_state_customers";
pub const STATE_EVICTED: &str = "amends_state_evicted_total";
pub const DUPLICATES: &str = "amends_duplicate_events_total";
pub const DELIVERY_RETRIES: &str = "amends_delivery_retries_total";
pub const ASSIGNED_PARTITIONS: &str = "amends_assigned_partitions";
pub const REBALANCES: &str = "amends_rebalances_total";
pub const OFFSETS_STORED: &str = "amends_offsets_stored_total";
pub const RESTORE_SECONDS: &str = "amends_restore_seconds";
pub const RESTORE_RECORDS: &str = "amends_restore_records_total";
pub const CHANGELOG_RECORDS: &str = "amends_changelog_records_total";
pub const WATERMARK_LAG: &str = "amends_watermark_lag_seconds";
pub const LATE_EVENTS: &str = "amends_events_late_total";
pub const TIMERS_FIRED: &str = "amends_timers_fired_total";
pub const REORDER_BUFFERED: &str = "amends_reorder_buffered_events";
pub const REORDER_FORCED: &str = "amends_reorder_forced_total";
pub const TRANSACTIONS: &str = "amends_transactions_total";
pub const TRANSACTION_SECONDS: &str = "amends_transaction_seconds";

pub fn describe() {
    describe_counter!(
        EVENTS_IN,
        Unit::Count,
        "Touch-point events decoded, by channel and outcome."
    );
    describe_counter!(
        DEAD_LETTERS,
        Unit::Count,
        "Input records sent to the dead-letter topic, by reason (decode, validation, too_large, late)."
    );
    describe_counter!(OUTCOMES_IN, Unit::Count, "Recovery outcomes accepted.");
    describe_counter!(
        TASKS,
        Unit::Count,
        "Recovery task revisions delivered, by rule, severity and status."
    );
    describe_histogram!(EVENT_TO_TASK, Unit::Seconds, "From the input record's Kafka timestamp to the broker's acknowledgement of the task it caused.");
    describe_gauge!(CONSUMER_LAG, Unit::Count, "Records between the committed offset and the high watermark, by topic and partition (librdkafka statistics).");
    describe_gauge!(
        STATE_CUSTOMERS,
        Unit::Count,
        "Customers held in detection state on this instance."
    );
    describe_counter!(
        STATE_EVICTED,
        Unit::Count,
        "Customers dropped from state, by cause (cap, ttl)."
    );
    describe_counter!(
        DUPLICATES,
        Unit::Count,
        "Events ignored because their event_id was seen within the duplicate horizon."
    );
    describe_counter!(
        DELIVERY_RETRIES,
        Unit::Count,
        "Outputs re-sent after a failed delivery."
    );
    describe_gauge!(
        ASSIGNED_PARTITIONS,
        Unit::Count,
        "Input partitions assigned to this instance."
    );
    describe_counter!(
        REBALANCES,
        Unit::Count,
        "Consumer-group rebalances, by kind (assign, revoke)."
    );
    describe_counter!(
        OFFSETS_STORED,
        Unit::Count,
        "Input offsets stored for commit after their outputs were acknowledged."
    );
    describe_gauge!(
        WATERMARK_LAG,
        Unit::Seconds,
        "Wall clock minus the instance's watermark (event time)."
    );
    describe_counter!(
        LATE_EVENTS,
        Unit::Count,
        "Events later than detect.allowed_lateness: history updated, no task, dead-lettered as late."
    );
    describe_counter!(
        TIMERS_FIRED,
        Unit::Count,
        "Promise deadlines passed without fulfilment, by the clock that moved the watermark (event_time, wall_clock)."
    );
    describe_histogram!(
        RESTORE_SECONDS,
        Unit::Seconds,
        "Time to rebuild an assigned partition's state, by source (changelog, input)."
    );
    describe_counter!(
        RESTORE_RECORDS,
        Unit::Count,
        "Records read to rebuild partition state, by source (changelog, input)."
    );
    describe_counter!(
        TRANSACTIONS,
        Unit::Count,
        "Exactly-once transactions ended, by result (committed, aborted)."
    );
    describe_histogram!(
        TRANSACTION_SECONDS,
        Unit::Seconds,
        "Exactly-once: from asking the workers to seal to the transaction's commit."
    );
    describe_counter!(
        CHANGELOG_RECORDS,
        Unit::Count,
        "State records written to the changelog topic (customers, tombstones and checkpoints)."
    );
    describe_gauge!(
        REORDER_BUFFERED,
        Unit::Count,
        "Events waiting in reorder buffers for the watermark, on this instance."
    );
    describe_counter!(
        REORDER_FORCED,
        Unit::Count,
        "Events applied before the watermark reached them because a reorder buffer was full (pipeline.reorder_buffer_max)."
    );
}
