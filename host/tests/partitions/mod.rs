//! Support for `jetstream_partitions.rs`: the system in network namespaces, and the clients
//! that record a history.

pub mod cluster;
pub mod workload;
