//! The case list, one module per part of the engine contract.

mod append;
mod backup;
mod fork;
mod lifecycle;
mod lifetime;
mod listing;
mod long_read;
pub(crate) mod producers;
mod read;
mod records;
mod retention;
mod shared;

use crate::support::Case;

macro_rules! cases {
    ($($m:ident :: $f:ident),* $(,)?) => {
        vec![$(Case { name: concat!(stringify!($m), "::", stringify!($f)), run: $m::$f }),*]
    };
}

pub fn all() -> Vec<Case> {
    cases![
        lifecycle::create_then_head,
        lifecycle::create_is_idempotent_on_same_config,
        lifecycle::create_conflicts_on_other_config,
        lifecycle::create_closed_with_body,
        lifecycle::delete_removes_and_name_is_reusable,
        lifecycle::recreated_stream_gets_new_incarnation,
        lifecycle::missing_stream_is_not_found,
        lifecycle::extension_unknown_op_is_unsupported,
        lifecycle::concurrent_creates_are_each_decided_once,
        append::appends_advance_tail_and_read_back,
        append::close_is_atomic_with_final_append,
        append::closed_stream_refuses_appends_with_tail,
        append::repeated_close_only_is_duplicate,
        append::content_type_mismatch,
        append::stream_seq_is_bytewise_increasing,
        append::producer_dedupe_and_fencing,
        append::producer_state_is_per_stream,
        append::append_many_equals_sequential_appends,
        append::one_streams_appends_in_a_group_are_each_decided,
        append::concurrent_groups_keep_each_streams_order,
        append::close_only_from_another_producer_is_refused,
        producers::a_group_keeps_the_producers_it_does_not_name,
        read::reads_are_bounded_and_whole_records,
        read::read_at_tail_and_beyond,
        read::read_tail_start,
        read::continued_reads_see_changes,
        long_read::long_streams_read_back_whole_from_anywhere,
        records::records_are_where_each_append_began,
        fork::fork_shares_prefix_and_diverges,
        fork::fork_at_mid_record_position,
        fork::fork_errors,
        fork::fork_does_not_inherit_writer_state,
        fork::soft_delete_while_forked_then_cascade,
        fork::fork_inherits_content_type_and_lifetime,
        lifetime::ttl_expires_and_renews_on_access,
        lifetime::head_does_not_renew,
        lifetime::expires_at_is_absolute,
        lifetime::expired_listing_and_sweeper_delete,
        listing::list_prefix_start_after_limit,
        shared::register_is_compare_and_set,
        shared::clock_is_a_lower_bound_of_the_storage_time,
        retention::trim_drops_whole_records_and_the_stream_goes_on,
        backup::a_restored_stream_answers_like_the_original,
        retention::forks_keep_what_they_inherit,
        retention::forks_of_trimmed_data_start_at_what_is_retained,
    ]
}
