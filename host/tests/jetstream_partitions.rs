//! The `jetstream` mode under network faults, checked from recorded histories (issue 27): three
//! real NATS nodes and two real server hosts, each in a network namespace of its own (needs root:
//! these tests fail, never skip, where namespaces cannot be made), clients working through both
//! hosts while a fault is made and healed, then every operation, every webhook wake and the
//! final streams checked by `ds-history-check`. Faults: the meta leader cut from the other
//! nodes; a data stream's leader cut from the other nodes; a host cut from every node (clients
//! still reach it: it must answer 503 with `Retry-After` and acknowledge nothing); one-way loss
//! from the meta leader to a follower; rolling cuts (n0, heal, n1, heal); hosts whose clocks run
//! three minutes ahead and behind (`faketime`: TTL and JWT expiry follow the cluster's clock).
//! Each fault prints `FAULT: N operations, N acknowledged appends checked, N indeterminate,
//! violations N` and the time service took to resume after the heal.

#[path = "common/jwt.rs"]
#[allow(dead_code)]
mod jwt;
mod partitions;

use std::time::{Duration, Instant};

use ds_history_check::Kind;
use partitions::cluster::{Setup, System, HOSTS, NODES};
use partitions::hooks;
use partitions::workload::{self, Profile, Recorder};

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const CLIENTS: usize = 6;
const STREAMS: usize = 4;

/// What a fault run recorded: every operation, and when (harness clock, ms) the fault was made
/// and healed.
struct Run {
    ops: Vec<ds_history_check::Op>,
    fault_ms: u64,
    heal_ms: u64,
}

/// Runs clients while `fault` (given the system, returning a heal) acts, then checks.
fn run_fault(label: &str, fault: impl FnOnce(&System) -> Box<dyn FnOnce(&System)>) -> Run {
    run_fault_with(label, &Setup::default(), &Profile::default(), fault)
}

/// [`run_fault`] with hosts set up and clients working as given.
fn run_fault_with(label: &str, setup: &Setup, profile: &Profile, fault: impl FnOnce(&System) -> Box<dyn FnOnce(&System)>) -> Run {
    let _one = serial();
    let sys = System::start(setup);
    let hosts: Vec<(String, String)> = HOSTS.iter().map(|h| (h.to_string(), sys.url(h))).collect();
    let rec = Recorder::new();
    let streams: Vec<String> = (0..STREAMS).map(|i| format!("{}/s{i}", label.to_lowercase())).collect();
    for s in &streams {
        workload::create(&rec, profile, "h0", &hosts[0].1, s);
    }
    let receivers = hooks::start(&sys, rec.clone());
    workload::subscribe(profile, &hosts[0].1, &format!("{}/*", label.to_lowercase()), hooks::PORT);
    let started = Instant::now();
    let until = started + Duration::from_secs(12);
    let give_up = until + Duration::from_secs(50);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|me| {
            let (rec, hosts, streams, p) = (rec.clone(), hosts.clone(), streams.clone(), profile.clone());
            std::thread::spawn(move || workload::client_loop(rec, p, me, hosts, streams, until, give_up))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let fault_ms = rec.now_ms();
    let heal = fault(&sys);
    std::thread::sleep(Duration::from_secs(6));
    heal(&sys);
    let heal_ms = rec.now_ms();
    let healed = Instant::now();
    let resumed = resume_time(&rec, profile, &hosts, &streams[0]);
    for c in clients {
        c.join().expect("a client failed");
    }
    let fin = workload::final_state(profile, &hosts[1].1, &streams).unwrap_or_else(|e| panic!("{label}: {e}"));
    drop(receivers);
    let ops = rec.ops();
    let report = ds_history_check::check(&ops, &fin);
    let wakes: Vec<&ds_history_check::Op> = ops.iter().filter(|o| matches!(o.kind, Kind::Wake { .. })).collect();
    let by = |h: &str| wakes.iter().filter(|o| o.host == h).count();
    for v in &report.violations {
        eprintln!("{label}: violation {}", serde_json::to_string(v).unwrap());
    }
    let line = report.line(label);
    println!(
        "{line}; {} of the indeterminate stored once; {} wakes (h0 {}, h1 {}); resumed {:.1} s after the heal ({:.0} s of load)",
        report.indeterminate_stored,
        wakes.len(),
        by("h0"),
        by("h1"),
        resumed.as_secs_f64(),
        healed.duration_since(started).as_secs_f64()
    );
    if !report.violations.is_empty() {
        let path = std::env::temp_dir().join(format!("ds-history-{}.jsonl", label.to_lowercase()));
        let text: Vec<String> = ops.iter().map(|o| serde_json::to_string(o).unwrap()).collect();
        std::fs::write(&path, text.join("\n")).unwrap();
        panic!(
            "{label}: {} violations; the history is in {}",
            report.violations.len(),
            path.display()
        );
    }
    assert!(report.acked_appends > 50, "{label}: too little work to check ({line})");
    Run { ops, fault_ms, heal_ms }
}

/// How long after the heal an append went through each host again.
fn resume_time(rec: &Recorder, profile: &Profile, hosts: &[(String, String)], stream: &str) -> Duration {
    let healed = Instant::now();
    let c = profile.client();
    for (i, (host, url)) in hosts.iter().enumerate() {
        for n in 0.. {
            let body = format!("<probe.{i}.{n}>");
            let a = rec.run(
                host,
                stream,
                Kind::Append {
                    body: body.clone(),
                    producer: None,
                    close: false,
                },
                || {
                    c.post(format!("{url}/v1/stream/{stream}"))
                        .header("Content-Type", "text/plain")
                        .body(body)
                        .send()
                },
            );
            if matches!(a.status, Some(200..=299)) {
                break;
            }
            assert!(
                healed.elapsed() < Duration::from_secs(90),
                "service did not resume through {host} within 90 s of the heal"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    healed.elapsed()
}

#[test]
fn meta_leader_cut_off_from_the_other_nodes() {
    let _ = run_fault("CUT-META-LEADER", |sys| {
        let leader = sys.meta_leader().expect("a meta leader");
        let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != leader).collect();
        sys.net.isolate(&leader, &others);
        eprintln!("CUT-META-LEADER: {leader} cut from {others:?}");
        Box::new(|s: &System| s.net.heal())
    });
}

/// What a client waiting as long as it takes got from the cut-off host: (status, whether
/// `Retry-After` came with it, how long it took).
type Probe = (u16, bool, Duration);

#[test]
fn a_data_stream_leader_cut_off_from_the_other_nodes() {
    let _ = run_fault("CUT-STREAM-LEADER", |sys| {
        let leader = sys.stream_leader("fault_d0").expect("a leader of fault_d0");
        let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != leader).collect();
        sys.net.isolate(&leader, &others);
        eprintln!("CUT-STREAM-LEADER: {leader} (leading fault_d0) cut from {others:?}");
        Box::new(|s: &System| s.net.heal())
    });
}

#[test]
fn a_host_cut_off_from_every_node_while_clients_reach_it() {
    let probes: std::sync::Arc<std::sync::Mutex<Vec<Probe>>> = Default::default();
    let found = probes.clone();
    let run = run_fault("CUT-HOST", move |sys| {
        sys.net.isolate("h0", &NODES);
        // A client with no timeout of its own reads through the cut-off host until the heal.
        let url = format!("{}/v1/stream/cut-host/s0", sys.url("h0"));
        let healing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = healing.clone();
        let prober = std::thread::spawn(move || {
            let c = Profile::default().client_with(Duration::from_secs(60));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                if let Ok(r) = c.get(&url).send() {
                    let retry = r.headers().contains_key("retry-after");
                    found.lock().unwrap().push((r.status().as_u16(), retry, t.elapsed()));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Box::new(move |s: &System| {
            healing.store(true, std::sync::atomic::Ordering::Relaxed);
            prober.join().unwrap();
            s.net.heal()
        })
    });
    // The cut-off host acknowledged nothing while it was cut off (allowing a second for what
    // was on its way when the cut began); the other host went on.
    let during = |o: &&ds_history_check::Op| o.completed_ms > run.fault_ms + 1000 && o.completed_ms < run.heal_ms;
    let acked = |o: &&ds_history_check::Op| matches!(o.kind, Kind::Append { .. }) && matches!(o.answer.status, Some(200..=299));
    let cut_acked: Vec<u64> = run
        .ops
        .iter()
        .filter(during)
        .filter(acked)
        .filter(|o| o.host == "h0")
        .map(|o| o.id)
        .collect();
    assert!(cut_acked.is_empty(), "h0 acknowledged appends while cut off: {cut_acked:?}");
    assert!(
        run.ops.iter().filter(during).filter(acked).any(|o| o.host == "h1"),
        "h1 kept acknowledging appends"
    );
    // It answered 503 with Retry-After (within its request timeout, at once when it knew it had
    // lost the cluster), never held a request without an answer.
    let probes = probes.lock().unwrap().clone();
    let quick = probes.iter().filter(|p| p.2 < Duration::from_secs(1)).count();
    println!(
        "CUT-HOST: the cut-off host answered {} reads with 503 and Retry-After ({quick} at once, the slowest in {:.1} s)",
        probes.len(),
        probes.iter().map(|p| p.2).max().unwrap_or_default().as_secs_f64()
    );
    assert!(!probes.is_empty(), "the cut-off host answered no read while cut off");
    for (status, retry, took) in &probes {
        assert!(
            *status == 503 && *retry,
            "the cut-off host answered {status} (Retry-After: {retry}) after {took:?}"
        );
    }
    assert!(quick > 0, "the cut-off host never refused at once: {probes:?}");
}

#[test]
fn one_way_loss_from_the_meta_leader_to_a_follower() {
    let _ = run_fault("ONE-WAY", |sys| {
        let leader = sys.meta_leader().expect("a meta leader");
        let follower = NODES.iter().copied().find(|n| *n != leader).unwrap();
        sys.net.cut_one_way(&leader, follower);
        eprintln!("ONE-WAY: {leader} -> {follower} dropped");
        Box::new(|s: &System| s.net.heal())
    });
}

#[test]
fn rolling_cuts_of_each_node_in_turn() {
    let _ = run_fault("ROLLING", |sys| {
        // n0 cut for 2 s, healed, then n1 (the heal below ends n1's cut after the fault's time).
        sys.net.isolate("n0", &["n1", "n2"]);
        std::thread::sleep(Duration::from_secs(2));
        sys.net.heal();
        std::thread::sleep(Duration::from_secs(1));
        sys.net.isolate("n1", &["n0", "n2"]);
        Box::new(|s: &System| s.net.heal())
    });
}

/// Skewed clocks: h0 runs three minutes ahead, h1 three minutes behind (libfaketime), while the
/// NATS nodes and the harness keep true time. Every time decision follows the cluster's clock:
/// the workload's sliding-TTL (30 s) streams never expire early on either host (the checker's
/// rule); an idle stream with a 3 s TTL is gone on both hosts, never before 3 s by the harness's
/// clock and soon after; a JWT valid for another minute is accepted by the host ahead, one
/// expired a minute ago (beyond the 30 s leeway) is refused by the host behind.
#[test]
fn hosts_with_clocks_minutes_ahead_and_behind() {
    let keys = jwt::Keys::new();
    let dir = std::env::temp_dir().join(format!("ds-skew-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("jwks.json");
    keys.write(&jwks, "ed1");
    let setup = Setup {
        skew: vec![("h0", "+180"), ("h1", "-180")],
        host_env: vec![
            ("DS_AUTH__MODE".into(), "token".into()),
            ("DS_AUTH__JWT_KEYS_FILE".into(), jwks.display().to_string()),
        ],
    };
    let profile = Profile {
        bearer: Some(keys.hs("hs1", &["*:all"], 3600)),
        ttl_secs: Some(30),
    };
    let mut found = String::new();
    let _ = run_fault_with("SKEW", &setup, &profile, |sys| {
        found = skew_checks(sys, &keys);
        Box::new(|_: &System| {})
    });
    let _ = std::fs::remove_dir_all(&dir);
    println!("SKEW: {found}");
}

/// The JWT and idle-TTL checks of [`hosts_with_clocks_minutes_ahead_and_behind`].
fn skew_checks(sys: &System, keys: &jwt::Keys) -> String {
    let plain = Profile::default().client_with(Duration::from_secs(5));
    let (ahead, behind) = (sys.url("h0"), sys.url("h1"));
    let status = |url: &str, token: &str| {
        plain
            .head(format!("{url}/v1/stream/skew/s0"))
            .bearer_auth(token)
            .send()
            .map_or(0, |r| r.status().as_u16())
    };
    let fresh = keys.hs("hs1", &["*:all"], 60);
    let stale = keys.hs("hs1", &["*:all"], -60);
    assert_eq!(status(&ahead, &fresh), 200, "the host ahead refused a JWT valid for another minute");
    assert_eq!(status(&behind, &stale), 401, "the host behind accepted a JWT expired a minute ago");
    assert_eq!(status(&behind, &fresh), 200);
    assert_eq!(status(&ahead, &stale), 401);

    let admin = keys.hs("hs1", &["*:all"], 3600);
    let name = "skew/idle";
    let t0 = Instant::now();
    let made = plain
        .put(format!("{behind}/v1/stream/{name}"))
        .bearer_auth(&admin)
        .header("Content-Type", "text/plain")
        .header("Stream-TTL", "3")
        .send()
        .expect("create the idle stream");
    assert_eq!(made.status().as_u16(), 201);
    // HEAD renews nothing: the stream's last access is its create, at or after t0.
    let mut gone = [None, None];
    while gone.iter().any(Option::is_none) && t0.elapsed() < Duration::from_secs(20) {
        for (i, url) in [&ahead, &behind].into_iter().enumerate() {
            if gone[i].is_none() {
                let r = plain.head(format!("{url}/v1/stream/{name}")).bearer_auth(&admin).send();
                if r.is_ok_and(|r| r.status().as_u16() == 404) {
                    gone[i] = Some(t0.elapsed());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let [Some(on_ahead), Some(on_behind)] = gone else {
        panic!(
            "a 3 s TTL stream was still there 20 s later (ahead: {:?}, behind: {:?})",
            gone[0], gone[1]
        );
    };
    for (who, at) in [("ahead", on_ahead), ("behind", on_behind)] {
        assert!(
            at >= Duration::from_secs(3),
            "the host {who} called a 3 s TTL stream gone after {at:?}"
        );
        // Late by at most the renewal slack (0.75 s + 1 s) and a sweep.
        assert!(at <= Duration::from_secs(10), "the host {who} kept a 3 s TTL stream for {at:?}");
    }
    format!(
        "a JWT valid 60 s more accepted ahead, one expired 60 s ago refused behind; an idle 3 s TTL stream gone {:.1} s (ahead) and {:.1} s (behind) after its create",
        on_ahead.as_secs_f64(),
        on_behind.as_secs_f64()
    )
}

/// For people and releases (`scripts/partitions-long.sh`): random faults, one after another with
/// heals between, for `DS_PARTITIONS_SECS` (default 120), the history, the final state and the
/// checker's report kept in `DS_PARTITIONS_OUT` (default a temporary directory).
#[test]
#[ignore = "long: run by scripts/partitions-long.sh"]
fn random_faults_for_a_chosen_time() {
    let _one = serial();
    let secs: u64 = std::env::var("DS_PARTITIONS_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let out = std::env::var("DS_PARTITIONS_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join(format!("ds-partitions-long-{}", std::process::id())));
    std::fs::create_dir_all(&out).unwrap();
    let sys = System::start(&Setup::default());
    let hosts: Vec<(String, String)> = HOSTS.iter().map(|h| (h.to_string(), sys.url(h))).collect();
    let rec = Recorder::new();
    let profile = Profile::default();
    let streams: Vec<String> = (0..STREAMS).map(|i| format!("long/s{i}")).collect();
    for s in &streams {
        workload::create(&rec, &profile, "h0", &hosts[0].1, s);
    }
    let receivers = hooks::start(&sys, rec.clone());
    workload::subscribe(&profile, &hosts[0].1, "long/*", hooks::PORT);
    let until = Instant::now() + Duration::from_secs(secs);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|me| {
            let (rec, hosts, streams) = (rec.clone(), hosts.clone(), streams.clone());
            std::thread::spawn(move || {
                workload::client_loop(rec, Profile::default(), me, hosts, streams, until, until + Duration::from_secs(60))
            })
        })
        .collect();
    let mut log = Vec::new();
    let mut x = std::process::id() as u64 | 1;
    while Instant::now() + Duration::from_secs(10) < until {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = rec.now_ms();
        let what = match x % 5 {
            4 => {
                let stream = format!("fault_d{}", x / 8 % 2);
                let leader = sys.stream_leader(&stream).unwrap_or_else(|| "n1".into());
                let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != leader).collect();
                sys.net.isolate(&leader, &others);
                format!("cut {stream}'s leader {leader}")
            }
            0 => {
                let leader = sys.meta_leader().unwrap_or_else(|| "n0".into());
                let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != leader).collect();
                sys.net.isolate(&leader, &others);
                format!("cut meta leader {leader}")
            }
            1 => {
                let h = HOSTS[(x / 4 % 2) as usize];
                sys.net.isolate(h, &NODES);
                format!("cut host {h}")
            }
            2 => {
                let (a, b) = (NODES[(x / 4 % 3) as usize], NODES[((x / 4 + 1) % 3) as usize]);
                sys.net.cut_one_way(a, b);
                format!("one way {a} -> {b}")
            }
            _ => {
                let n = NODES[(x / 4 % 3) as usize];
                let others: Vec<&str> = NODES.iter().copied().filter(|o| *o != n).collect();
                sys.net.isolate(n, &others);
                format!("cut node {n}")
            }
        };
        std::thread::sleep(Duration::from_secs(2 + x / 16 % 6));
        sys.net.heal();
        log.push(format!("{at} .. {} ms: {what}", rec.now_ms()));
        std::thread::sleep(Duration::from_secs(2 + x / 128 % 4));
    }
    for c in clients {
        c.join().expect("a client failed");
    }
    let fin = workload::final_state(&profile, &hosts[1].1, &streams);
    drop(receivers);
    let ops = rec.ops();
    // The system did not resume: keep what was recorded before failing.
    let fin = fin.unwrap_or_else(|e| {
        let lines: Vec<String> = ops.iter().map(|o| serde_json::to_string(o).unwrap()).collect();
        std::fs::write(out.join("history.jsonl"), lines.join("\n")).unwrap();
        std::fs::write(out.join("faults.txt"), log.join("\n")).unwrap();
        sys.diagnose(&out);
        panic!("{e} (history and faults kept in {})", out.display())
    });
    let report = ds_history_check::check(&ops, &fin);
    let lines: Vec<String> = ops.iter().map(|o| serde_json::to_string(o).unwrap()).collect();
    std::fs::write(out.join("history.jsonl"), lines.join("\n")).unwrap();
    std::fs::write(out.join("final.json"), serde_json::to_string_pretty(&fin).unwrap()).unwrap();
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&report).unwrap()).unwrap();
    std::fs::write(out.join("faults.txt"), log.join("\n")).unwrap();
    println!("{} ({} faults; kept in {})", report.line("RANDOM"), log.len(), out.display());
    assert!(
        report.violations.is_empty(),
        "{} violations: see {}",
        report.violations.len(),
        out.join("report.json").display()
    );
}
