//! `data`'s tests: the writer state's JSON form, and reads against a real one-node cluster.

use super::Stored;

#[test]
fn the_writer_state_leaves_defaults_out_and_reads_the_older_full_form() {
    let s = Stored {
        tail: 5,
        n: 2,
        ..Default::default()
    };
    assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"tail":5,"n":2}"#);
    let older = r#"{"tail":5,"n":2,"closed":false,"closed_by":null,"stream_seq":null,"producers":{},"deleted":null}"#;
    assert_eq!(serde_json::from_str::<Stored>(older).unwrap(), s);
    let full = Stored {
        closed: true,
        closed_by: Some(("p".into(), 1, 3)),
        stream_seq: Some("a".into()),
        producers: [("p".to_string(), (1, 3, 2))].into_iter().collect(),
        deleted: Some(false),
        start: 4,
        ..s
    };
    let back: Stored = serde_json::from_str(&serde_json::to_string(&full).unwrap()).unwrap();
    assert_eq!(back, full);
}

/// A batch read ahead that lost a message in its middle (as a slow subscriber's reply can
/// be) is read on from the leader: the bytes come out whole and in order, no panic.
#[test]
fn a_message_missing_from_a_batch_is_read_from_the_leader() {
    use super::*;
    use crate::cluster::{ClusterSettings, Credentials};
    let nats = ds_nats_cluster::Cluster::start(1);
    let c = Cluster::connect(ClusterSettings {
        urls: nats.urls().split(',').map(str::to_string).collect(),
        credentials: Credentials::default(),
        replicas: 1,
        shards: 1,
        namespace: "gap".into(),
        request_timeout_ms: 5000,
        connect_timeout_secs: 20,
        max_append_bytes: 0,
        cache_streams: 16,
        sweep_scan_secs: 60,
    })
    .unwrap();
    let s = Subject {
        stream: c.data_stream(0),
        subject: c.data_subject(0, "abc", 1),
        id_prefix: "gap.abc.1".into(),
        base: 0,
    };
    c.block(async {
        let mut tail = Tail::default();
        for body in ["aa", "bbb", "cccc"] {
            let next = tail.state.next(&tail.state.writer(), body.len() as u64);
            let Appended::Stored(seq) = append(&c, &s, &tail, &next, Bytes::from(body), "gap").await.unwrap() else {
                panic!("the append conflicted");
            };
            tail = Tail { state: next, seq };
        }
        let all = batch(&c, &s, 1, 10, 1 << 20).await.unwrap();
        assert_eq!(all.len(), 3);
        let mut ahead: Ahead = [all[0].clone(), all[2].clone()].into_iter().collect();
        let mut out = Vec::new();
        let span = Span {
            pos: 0,
            end: 9,
            last_seq: tail.seq,
            max: 1 << 20,
            hint: Some(all[0].sequence),
        };
        let (reached, _) = read(&c, &s, span, &mut ahead, &mut out).await.unwrap();
        assert_eq!((reached, out.as_slice()), (9, &b"aabbbcccc"[..]));
    });
}
