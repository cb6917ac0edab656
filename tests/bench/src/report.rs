//! `--summarize`: turns JSON result lines from many runs (labelled `GROUP/SERVER`) into markdown
//! tables of medians with min-max per case and server, and the ratio of ours to the best peer.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

/// The figures summarized, with their heading and whether higher is better.
const METRICS: [(&str, &str, bool); 5] = [
    ("rate", "Throughput (unit per row)", true),
    ("p50_us", "p50 latency, microseconds", false),
    ("p99_us", "p99 latency, microseconds", false),
    (
        "cpu_us_per_op",
        "Server CPU microseconds per operation (per MB for catch-up/large)",
        false,
    ),
    ("rss_bytes_per_stream", "Server resident memory growth, bytes per stream", false),
];

#[derive(Default)]
struct Group {
    servers: Vec<String>,
    cases: Vec<(String, String)>,
    /// (case, server, metric) -> values over rounds (successful runs only).
    values: HashMap<(String, String, &'static str), Vec<f64>>,
    /// (case, server) -> (failed runs, all runs).
    runs: HashMap<(String, String), (u32, u32)>,
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn num(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn load(paths: &[PathBuf]) -> Result<(Vec<String>, HashMap<String, Group>), String> {
    let (mut order, mut groups) = (Vec::new(), HashMap::<String, Group>::new());
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
            let (Some(label), Some(case)) = (v["label"].as_str(), v["name"].as_str()) else {
                continue;
            };
            let (group, server) = label.split_once('/').unwrap_or(("results", label));
            push_unique(&mut order, group);
            let g = groups.entry(group.to_string()).or_default();
            push_unique(&mut g.servers, server);
            let unit = v["unit"].as_str().unwrap_or("").to_string();
            if !g.cases.iter().any(|(c, _)| c == case) {
                g.cases.push((case.to_string(), unit));
            }
            let ok = v["ok"].as_bool().unwrap_or(false);
            let runs = g.runs.entry((case.to_string(), server.to_string())).or_default();
            runs.1 += 1;
            if !ok {
                runs.0 += 1;
                continue;
            }
            for (m, _, _) in METRICS {
                let x = match &v[m] {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                };
                if let Some(x) = x {
                    g.values.entry((case.to_string(), server.to_string(), m)).or_default().push(x);
                }
            }
        }
    }
    Ok((order, groups))
}

fn cell(g: &Group, case: &str, server: &str, metric: &'static str) -> (String, Option<f64>) {
    let (failed, all) = g.runs.get(&(case.to_string(), server.to_string())).copied().unwrap_or((0, 0));
    let vals = g.values.get(&(case.to_string(), server.to_string(), metric));
    let mut s = match vals {
        Some(v) if !v.is_empty() => {
            let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            if v.len() > 1 {
                format!("{} ({}-{})", num(median(v)), num(lo), num(hi))
            } else {
                num(v[0])
            }
        }
        _ if all == 0 => "-".to_string(),
        _ if failed > 0 => String::new(),
        _ => "-".to_string(),
    };
    if failed > 0 {
        if !s.is_empty() {
            s.push(' ');
        }
        let _ = write!(s, "FAILED {failed}/{all}");
    }
    (s, vals.filter(|v| !v.is_empty()).map(|v| median(v)))
}

/// The label of `ds-floor`'s results; `floor-MODE` labels `ds-engine-floor`'s for MODE.
const FLOOR: &str = "floor";

/// The floor a server of ours is measured against: `floor-MODE` for `ours-MODE` when the run
/// has it, else `floor`.
fn floor_of<'a>(ours: &str, floors: &'a HashMap<&str, f64>) -> Option<&'a f64> {
    ours.split_once('-')
        .and_then(|(_, mode)| floors.get(format!("{FLOOR}-{mode}").as_str()))
        .or_else(|| floors.get(FLOOR))
}

/// The markdown summary of every result line in `paths`; servers whose name starts with `ours`
/// are this server (one ratio column each, against the best of the others).
pub fn summarize(paths: &[PathBuf], ours: &str) -> Result<String, String> {
    let (order, groups) = load(paths)?;
    let mut out = String::new();
    for name in order {
        let g = &groups[&name];
        let is_ours = |s: &str| s.starts_with(ours);
        // The floors (`ds-floor` labelled `floor`, `ds-engine-floor` labelled `floor-MODE`) are
        // no peers: ours get a ratio against theirs too.
        let is_floor = |s: &str| s == FLOOR || s.strip_prefix(FLOOR).is_some_and(|m| m.starts_with('-'));
        let our_servers: Vec<&String> = g.servers.iter().filter(|s| is_ours(s)).collect();
        let has_peers = g.servers.iter().any(|s| !is_ours(s) && !is_floor(s));
        let has_floor = g.servers.iter().any(|s| is_floor(s));
        let ratios: Vec<&String> = if has_peers { our_servers.clone() } else { Vec::new() };
        let _ = writeln!(out, "## {name}\n");
        for (metric, title, higher_better) in METRICS {
            let present = g
                .cases
                .iter()
                .any(|(c, _)| g.servers.iter().any(|s| g.values.contains_key(&(c.clone(), s.clone(), metric))));
            if !present {
                continue;
            }
            let better = if higher_better { "higher is better" } else { "lower is better" };
            let _ = writeln!(out, "### {title} ({better}; median (min-max) over runs)\n");
            let mut head = String::from("| case |");
            let mut rule = String::from("|---|");
            for s in &g.servers {
                let _ = write!(head, " {s} |");
                rule.push_str("---:|");
            }
            for o in &ratios {
                let _ = write!(head, " {o} / best peer |");
                rule.push_str("---:|");
            }
            if has_floor {
                for o in &our_servers {
                    let _ = write!(head, " {o} / floor |");
                    rule.push_str("---:|");
                }
            }
            let _ = writeln!(out, "{head}\n{rule}");
            for (case, unit) in &g.cases {
                let measured = g.servers.iter().any(|s| g.values.contains_key(&(case.clone(), s.clone(), metric)));
                let failed = g
                    .servers
                    .iter()
                    .any(|s| g.runs.get(&(case.clone(), s.clone())).is_some_and(|r| r.0 > 0));
                let show_failure = failed && metric == "rate";
                if !measured && !show_failure {
                    continue;
                }
                let label = if metric == "rate" {
                    format!("{case} ({unit})")
                } else {
                    case.clone()
                };
                let mut row = format!("| {label} |");
                let mut mine: HashMap<&str, f64> = HashMap::new();
                let mut best: Option<f64> = None;
                let mut floors: HashMap<&str, f64> = HashMap::new();
                for s in &g.servers {
                    let (text, m) = cell(g, case, s, metric);
                    let _ = write!(row, " {text} |");
                    match m {
                        Some(m) if is_ours(s) => {
                            mine.insert(s.as_str(), m);
                        }
                        Some(m) if is_floor(s) => {
                            floors.insert(s.as_str(), m);
                        }
                        Some(m) => {
                            best = Some(match best {
                                None => m,
                                Some(b) if higher_better => b.max(m),
                                Some(b) => b.min(m),
                            });
                        }
                        None => {}
                    }
                }
                for o in &ratios {
                    let ratio = match (mine.get(o.as_str()), best) {
                        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}x", v / b),
                        _ => "-".to_string(),
                    };
                    let _ = write!(row, " {ratio} |");
                }
                if has_floor {
                    for o in &our_servers {
                        let ratio = match (mine.get(o.as_str()), floor_of(o, &floors)) {
                            (Some(v), Some(f)) if *f > 0.0 => format!("{:.2}x", v / f),
                            _ => "-".to_string(),
                        };
                        let _ = write!(row, " {ratio} |");
                    }
                }
                let _ = writeln!(out, "{row}");
            }
            out.push('\n');
        }
    }
    if out.is_empty() {
        return Err("no labelled result lines found".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratio() {
        let dir = std::env::temp_dir().join(format!("ds-bench-report-{}", std::process::id()));
        let lines = [
            r#"{"label":"memory/ours","name":"a","unit":"x/s","rate":10.0,"ok":true}"#,
            r#"{"label":"memory/ours","name":"a","unit":"x/s","rate":30.0,"ok":true}"#,
            r#"{"label":"memory/ours","name":"a","unit":"x/s","rate":20.0,"ok":true}"#,
            r#"{"label":"memory/peer","name":"a","unit":"x/s","rate":5.0,"ok":true}"#,
            r#"{"label":"memory/peer","name":"a","unit":"x/s","rate":0.0,"ok":false}"#,
        ];
        std::fs::write(&dir, lines.join("\n")).unwrap();
        let t = summarize(std::slice::from_ref(&dir), "ours").unwrap();
        std::fs::remove_file(dir).unwrap();
        assert!(t.contains("| a (x/s) | 20.0 (10.0-30.0) | 5.00 FAILED 1/2 | 4.00x |"), "{t}");
    }

    #[test]
    fn each_mode_against_its_own_floor() {
        let floors: HashMap<&str, f64> = [("floor", 1.0), ("floor-acid", 2.0)].into_iter().collect();
        assert_eq!(floor_of("ours-acid", &floors), Some(&2.0));
        assert_eq!(floor_of("ours-file-durable", &floors), Some(&1.0));
        assert_eq!(floor_of("ours", &floors), Some(&1.0));
        let only_modes: HashMap<&str, f64> = [("floor-acid", 2.0)].into_iter().collect();
        assert_eq!(floor_of("ours-file-durable", &only_modes), None);
    }
}
