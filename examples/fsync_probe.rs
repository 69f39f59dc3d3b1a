//! How long this disk takes to make a write durable: the floor under every SQLite commit
//! (`synchronous=FULL` waits for one fsync of the write-ahead log per transaction) and so under the
//! publish latency the kernel sees.
//!
//! ```text
//! cargo run --release --example fsync_probe [-- DIR [COUNT]]
//! ```
//! Appends 4 KiB to a file in `DIR` (default: the current directory, where the SQLite file lives)
//! and calls `fdatasync` after each write, `COUNT` times (default 2000); prints p50, p99 and max.

use std::io::Write;
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| ".".to_string());
    let count: usize = args.next().and_then(|c| c.parse().ok()).unwrap_or(2000);
    let path = std::path::Path::new(&dir).join(format!(".fsync-probe-{}", std::process::id()));
    let mut file = std::fs::File::create(&path)?;
    let block = [0x5au8; 4096];
    let mut took = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        took.push(started.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    took.sort_unstable();
    println!(
        "fdatasync of a 4 KiB append in {dir}, {count} times: p50 {} / p99 {} / max {}",
        ms(percentile(&took, 50)),
        ms(percentile(&took, 99)),
        ms(took.last().copied().unwrap_or_default())
    );
    Ok(())
}

/// Nearest-rank percentile of sorted durations.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 50), Duration::from_millis(50));
        assert_eq!(percentile(&d, 99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }
}
