//! `saltbridge status`: asks a running `saltbridge run` for its `/metrics`
//! and prints them for a person (or as JSON with `--format json`).
//!
//! It reads the Prometheus text rather than a JSON endpoint of its own so
//! that there is one source of truth: what `status` shows is exactly what
//! Prometheus scrapes. When nothing answers, it says so and exits 1.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, ValueEnum};

use saltbridge::http_body::read_bounded;
use saltbridge::metrics::scrape::Scrape;
use saltbridge::metrics::summary::Summary;
use saltbridge::metrics::{Listen, DEFAULT_LISTEN, MAX_METRICS_BYTES};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Arguments of `saltbridge status`.
#[derive(Args)]
pub struct StatusArgs {
    /// The address `saltbridge run` serves /metrics on (its `--listen`).
    #[arg(long, value_name = "ADDR", env = "SALTBRIDGE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: Listen,
    /// `table` for a person, `json` for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let Listen::At(addr) = args.listen else {
        anyhow::bail!(
            "--listen off: give the address `saltbridge run` listens on (default {DEFAULT_LISTEN})"
        );
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("building the HTTP client")?;
    let url = format!("http://{addr}/metrics");
    let response = match client.get(&url).send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => {
            eprintln!(
                "no saltbridge is listening on {addr}: is `saltbridge run` running? \
                 If it runs with another --listen (or SALTBRIDGE_LISTEN), give the same here."
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => {
            eprintln!("cannot read {url}: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if !response.status().is_success() {
        eprintln!(
            "{url} answered {}: is that a saltbridge?",
            response.status()
        );
        return Ok(ExitCode::FAILURE);
    }
    let body = read_bounded(response, MAX_METRICS_BYTES).await;
    if let Some(e) = body.error {
        return Err(e).with_context(|| format!("reading {url}"));
    }
    if body.truncated {
        eprintln!("{url} sent more than {MAX_METRICS_BYTES} bytes: is that a saltbridge?");
        return Ok(ExitCode::FAILURE);
    }
    let text = String::from_utf8_lossy(&body.bytes);
    let scrape = Scrape::parse(&text).with_context(|| format!("{url} is not Prometheus text"))?;
    if scrape.single("saltbridge_up").is_none() {
        eprintln!("{url} has no saltbridge metrics: is that a saltbridge?");
        return Ok(ExitCode::FAILURE);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let summary = Summary::from_scrape(&scrape, now);
    let out = match args.format {
        Format::Table => summary.table(&addr.to_string()),
        Format::Json => serde_json::to_string_pretty(&summary)? + "\n",
    };
    // A reader that went away (`status | head`) is not an error.
    match std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}
