//! `ds-history-check --history H.jsonl --final F.json [--label FAULT]`: prints every violation
//! (one JSON object per line) and the summary line; exits 1 when there is a violation, 2 when
//! the files cannot be read.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
struct Opts {
    /// The history: one JSON operation per line.
    #[arg(long)]
    history: PathBuf,
    /// The final state: a JSON object, stream name to {exists, content, closed}.
    #[arg(long = "final")]
    final_state: PathBuf,
    /// The name of the fault, first on the summary line.
    #[arg(long, default_value = "HISTORY")]
    label: String,
}

fn main() -> ExitCode {
    let o = Opts::parse();
    let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let parsed = read(&o.history).and_then(|h| {
        let f = read(&o.final_state)?;
        let ops = ds_history_check::parse_history(&h).map_err(|e| e.to_string())?;
        let fin = ds_history_check::parse_final(&f).map_err(|e| e.to_string())?;
        Ok((ops, fin))
    });
    let (ops, fin) = match parsed {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ds-history-check: {e}");
            return ExitCode::from(2);
        }
    };
    let report = ds_history_check::check(&ops, &fin);
    for v in &report.violations {
        println!("{}", serde_json::to_string(v).unwrap_or_default());
    }
    println!("{}", report.line(&o.label));
    if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
