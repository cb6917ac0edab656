//! Support for `jetstream_partitions.rs`: the system in network namespaces, and the clients
//! that record a history, and the webhook receivers that record wakes.

pub mod cluster;
pub mod hooks;
pub mod workload;
